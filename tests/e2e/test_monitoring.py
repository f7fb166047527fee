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

from tests.support.contract import CONTRACT, STANDARD_PREFIXES, contract_name, exposed_names
from tests.support.paths import REPO
from tests.support.promql import allowed_names, series_names
from tests.support.promtool import run_promtool, run_rule_tests

PROMETHEUS_DIR = REPO / "packaging" / "prometheus"
DASHBOARD = REPO / "packaging" / "grafana" / "secretsync-dashboard.json"
METRIC_RE = re.compile(r"(?<![:\w])secretsync_[a-z_]+(?![:\w])")  # not inside a recording rule name
ALERTS = {
    "SecretsyncOutputStale",
    "SecretsyncNotReady",
    "SecretsyncSyncErrors",
    "SecretsyncAwsThrottled",
    "SecretsyncNotifyFailed",
    "SecretsyncTaskRestarting",
    "SecretsyncRotationNotConverged",
    "SecretsyncOutputNotApplied",
    "SecretsyncFailoverActive",
    "SecretsyncPushFailing",
    "SecretsyncDown",
    "SecretsyncAbsent",
}
# Grafana variables → values that make the dashboard's queries plain PromQL
SUBSTITUTIONS = {
    "$__rate_interval": "5m",
    "$__range": "1h",
    "$job": ".*",
    "$instance": ".*",
    "$price_per_10k": "0.05",
}
JOB_MATCHER_RE = re.compile(r"\bjob\s*(=|!=|=~|!~)")


def unknown_metrics(text: str) -> set[str]:
    return set(METRIC_RE.findall(text)) - set(exposed_names())


def rules() -> list[dict[str, Any]]:
    data = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def alert_rules() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "alert" in rule]


def dashboard_exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def substitute(expr: str) -> str:
    """The dashboard query with its Grafana variables replaced by plain values."""
    for var, replacement in SUBSTITUTIONS.items():
        expr = expr.replace(var, replacement)
    assert "$" not in expr, f"unknown dashboard variable in {expr!r}"
    return expr


def panel_queries(dashboard: dict[str, Any], title: str) -> dict[str, str]:
    """The queries of the panel titled ``title``, by legend, variables substituted."""
    (panel,) = [p for p in dashboard["panels"] if p.get("title") == title]
    return {t["legendFormat"]: substitute(t["expr"]) for t in panel["targets"]}


def selects_non_secretsync_series(expr: str) -> bool:
    """True if the query reads ``up`` or a ``process_*``/``python_*`` series.

    Those exist for every target of a job, secretsync or not.
    """
    return any(name == "up" or name.startswith(STANDARD_PREFIXES) for name in series_names(expr))


def test_alert_rules_are_valid_and_their_unit_tests_pass() -> None:
    run_promtool("check", "rules", "alerts.yml", cwd=PROMETHEUS_DIR)
    output = run_promtool("test", "rules", "alerts_test.yml", cwd=PROMETHEUS_DIR)
    assert "SUCCESS" in output


