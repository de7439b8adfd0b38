"""deploy/prometheus/payq-dashboard.json: a Grafana dashboard whose every query parses and reads only what payq exports or records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.promtool import DASHBOARD, promtool
from tests.deploy.test_prometheus_rules import PAYQ_METRIC, RECORDED, exported, rules

PANEL_TYPES = {"timeseries", "stat", "gauge", "table", "bargauge", "text", "row"}
GRID_COLUMNS = 24


def dashboard() -> dict[str, Any]:
    """The dashboard, as Grafana imports it."""
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def expressions() -> list[str]:
    """Every PromQL expression of every panel, and of the annotations."""
    board = dashboard()
    found = [target["expr"] for panel in board["panels"] for target in panel.get("targets", [])]
    return found + [a["expr"] for a in board.get("annotations", {}).get("list", []) if "expr" in a]


def test_the_dashboard_is_grafana_dashboard_json() -> None:
    board = dashboard()
    assert board["title"] and board["uid"] and isinstance(board["schemaVersion"], int)
    assert [v["name"] for v in board["templating"]["list"] if v["type"] == "datasource"] == ["datasource"]
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        assert panel["type"] in PANEL_TYPES and panel["title"], panel
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        grid = panel["gridPos"]
        assert all(isinstance(grid[k], int) and grid[k] >= 0 for k in ("h", "w", "x", "y")) and grid["x"] + grid["w"] <= GRID_COLUMNS
        covered = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not covered & cells, f"{panel['title']} overlaps another panel"
        cells |= covered
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert ref_ids and len(ref_ids) == len(set(ref_ids)), panel["title"]


def test_the_dashboard_shows_what_the_issue_asks_for() -> None:
    text = " ".join(expressions())
    for shown in ("payq:api_calls:rate5m", "payq:queue_oldest_age_seconds", "payq_dead_letters", 'status="429"',
                  "payq_endpoint_pace_per_second", "payq_outbox_events", "payq_workers_live"):
        assert shown in text, shown


def test_every_dashboard_expression_parses(tmp_path: Path) -> None:
    # promtool parses PromQL only inside a rule file: one recording rule per expression
    recorded = {"groups": [{"name": "dashboard", "rules": [{"record": f"dashboard:expr_{i}", "expr": expr}
                                                          for i, expr in enumerate(expressions())]}]}
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(recorded))
    checked = promtool("check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(expressions())} rules found" in checked.stdout


def test_a_query_that_does_not_parse_is_caught(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "d", "rules": [{"record": "d:x", "expr": "sum by (queue (payq_queue_depth)"}]}]}))
    assert promtool("check", "rules", str(path)).returncode != 0


def test_the_dashboard_reads_only_metrics_payq_exports_and_rules_recorded_for_it() -> None:
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    text = " ".join(expressions())
    assert sorted(set(PAYQ_METRIC.findall(text)) - exported()) == []
    assert sorted(set(RECORDED.findall(text)) - recorded) == []
