"""Pure rules of retrieval: write protection, the id index, manifest partitions, search, audit."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from archiver.errors import ConfigError, StorageError
from archiver.manifest.entry import ManifestEntry
from archiver.manifest.reader import date_span, parse_manifest, select_partitions
from archiver.retrieval.audit import audit_key, audit_record, operator_name
from archiver.retrieval.errors import AmbiguousIdError, CallNotFoundError
from archiver.retrieval.fetch import mismatch
from archiver.retrieval.index import (
    choose,
    id_prefix,
    parse_pointer,
    pointer_body,
    pointer_keys,
    write_pointers,
)
from archiver.retrieval.search import SearchQuery, phone_key, to_csv, to_json
from archiver.retrieval.verify import verify_archive
from archiver.settings import StorageSettings, load_settings
from archiver.storage.base import StoredObject
from archiver.storage.layout import partition_date
from archiver.storage.protection import write_params
from tests.support.lines import manifest_line

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
SHA = "ab" * 32


def line(**overrides: object) -> dict[str, object]:
    return manifest_line(**{"sha256": SHA, "agent_name": "Nguyễn Văn An", **overrides})


def call(**overrides: object) -> ManifestEntry:
    return ManifestEntry.from_line(line(**overrides), "manifests/date=2021-02-17/1-run.jsonl")


# -- write protection ---------------------------------------------------------------------

LOCKED = StorageSettings(
    url="s3://b/p", object_lock_mode="GOVERNANCE", retention_days=30, storage_class="STANDARD_IA"
)


@pytest.mark.parametrize(
    ("key", "locked", "classed"),
    [
        ("recordings/2021/02/17/a.wav", True, True),
        ("manifests/date=2021-02-17/1-r.jsonl", True, False),
        ("_archiver/audit/2026/01/02/x.json", True, False),
        ("_archiver/ids/ab/a/cdr_v2.a.0123.json", False, False),
        ("_archiver/check/abc", False, False),
    ],
)
def test_retention_and_storage_class_by_key(key, locked, classed):
    params = write_params(LOCKED, key, NOW)
    assert ("ObjectLockMode" in params) is locked
    if locked:
        assert params["ObjectLockMode"] == "GOVERNANCE"
        assert params["ObjectLockRetainUntilDate"] == NOW + timedelta(days=30)
    assert ("StorageClass" in params) is classed


def test_no_protection_settings_no_parameters():
    assert write_params(StorageSettings(url="s3://b"), "recordings/a.wav", NOW) == {}


@pytest.mark.parametrize(
    ("sse", "key_id", "expected"),
    [
        ("AES256", None, {"ServerSideEncryption": "AES256"}),
        ("aws:kms", None, {"ServerSideEncryption": "aws:kms"}),
        ("aws:kms", "alias/x", {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "alias/x"}),
    ],
)
def test_encryption_on_every_object(sse, key_id, expected):
    settings = StorageSettings(url="s3://b", sse=sse, kms_key_id=key_id)
    for key in ("recordings/a.wav", "_archiver/ids/ab/a/x.json"):
        assert write_params(settings, key, NOW) == expected


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"ARCHIVER_STORAGE__OBJECT_LOCK_MODE": "GOVERNANCE"},
            "RETENTION_DAYS: must be at least 1",
        ),
        ({"ARCHIVER_STORAGE__RETENTION_DAYS": "7"}, "RETENTION_DAYS: needs"),
        ({"ARCHIVER_STORAGE__OBJECT_LOCK_MODE": "forever"}, "OBJECT_LOCK_MODE"),
        ({"ARCHIVER_STORAGE__KMS_KEY_ID": "k"}, "KMS_KEY_ID: needs ARCHIVER_STORAGE__SSE=aws:kms"),
        ({"ARCHIVER_STORAGE__SSE": "rot13"}, "ARCHIVER_STORAGE__SSE"),
        ({"ARCHIVER_STORAGE__STORAGE_CLASS": "glacier"}, "GLACIER objects cannot be read"),
        ({"ARCHIVER_STORAGE__STORAGE_CLASS": "a b"}, "storage class name"),
        ({"ARCHIVER_STORAGE__PRESIGN_EXPIRY": "0"}, "PRESIGN_EXPIRY"),
    ],
)
def test_bad_protection_settings_name_the_variable(monkeypatch, tmp_path, env, message):
    monkeypatch.chdir(tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        load_settings()


def test_protection_settings_are_normalized(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ARCHIVER_STORAGE__OBJECT_LOCK_MODE", "compliance")
    monkeypatch.setenv("ARCHIVER_STORAGE__RETENTION_DAYS", "3650")
    monkeypatch.setenv("ARCHIVER_STORAGE__SSE", "AWS:KMS")
    monkeypatch.setenv("ARCHIVER_STORAGE__STORAGE_CLASS", "standard_ia")
    storage = load_settings().storage
    assert (storage.object_lock_mode, storage.sse, storage.storage_class) == (
        "COMPLIANCE",
        "aws:kms",
        "STANDARD_IA",
    )


# -- the id index ---------------------------------------------------------------------------


def test_one_pointer_when_the_ids_are_equal_two_otherwise():
    assert len(pointer_keys(call(cdr_id="sip-1"))) == 1
    keys = pointer_keys(call())
    assert [k.rsplit("/", 1)[0] + "/" for k in keys] == [id_prefix("sip-1"), id_prefix("cdr-1")]
    assert all(k.endswith(f"cdr_v2.cdr-1.{SHA[:16]}.json") for k in keys)


@pytest.mark.parametrize("hostile", ["../../etc/passwd", "a/b", "_archiver", "x\x00y", " spaced "])
def test_a_hostile_id_stays_inside_its_shard_folder(hostile):
    prefix = id_prefix(hostile)
    assert prefix.startswith("_archiver/ids/")
    assert prefix.count("/") == 4  # _archiver/ids/<hh>/<one segment>/
    assert ".." not in prefix.split("/")


def test_ids_equal_after_normalization_share_a_folder():
    assert id_prefix(" abc ") == id_prefix("abc")
    assert id_prefix("abc") != id_prefix("abd")


def test_pointer_round_trip_keeps_the_line_and_its_manifest():
    original = call()
    again = parse_pointer(pointer_body(original))
    assert again == original
    assert again.fields == original.fields
    assert again.manifest_key == original.manifest_key
    with pytest.raises(ValueError, match="not an index pointer"):
        parse_pointer(b'{"entry": {}}')


def test_choose_one_none_or_refuse_with_every_cdr_id():
    a, b = call(cdr_id="cdr-a"), call(cdr_id="cdr-b", provider="epacific")
    assert choose("sip-1", [a]) is a
    with pytest.raises(CallNotFoundError, match="no archived call with id 'sip-1'"):
        choose("sip-1", [])
    with pytest.raises(AmbiguousIdError, match="2 archived calls.*cdr cdr-a.*cdr cdr-b"):
        choose("sip-1", [a, b])
    assert choose("sip-1", [a, b], provider="epacific") is b


# -- manifest lines and partitions ---------------------------------------------------------------


def test_parse_manifest_keeps_good_lines_and_names_bad_ones():
    content = b"\n".join(
        [
            json.dumps(line()).encode(),
            b"{not json",
            json.dumps(line(sha256="xyz")).encode(),
            json.dumps(line(size=-1)).encode(),
            json.dumps({"sip_call_id": "s"}).encode(),
            b"",
        ]
    )
    manifest = parse_manifest("m", content)
    assert len(manifest.calls) == 1
    assert [(b.line_number, b.reason) for b in manifest.bad_lines] == [
        (2, "not JSON"),
        (3, "sha256 is not 64 hex digits"),
        (4, "size is not a byte count"),
        (5, "missing cdr_id, provider, object_key, sha256, size"),
    ]


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("manifests/date=2021-02-17/000001-run.jsonl", date(2021, 2, 17)),
        ("manifests/date=2021-02-30/000001-run.jsonl", None),
        ("manifests/date=2021-02-17/sub/x.jsonl", None),
        ("manifests/other.jsonl", None),
    ],
)
def test_partition_date(key, expected):
    assert partition_date(key) == expected


def test_partitions_are_selected_one_day_wider_each_side():
    since = datetime(2021, 2, 17, tzinfo=HCM)
    until = datetime(2021, 2, 18, tzinfo=HCM)
    assert date_span(since, until, HCM) == (date(2021, 2, 16), date(2021, 2, 18))
    objects = [StoredObject(f"manifests/date=2021-02-{d}/1-r.jsonl", "", 1) for d in range(10, 25)]
    chosen = select_partitions(objects, since, until, HCM)
    assert [partition_date(o.key) for o in chosen] == [date(2021, 2, d) for d in (16, 17, 18)]
    assert len(select_partitions(objects, None, None, HCM)) == len(objects)


# -- get -------------------------------------------------------------------------------------


def test_mismatch_names_size_then_hash():
    c = call()
    assert mismatch(c, "k", 10, SHA) is None
    assert mismatch(c, "k", 10, None) is None
    assert "11 bytes" in (mismatch(c, "k", 11, SHA) or "")
    assert "SHA-256 " + "cd" * 32 in (mismatch(c, "k", 10, "cd" * 32) or "")


# -- search ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "key"),
    [
        ("+84 90 123 4567", "0901234567"),
        ("84901234567", "0901234567"),
        ("0084901234567", "0901234567"),
        ("090-123-4567", "0901234567"),
        ("101", "101"),
        ("8412", "8412"),  # short: not a country code
    ],
)
def test_phone_key(number, key):
    assert phone_key(number) == key


@pytest.mark.parametrize(
    ("query", "hit"),
    [
        (SearchQuery(phone="0901234567"), True),
        (SearchQuery(phone="+842873001919"), True),
        (SearchQuery(phone="0999999999"), False),
        (SearchQuery(extension="101"), True),
        (SearchQuery(extension="10"), False),
        (SearchQuery(agent="AGENT101"), True),
        (SearchQuery(agent="nguyễn văn an"), True),
        (SearchQuery(direction="outbound"), False),
        (SearchQuery(since=datetime(2021, 2, 17, 8, tzinfo=HCM)), True),
        (SearchQuery(until=datetime(2021, 2, 17, 8, tzinfo=HCM)), False),
        (SearchQuery(phone="0901234567", direction="inbound", extension="101"), True),
    ],
)
def test_search_criteria(query, hit):
    assert query.matches(call()) is hit


def test_a_phone_without_digits_is_refused():
    with pytest.raises(ValueError, match="no digits"):
        SearchQuery(phone="abc")


def test_exports_carry_every_field_and_defuse_formulas():
    calls = [call(agent_name="=HYPERLINK(1)"), call(cdr_id="cdr-2", extra="x")]
    rows = list(csv.DictReader(io.StringIO(to_csv(calls))))
    assert rows[0]["agent_name"] == "'=HYPERLINK(1)"
    assert rows[0]["from_number"] == "+84 90 123 4567"  # a number stays as it is
    assert rows[1]["extra"] == "x"
    assert rows[0]["manifest_key"] == "manifests/date=2021-02-17/1-run.jsonl"
    assert json.loads(to_json(calls))[1]["cdr_id"] == "cdr-2"


# -- audit -------------------------------------------------------------------------------------


def test_audit_key_and_record():
    key = audit_key("get", NOW, "0123abcd")
    assert key == "_archiver/audit/2026/01/02/20260102T030405.000000Z-get-0123abcd.json"
    record = audit_record(
        action="get", operator="auditor", target={"id": "x"}, result="ok", now=NOW
    )
    assert record["at"] == "2026-01-02T03:04:05Z"
    assert record["operator"] == "auditor"
    assert "@" in record["os_user"]


def test_operator_defaults_to_user_at_host():
    assert operator_name("  ") == operator_name(None)
    assert "@" in operator_name(None)
    assert operator_name("Kiểm toán") == "Kiểm toán"


# -- a storage outage surfaces as the storage's error, not an exception group --------------


class _FailingStore:
    description = "s3://down"

    def relative_key(self, full_key: str) -> str:
        return full_key

    async def put_bytes(self, key, data, **kwargs):
        raise StorageError("s3://down: cannot write: connection refused")

    async def head(self, key):
        raise StorageError("s3://down: cannot read: connection refused")

    async def read(self, key, chunk_size=1024 * 1024):
        yield (json.dumps(line()) + "\n").encode()

    async def list(self, prefix):  # no chain links, no index pointers
        for _ in ():
            yield


async def test_a_failed_pointer_write_raises_the_storage_error():
    with pytest.raises(StorageError, match="cannot write"):
        await write_pointers(_FailingStore(), [call(), call(cdr_id="cdr-2")])  # type: ignore[arg-type]


async def test_a_failed_check_during_verify_raises_the_storage_error():
    manifests = [StoredObject("manifests/date=2021-02-17/1-r.jsonl", "", 1)]
    with pytest.raises(StorageError, match="cannot read"):
        await verify_archive(_FailingStore(), manifests)  # type: ignore[arg-type]
