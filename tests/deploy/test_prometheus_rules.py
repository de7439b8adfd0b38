"""deploy/prometheus/payq-rules.yml: promtool accepts it and its unit tests pass; every alert is tested both ways and says what to open."""

from __future__ import annotations

import re
from typing import Any

import yaml

from payq.cli.metrics import METRICS
from tests.deploy.promtool import PROMETHEUS_DIR, RULE_TESTS, RULES, promtool

COUNTERS = {"payq_api_calls", "payq_jobs_recovered", "payq_worker_starts", "payq_intake_answers"}
PAYQ_METRIC = re.compile(r"\bpayq_[a-z_]+\b")
RECORDED = re.compile(r"\bpayq:[a-z0-9_:]+\b")


def rules() -> list[dict[str, Any]]:
    """Every rule of every group."""
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def alerts() -> dict[str, dict[str, Any]]:
    """The alerting rules by name."""
    return {rule["alert"]: rule for rule in rules() if "alert" in rule}


def exported() -> set[str]:
    """Every metric name ``payq metrics`` serves (a counter with its ``_total``)."""
    return {f"{name}_total" if name in COUNTERS else name for name in METRICS}


def test_promtool_checks_the_rules_and_the_prometheus_configuration() -> None:
    checked = promtool("check", "rules", RULES.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    config = promtool("check", "config", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr


def test_promtool_runs_the_rules_unit_tests() -> None:
    ran = promtool("test", "rules", RULE_TESTS.name)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "SUCCESS" in ran.stdout


def test_promtool_fails_a_rules_test_whose_expected_alert_does_not_fire(tmp_path: Any) -> None:
    # the harness can fail: a copy of the tests that expects PayqNoSteadyWorker from a healthy fleet
    broken = {"rule_files": [str(RULES)], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [{"series": 'payq_workers_steady{job="payq",instance="m1"}', "values": "2x10"}],
        "alert_rule_test": [{"eval_time": "5m", "alertname": "PayqNoSteadyWorker", "exp_alerts": [{"exp_labels": {"severity": "critical"}}]}],
    }]}
    path = tmp_path / "broken.test.yml"
    path.write_text(yaml.safe_dump(broken))
    ran = promtool("test", "rules", str(path), cwd=PROMETHEUS_DIR)
    assert ran.returncode != 0 and "FAILED" in ran.stdout + ran.stderr


def test_the_issue_s_alerts_are_all_there() -> None:
    assert {
        "PayqJobsWaiting", "PayqDueJobsNotMoved", "PayqDeadLettersGrowing", "PayqEndpointPaused", "PayqEndpointPaceLow",
        "PayqNoSteadyWorker", "PayqRedisReplicasBelowFloor", "PayqRedisDegraded", "PayqRedisReplicaLost", "PayqOutboxBehind",
        "PayqNotificationsFailing", "PayqIntakeErrors", "PayqWorkersRestarting",
    } <= set(alerts())


def test_every_alert_has_a_unit_test_where_it_fires_and_one_where_it_does_not() -> None:
    fired: set[str] = set()
    quiet: set[str] = set()
    for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for case in test.get("alert_rule_test", []):
            (fired if case.get("exp_alerts") else quiet).add(case["alertname"])
    assert sorted(set(alerts()) - fired) == [], "alerts no test fires"
    assert sorted(set(alerts()) - quiet) == [], "alerts no test keeps quiet"


def test_every_alert_says_what_happened_why_it_matters_and_what_to_open() -> None:
    for name, rule in alerts().items():
        annotations = rule.get("annotations", {})
        assert {"summary", "description", "runbook"} <= set(annotations), name
        assert "`payq " in annotations["runbook"] or "/console/" in annotations["runbook"], f"{name}: name a payq command or console page"
        assert rule["labels"]["severity"] in {"critical", "warning"}, name


def test_the_rules_read_only_metrics_payq_exports_and_rules_recorded_here() -> None:
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    used = {name for rule in rules() for name in PAYQ_METRIC.findall(rule["expr"])}
    read = {name for rule in rules() for name in RECORDED.findall(rule["expr"])}
    assert sorted(used - exported()) == []
    assert sorted(read - recorded) == []
