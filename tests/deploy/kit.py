"""Reading deploy/: the alert rules, their tests, the dashboard, the metric names they use."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
RULES = DEPLOY / "prometheus" / "archiver-alerts.yaml"
RULE_TESTS = DEPLOY / "prometheus" / "archiver-alerts.test.yaml"
DASHBOARD = DEPLOY / "grafana" / "archiver-dashboard.json"
RUNBOOK = ROOT / "docs" / "runbook.md"
# Series Prometheus makes itself, not the archiver.
PROMETHEUS_OWN = {"up"}
_METRIC = re.compile(r"\b(archiver_[a-z0-9_]+|up)\b(?=\s*[{\[)\s]|$)")


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run Debian's promtool (package prometheus; .ci/run installs it); fail if missing."""
    if shutil.which("promtool") is None:
        pytest.fail("promtool not found: apt-get install -y prometheus (.ci/run does it)")
    return subprocess.run(
        ["promtool", *args], capture_output=True, text=True, check=False, cwd=cwd, timeout=120
    )


def alert_rules() -> list[dict[str, Any]]:
    """Every alerting rule of the rules file."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def dashboard() -> dict[str, Any]:
    """The Grafana dashboard."""
    return dict(json.loads(DASHBOARD.read_text()))


def dashboard_exprs() -> list[str]:
    """Every PromQL expression of every panel."""
    return [t["expr"] for panel in dashboard()["panels"] for t in panel["targets"]]


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression reads (not its functions or label values)."""
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    return set(_METRIC.findall(without_strings))


def used_metrics() -> set[str]:
    """Every series name a rule or a panel reads."""
    names: set[str] = set()
    for expr in [rule["expr"] for rule in alert_rules()] + dashboard_exprs():
        names |= metric_names(expr)
    return names
