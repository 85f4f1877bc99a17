"""The retention schedule's pure rules: matching, periods, the default rule, bad files."""

from datetime import UTC, datetime, timedelta

import pytest

from archiver.errors import ConfigError
from archiver.manifest.retention import DEFAULT_RULE, load_schedule, parse_schedule

SCHEDULE = """
[[rule]]
name = "complaints"
days = 3650
direction = "inbound"
number = ["0903 123 456"]

[[rule]]
name = "sales"
days = 30
extension = ["101", 102]
started_before = "2026-06-01T00:00:00+07:00"
"""

START = "2026-01-10T09:00:00+07:00"


def _line(**fields):
    base = {
        "provider": "cdr_v2",
        "direction": "outbound",
        "extension": "200",
        "agent": "a1",
        "from_number": "0281111111",
        "to_number": "0909999999",
        "call_started_at": START,
        "archived_at": "2026-01-10T02:05:00Z",
    }
    return base | fields


@pytest.fixture
def schedule():
    return parse_schedule(SCHEDULE, json_format=False, default_days=365, where="rules.toml")


@pytest.mark.parametrize(
    ("fields", "rule", "days"),
    [
        ({"direction": "inbound", "from_number": "+84 903-123-456"}, "complaints", 3650),
        ({"direction": "INBOUND", "to_number": "84903123456"}, "complaints", 3650),
        ({"direction": "inbound", "to_number": "0084903123456"}, "complaints", 3650),
        ({"direction": "outbound", "to_number": "0903123456"}, DEFAULT_RULE, 365),
        ({"direction": "inbound"}, DEFAULT_RULE, 365),
        ({"extension": "101"}, "sales", 30),
        ({"extension": "102"}, "sales", 30),
        ({"extension": "103"}, DEFAULT_RULE, 365),
        # started_before is exclusive, compared as instants whatever the zone.
        ({"extension": "101", "call_started_at": "2026-05-31T17:00:00+00:00"}, DEFAULT_RULE, 365),
        ({"extension": "101", "call_started_at": "2026-05-31T16:59:59+00:00"}, "sales", 30),
        # A time rule never matches a line with no readable start.
        ({"extension": "101", "call_started_at": None}, DEFAULT_RULE, 365),
        # First matching rule wins.
        (
            {"extension": "101", "direction": "inbound", "from_number": "0903123456"},
            "complaints",
            3650,
        ),
    ],
)
def test_rule_matching(schedule, fields, rule, days):
    line = _line(**fields)
    due = schedule.due(line)
    assert due.rule == rule
    start = datetime.fromisoformat(line["call_started_at"] or line["archived_at"])
    assert due.ends == start + timedelta(days=days)


def test_the_period_runs_from_the_call_start_and_due_by_is_inclusive(schedule):
    due = schedule.due(_line(extension="101"))
    end = datetime(2026, 2, 9, 2, 0, tzinfo=UTC)
    assert due.ends == end
    assert due.due_by(end)
    assert not due.due_by(end - timedelta(seconds=1))


def test_without_a_default_an_unmatched_line_is_never_due():
    schedule = parse_schedule(SCHEDULE, json_format=False, default_days=0, where="r")
    due = schedule.due(_line())
    assert due.ends is None
    assert not due.due_by(datetime(9999, 1, 1, tzinfo=UTC))
    assert schedule.due(_line(extension="101")).rule == "sales"


def test_no_rules_file_is_the_default_rule(tmp_path):
    assert load_schedule(None, 0).due(_line()).ends is None
    assert load_schedule(None, 10).due(_line()).rule == DEFAULT_RULE


def test_json_and_toml_files(tmp_path):
    (tmp_path / "r.json").write_text('{"rule": [{"name": "x", "days": 1, "agent": "a1"}]}')
    assert load_schedule(tmp_path / "r.json", 0).due(_line()).rule == "x"
    (tmp_path / "r.toml").write_text(SCHEDULE)
    assert load_schedule(tmp_path / "r.toml", 0).due(_line(extension="102")).rule == "sales"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[rule]]\nname='a'\n", "days"),
        ("[[rule]]\nname='a'\ndays=0\n", "days"),
        ("[[rule]]\nname='a'\ndays=true\n", "days"),
        ("[[rule]]\nname='a'\ndays=99999\n", "days"),
        ("[[rule]]\nname='default'\ndays=1\n", "name"),
        ("[[rule]]\nname=''\ndays=1\n", "name"),
        ("[[rule]]\nname='a\\nb'\ndays=1\n", "name"),
        ("[[rule]]\nname='a'\ndays=1\ncolour='red'\n", "unknown field"),
        ("[[rule]]\nname='a'\ndays=1\nnumber='abc'\n", "no digit"),
        ("[[rule]]\nname='a'\ndays=1\nextension=[]\n", "extension"),
        ("[[rule]]\nname='a'\ndays=1\nagent={x=1}\n", "agent"),
        ("[[rule]]\nname='a'\ndays=1\nstarted_before='yesterday'\n", "started_before"),
        ("[[rule]]\nname='a'\ndays=1\nstarted_after='2026-01-01T00:00:00'\n", "started_after"),
        ("[[rule]]\nname='a'\ndays=1\n[[rule]]\nname='a'\ndays=2\n", "share a name"),
        ("rule = 3\n", "list"),
        ("other = 1\n", "expected only"),
        ("this is not toml", "not TOML"),
    ],
)
def test_bad_rules_are_one_clear_error(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_schedule(text, json_format=False, default_days=0, where="rules.toml")


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="rules file"):
        load_schedule(tmp_path / "absent.toml", 0)
    big = tmp_path / "big.toml"
    big.write_bytes(b"#" * (300 * 1024))
    with pytest.raises(ConfigError, match="larger"):
        load_schedule(big, 0)
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="UTF-8"):
        load_schedule(binary, 0)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="not JSON"):
        load_schedule(tmp_path / "bad.json", 0)