def test_every_alert_has_a_unit_test_and_uses_only_contract_metrics() -> None:
    recorded = {r["record"] for r in rules() if "record" in r}
    for rule in rules():
        names = series_names(rule["expr"])
        assert names, rule
        assert names <= allowed_names() | recorded, (rule.get("alert"), rule.get("record"))
    alerts = alert_rules()
    assert {r["alert"] for r in alerts} == ALERTS
    tests = yaml.safe_load((PROMETHEUS_DIR / "alerts_test.yml").read_text())
    tested = {
        case["alertname"]: case["exp_alerts"]
        for test in tests["tests"]
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert set(tested) == ALERTS  # each alert is shown firing at least once
    for rule in alerts:
        assert not unknown_metrics(rule["expr"]), rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert {"summary", "description"} <= set(rule["annotations"])


def test_alert_rules_do_not_depend_on_the_scrape_job_name() -> None:
    # a job matcher breaks under a shared job (kubernetes-pods) or a PodMonitor;
    # promtool tests of both set-ups are in alerts_test.yml
    for rule in rules():
        assert not JOB_MATCHER_RE.search(rule["expr"]), rule
        if selects_non_secretsync_series(rule["expr"]):
            assert "and on (job, instance)" in rule["expr"], rule


def test_series_names_finds_the_selected_series_only() -> None:
    expr = (
        'sum by (job, instance) (rate(a_total{job=~"x|y", le="+Inf"}[5m] offset 1m)) '
        '/ on (instance) group_left (version) b{c="d"} and ignoring (e) '
        "histogram_quantile(0.9, c_bucket) > 1e3 unless absent(d) or vector(0)"
    )
    assert series_names(expr) == {"a_total", "b", "c_bucket", "d"}
    assert series_names("up == 0 and on(job, instance) x:y:z") == {"up", "x:y:z"}


def test_dashboard_is_valid_json_and_references_only_contract_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = dashboard_exprs(dashboard)
    used = {name for expr in exprs for name in series_names(substitute(expr))}
    assert used, "no metric found in the dashboard"
    assert not unknown_metrics(DASHBOARD.read_text())
    assert used <= allowed_names(), used - allowed_names()
    # the panels the issue asks for
    for needed in (
        "secretsync_last_success_timestamp_seconds",  # freshness per file
        "secretsync_secret_changes_total",  # changes over time
        "secretsync_aws_requests_total",  # calls by operation/outcome, cost
        "secretsync_notify_total",  # notify outcomes
        "secretsync_poll_duration_seconds_bucket",  # poll duration quantiles
        "secretsync_task_restarts_total",  # tasks that failed and restarted
        "process_resident_memory_bytes",  # RSS
        "process_open_fds",  # file descriptors
    ):
        assert needed in used, needed
    for expr in exprs:
        # up and process_* exist for every target of a shared job: only those
        # of a secretsync count
        if selects_non_secretsync_series(expr):
            assert "and on (job, instance)" in expr and "secretsync_build_info" in expr, expr
        for match in JOB_MATCHER_RE.finditer(expr):
            assert expr[match.start() :].startswith('job=~"$job"'), expr
    job = {v["name"]: v for v in dashboard["templating"]["list"]}["job"]
    assert job["definition"] == "label_values(secretsync_build_info, job)"
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
    queries = [
        {"record": f"dashboard:query_{index}", "expr": substitute(expr)}
        for index, expr in enumerate(dashboard_exprs(dashboard))
    ]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": queries}]}))
    run_promtool("check", "rules", str(path))


def test_dashboard_counts_only_secretsync_targets_of_a_shared_job(tmp_path: Path) -> None:
    """Under an annotation-based ``kubernetes-pods`` job, other apps' targets are ignored."""
    dashboard = json.loads(DASHBOARD.read_text())
    instances = panel_queries(dashboard, "Instances up")
    rss = panel_queries(dashboard, "Memory (RSS)")["{{instance}}"]
    fds = panel_queries(dashboard, "Open file descriptors")["{{instance}}"]

    def target(instance: str, up: str, **series: str) -> list[dict[str, str]]:
        labels = f'job="kubernetes-pods",instance="{instance}"'
        rows = [{"series": f"up{{{labels}}}", "values": up}]
        rows += [{"series": f"{name}{{{labels}}}", "values": v} for name, v in series.items()]
        return rows

    input_series = [
        # a healthy secretsync
        *target(
            "10.0.0.1:9464",
            "1x40",
            secretsync_build_info="1x40",
            process_resident_memory_bytes="5e7x40",
            process_open_fds="12x40",
        ),
        # a secretsync down since 6m: its series went stale
        *target(
            "10.0.0.4:9464",
            "1x5 0x35",
            secretsync_build_info="1x5 stale",
            process_resident_memory_bytes="6e7x5 stale",
            process_open_fds="13x5 stale",
        ),
        # a Java app with process metrics of its own, and a broken app
        *target(
            "10.0.0.2:8080",
            "1x40",
            process_resident_memory_bytes="2e9x40",
            process_open_fds="300x40",
        ),
        *target("10.0.0.3:8080", "0x40"),
    ]
    one = 'job="kubernetes-pods",instance="10.0.0.1:9464"'
    checks = [
        (instances["up"], [{"labels": "{}", "value": 1}]),
        (instances["down"], [{"labels": "{}", "value": 1}]),
        (rss, [{"labels": f"process_resident_memory_bytes{{{one}}}", "value": 5e7}]),
        (fds, [{"labels": f"process_open_fds{{{one}}}", "value": 12}]),
    ]
    run_rule_tests(
        tmp_path,
        [],
        [
            {
                "interval": "1m",
                "input_series": input_series,
                "promql_expr_test": [
                    {"expr": expr, "eval_time": "30m", "exp_samples": samples}
                    for expr, samples in checks
                ],
            }
        ],
    )


def test_monitoring_page_lists_the_contract_and_the_alerts() -> None:
    section = (REPO / "docs" / "monitoring.md").read_text()
    table = {m.group(1) for m in re.finditer(r"^\| `(secretsync_[a-z_]+)` \|", section, re.M)}
    assert table == {contract_name(f) for f in CONTRACT}
    for alert in ALERTS:
        assert alert in section
    for word in ("/healthz", "/readyz", "PodMonitor", "prometheus.io/scrape"):
        assert word in section
    assert 'job=~".*secretsync.*"' not in section  # the rules no longer depend on the job
    assert "(docs/monitoring.md)" in (REPO / "README.md").read_text()
