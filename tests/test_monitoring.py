"""The monitoring assets: alert rules (promtool unit tests), the Grafana dashboard, the docs.

Every metric name these files mention must exist in the contract, so a rename
in the code cannot silently leave a dashboard panel or an alert empty.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO
from tests.support.contract import CONTRACT, contract_name, exposed_names
from tests.support.promtool import run_promtool

PROMETHEUS_DIR = REPO / "packaging" / "prometheus"
DASHBOARD = REPO / "packaging" / "grafana" / "secretsync-dashboard.json"
METRIC_RE = re.compile(r"\bsecretsync_[a-z_]+\b")
ALERTS = {
    "SecretsyncOutputStale",
    "SecretsyncNotReady",
    "SecretsyncSyncErrors",
    "SecretsyncAwsThrottled",
    "SecretsyncNotifyFailed",
    "SecretsyncDown",
    "SecretsyncAbsent",
}


def unknown_metrics(text: str) -> set[str]:
    return set(METRIC_RE.findall(text)) - set(exposed_names())


def alert_rules() -> list[dict[str, Any]]:
    data = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def dashboard_exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_alert_rules_are_valid_and_their_unit_tests_pass() -> None:
    run_promtool("check", "rules", "alerts.yml", cwd=PROMETHEUS_DIR)
    output = run_promtool("test", "rules", "alerts_test.yml", cwd=PROMETHEUS_DIR)
    assert "SUCCESS" in output


def test_every_alert_has_a_unit_test_and_uses_only_contract_metrics() -> None:
    rules = alert_rules()
    assert {r["alert"] for r in rules} == ALERTS
    tests = yaml.safe_load((PROMETHEUS_DIR / "alerts_test.yml").read_text())
    tested = {
        case["alertname"]: case["exp_alerts"]
        for test in tests["tests"]
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert set(tested) == ALERTS  # each alert is shown firing at least once
    for rule in rules:
        assert not unknown_metrics(rule["expr"]), rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert {"summary", "description"} <= set(rule["annotations"])


def test_dashboard_is_valid_json_and_references_only_contract_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = dashboard_exprs(dashboard)
    used = {name for expr in exprs for name in METRIC_RE.findall(expr)}
    assert used, "no metric found in the dashboard"
    assert not unknown_metrics(DASHBOARD.read_text())
    # the panels the issue asks for
    for needed in (
        "secretsync_last_success_timestamp_seconds",  # freshness per file
        "secretsync_secret_changes_total",  # changes over time
        "secretsync_aws_requests_total",  # calls by operation/outcome, cost
        "secretsync_notify_total",  # notify outcomes
        "secretsync_poll_duration_seconds_bucket",  # poll duration quantiles
    ):
        assert needed in used, needed
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["price_per_10k"]["query"] == "0.05"  # USD per 10,000 API calls
    cost = [e for e in exprs if "$price_per_10k" in e]
    assert cost and all("3600" in e and "/ 10000" in e for e in cost)
    assert any("histogram_quantile(0.99" in e for e in exprs)
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_dashboard_queries_parse_as_promql(tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    substitutions = {
        "$__rate_interval": "5m",
        "$job": ".*",
        "$instance": ".*",
        "$price_per_10k": "0.05",
    }
    rules = []
    for index, expr in enumerate(dashboard_exprs(dashboard)):
        for var, replacement in substitutions.items():
            expr = expr.replace(var, replacement)
        assert "$" not in expr, f"unknown dashboard variable in {expr!r}"
        rules.append({"record": f"dashboard:query_{index}", "expr": expr})
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    run_promtool("check", "rules", str(path))


def test_readme_monitoring_section_lists_the_contract_and_the_alerts() -> None:
    readme = (REPO / "README.md").read_text()
    start = readme.index("## Monitoring")
    section = readme[start : readme.index("\n## ", start + 1)]
    table = {m.group(1) for m in re.finditer(r"^\| `(secretsync_[a-z_]+)` \|", section, re.M)}
    assert table == {contract_name(f) for f in CONTRACT}
    for alert in ALERTS:
        assert alert in section
    for word in ("/healthz", "/readyz", "PodMonitor", "prometheus.io/scrape"):
        assert word in section
    assert readme.index("## How it behaves") < start
