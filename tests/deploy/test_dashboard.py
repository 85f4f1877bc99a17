"""deploy/grafana: the dashboard is a well-formed Grafana dashboard whose every panel
query is valid PromQL (promtool parses it as a recording rule)."""

from __future__ import annotations

import yaml

from tests.deploy.kit import dashboard, dashboard_exprs, promtool


def test_the_panels_are_well_formed():
    board = dashboard()
    assert board["uid"]
    assert board["title"]
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids)), "two panels share an id"
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        assert panel["targets"], f"{panel['title']}: no query"
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        pos = panel["gridPos"]
        mine = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        cells |= mine
    [variable] = board["templating"]["list"]
    assert (variable["name"], variable["type"]) == ("datasource", "datasource")


def test_every_panel_query_is_valid_promql(tmp_path):
    rules = [
        {"record": f"dashboard:panel_{i}", "expr": expr.replace("$__rate_interval", "5m")}
        for i, expr in enumerate(dashboard_exprs())
    ]
    path = tmp_path / "panels.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    done = promtool("check", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
