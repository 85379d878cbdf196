"""The Grafana dashboard and the alert rules ask only for metrics the service really
exports (scraped from a service on the embedded Redis, which exports them all), and
every dashboard expression is valid PromQL (promtool checks them as recording rules)."""

import json
import re
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import yaml

from points_service.settings import Settings
from tests.conftest import AUTH, ROOT, unique
from tests.http.server import ServerProcess
from tests.http.test_events_api import body
from tests.http.test_metrics import promtool_accepts, tool

DASHBOARD = ROOT / "deploy" / "grafana" / "points-service.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
PROMETHEUS_OWN = {"up"}
# A name followed by `{`, `[`, `)` or an operator, not a function or a keyword.
_NAME = re.compile(r"\b([a-z_][a-z0-9_]*)\b(?!\s*\()")
_KEYWORDS = {
    "by", "without", "and", "or", "unless", "on", "ignoring", "group_left", "group_right",
    "le", "offset", "bool", "inf", "nan",
}  # fmt: skip


def metric_names(expression: str) -> set[str]:
    without_strings = re.sub(r'"[^"]*"', '""', expression)
    without_labels = re.sub(r"\{[^}]*\}", "", without_strings)
    without_by = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", without_labels)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_by)
    return {n for n in _NAME.findall(without_ranges) if n not in _KEYWORDS}


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    found = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            found.extend(t["expr"] for t in panel.get("targets", []))
            walk(panel.get("panels", []))

    walk(dashboard["panels"])
    return found


def alert_expressions() -> list[str]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def exported(text: str) -> set[str]:
    """Every sample name the scrape declares, histograms' series included."""
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE):
        names.add(name)
        if kind == "histogram":
            names.update(f"{name}_{suffix}" for suffix in ("bucket", "count", "sum"))
    return names


def test_the_expression_reader_finds_metric_names() -> None:
    expression = (
        'histogram_quantile(0.99, sum by (le, op) (rate(points_a_bucket{op="x"}[5m])))'
        " / on (op) sum(points_b_total) > 3 * 3600 and time() - max(up) > 0"
    )
    assert metric_names(expression) == {"points_a_bucket", "points_b_total", "up"}


def test_dashboard_and_alerts_name_only_exported_metrics(
    base_settings: Settings, tmp_path: Path
) -> None:
    settings = replace(base_settings, redis_url=None, data_dir=tmp_path / "var")
    server = ServerProcess(settings, tmp_path / "server.log")
    server.start()
    try:
        assert httpx.post(
            f"{server.url}/v1/events", headers=AUTH, json=body(unique("u"), "login")
        ).is_success
        deadline = time.monotonic() + 30
        while "points_embedded_redis_up" not in (text := httpx.get(f"{server.url}/metrics").text):
            assert time.monotonic() < deadline, "no embedded Redis gauges"
            time.sleep(0.2)
    finally:
        server.stop()
    promtool_accepts(text)
    have = exported(text) | PROMETHEUS_OWN
    sources = {"dashboard": dashboard_expressions(), "alerts": alert_expressions()}
    wanted = {
        (where, name)
        for where, expressions in sources.items()
        for expression in expressions
        for name in metric_names(expression)
    }
    assert len(wanted) > 20
    missing = sorted((where, name) for where, name in wanted if name not in have)
    assert not missing, f"not exported by the service: {missing}"
    # The dashboard shows what the issue asks for.
    everything = " ".join(dashboard_expressions())
    for needed in (
        "points_events_total", "points_http_request_duration_seconds_bucket",
        "points_credited_total", "points_rules_info", "points_dependency_up",
        'points_programme_today{measure="shares"}',
        'points_programme_today{measure="active_informants"}',
    ):  # fmt: skip
        assert needed in everything, needed


def test_dashboard_expressions_are_valid_promql(tmp_path: Path) -> None:
    expressions = dashboard_expressions()
    recorded = [
        {"record": f"dashboard:expression_{i}", "expr": e.replace("$__rate_interval", "5m")}
        for i, e in enumerate(expressions)
    ]
    rules = {"groups": [{"name": "dashboard", "rules": recorded}]}
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(rules))
    checked = subprocess.run(
        [tool("promtool"), "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"{len(expressions)} rules found" in checked.stdout


def test_alert_rules_check_and_pass_their_unit_tests() -> None:
    folder = ALERTS.parent
    for argv in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts.test.yml"]):
        run = subprocess.run(
            [tool("promtool"), *argv], cwd=folder, capture_output=True, text=True, check=False
        )
        assert run.returncode == 0, run.stdout + run.stderr
        assert "SUCCESS" in run.stdout
