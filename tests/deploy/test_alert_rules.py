"""deploy/prometheus: the alert rules pass promtool's checks and their unit tests
(synthetic series), each alert is tested firing and quiet, and has its runbook section."""

from __future__ import annotations

import re

import yaml

from archiver.setting_names import known_variables
from tests.deploy.kit import DASHBOARD, RULE_TESTS, RULES, RUNBOOK, alert_rules, promtool


def test_the_rules_pass_promtool_check():
    done = promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in done.stdout


def test_the_rules_pass_their_unit_tests():
    done = promtool("test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_is_tested_firing_and_quiet():
    cases = [
        case
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    ]
    for rule in alert_rules():
        mine = [case for case in cases if case["alertname"] == rule["alert"]]
        assert any(case["exp_alerts"] for case in mine), f"{rule['alert']}: never seen firing"
        assert any(not case["exp_alerts"] for case in mine), f"{rule['alert']}: never seen quiet"


def _anchors() -> set[str]:
    """GitHub's anchors of the runbook's headings (lower case, spaces to dashes)."""
    headings = re.findall(r"^#{2,3} (.+)$", RUNBOOK.read_text(), flags=re.MULTILINE)
    return {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in headings}


def test_every_alert_has_a_runbook_section_and_says_what_it_is():
    anchors = _anchors()
    for rule in alert_rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        notes = rule["annotations"]
        assert notes["summary"], name
        assert notes["description"], name
        assert notes["runbook_url"] == f"docs/runbook.md#{name.lower()}", name
        assert name.lower() in anchors, f"docs/runbook.md has no section {name}"


# Settings the kit names before the archiver has them (none now: ARCHIVER_LAG_WARNING
# came with the faults work, issue 22).
PENDING_SETTINGS: set[str] = set()


def _settings_named() -> set[str]:
    names: set[str] = set()
    for path in (RULES, RULE_TESTS, DASHBOARD, RUNBOOK):
        names |= set(re.findall(r"ARCHIVER_[A-Z0-9_]*[A-Z0-9]", path.read_text()))
    return names


def test_the_kit_and_the_runbook_name_only_real_settings():
    unknown = _settings_named() - known_variables() - PENDING_SETTINGS
    assert not unknown, f"not settings: {sorted(unknown)}"


def test_the_lag_warning_setting_exists():
    assert "ARCHIVER_LAG_WARNING" in known_variables()