def test_toml_datetimes_are_taken_as_times():
    text = "[[rule]]\nname='a'\ndays=1\nstarted_after=2026-01-01T00:00:00+07:00\n"
    schedule = parse_schedule(text, json_format=False, default_days=0, where="r")
    assert schedule.rules[0].started_after == datetime(2025, 12, 31, 17, tzinfo=UTC)


def test_the_same_phone_key_as_search():
    from archiver.manifest.retention import phone_key as ours
    from archiver.retrieval.search import phone_key as theirs

    for number in ["+84 903 123 456", "0084903123456", "84903123456", "101", "(028) 3822-1111"]:
        assert ours(number) == theirs(number)


@pytest.mark.parametrize(
    ("direction", "raw", "codes", "matched"),
    [
        ("inbound", None, {}, True),
        (None, "1", {"1": "inbound"}, True),
        (None, "2", {"1": "inbound"}, False),
        (None, "1", {}, False),
        (None, "inbound", {}, True),
    ],
)
def test_direction_from_the_providers_codes(direction, raw, codes, matched):
    text = "[[rule]]\nname='in'\ndays=1\ndirection='inbound'\n"
    schedule = parse_schedule(
        text, json_format=False, default_days=0, where="r", direction_codes=codes
    )
    line = _line(direction=direction, direction_raw=raw)
    assert (schedule.due(line).rule == "in") is matched


def test_a_recordings_lock_follows_its_rule_and_never_ends_within_a_day():
    from archiver.settings import StorageSettings
    from archiver.storage.protection import write_params

    storage = StorageSettings(url="s3://b/p", object_lock_mode="COMPLIANCE", retention_days=30)
    now = datetime(2026, 12, 4, tzinfo=UTC)
    key = "recordings/2026/12/04/x.wav"
    assert write_params(storage, key, now)["ObjectLockRetainUntilDate"] == now + timedelta(days=30)
    later = now + timedelta(days=3650)
    assert write_params(storage, key, now, later)["ObjectLockRetainUntilDate"] == later
    past = now - timedelta(days=5)
    assert write_params(storage, key, now, past)["ObjectLockRetainUntilDate"] == now + timedelta(
        days=1
    )
    # Without a lock mode nothing is locked, whatever the rule says.
    unlocked = StorageSettings(url="s3://b/p")
    assert "ObjectLockRetainUntilDate" not in write_params(unlocked, key, now, later)
    # Tombstones are evidence: locked like the chain.
    assert "ObjectLockMode" in write_params(
        storage, "_archiver/tombstones/000000000001-d.jsonl", now
    )


def test_the_rule_reads_a_call_as_its_manifest_line_will_say_it():
    from archiver.manifest.retention import call_fields
    from archiver.models import CallRecord, Direction, Provider

    call = CallRecord(
        provider=Provider.CDR_V2,
        cdr_id="c",
        sip_call_id="s",
        started_at=datetime.fromisoformat(START),
        direction=Direction.INBOUND,
        from_number="+84 903 123 456",
        extension="101",
    )
    schedule = parse_schedule(SCHEDULE, json_format=False, default_days=365, where="r")
    due = schedule.due(call_fields(call))
    assert due.rule == "complaints"
    assert due.ends == datetime.fromisoformat(START) + timedelta(days=3650)


def test_a_legal_rule_says_so_and_legal_must_be_a_boolean():
    text = "[[rule]]\nname='bank'\ndays=10\nlegal=true\n[[rule]]\nname='x'\ndays=1\n"
    schedule = parse_schedule(text, json_format=False, default_days=5, where="r")
    assert schedule.due(_line()).legal
    assert not parse_schedule("", json_format=False, default_days=5, where="r").due(_line()).legal
    text = "[[rule]]\nname='a'\ndays=1\nlegal='yes'\n"
    with pytest.raises(ConfigError, match="legal"):
        parse_schedule(text, json_format=False, default_days=0, where="r")


def test_the_file_may_set_the_default_rule():
    schedule = parse_schedule("default_days = 30\n", json_format=False, default_days=365, where="r")
    assert schedule.due(_line()).rule == DEFAULT_RULE
    assert schedule.due(_line()).ends == datetime.fromisoformat(START) + timedelta(days=30)
    none = parse_schedule("default_days = 0\n", json_format=False, default_days=365, where="r")
    assert none.due(_line()).ends is None
    for bad in ("default_days = -1\n", "default_days = 'x'\n", "default_days = true\n"):
        with pytest.raises(ConfigError, match="default_days"):
            parse_schedule(bad, json_format=False, default_days=0, where="r")
