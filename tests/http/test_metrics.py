"""The Prometheus metrics: what a scrape shows after real traffic, that `promtool check
metrics` accepts it, that several workers add up, and that a real Prometheus scraping
the service reads back the credited total."""

import asyncio
import shutil
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import httpx
import msgspec
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from points_service.adapters.metrics import exposition
from points_service.http.app import create_app
from points_service.http.schemas import event_decoder
from points_service.runtime import Runtime
from points_service.settings import Settings
from tests.conftest import AUTH, api_client, unique
from tests.http.server import ServerProcess, free_port
from tests.http.test_events_api import body
from tests.http.test_operations import closed_port

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    hits = [v for (n, ls), v in found.items() if n == name and wanted <= ls]
    assert hits, f"no sample {name}{labels}"
    return sum(hits)


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is not installed: `make test` installs Debian's prometheus package"
    return path


def promtool_accepts(text: str) -> None:
    checked = subprocess.run(
        [tool("promtool"), "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


async def test_a_scrape_shows_the_traffic_and_passes_promtool(base_settings: Settings) -> None:
    app = create_app(base_settings, CollectorRegistry())
    who = [unique("u") for _ in range(3)]
    async with api_client(app, timeout=60) as client:
        events = [body(w, "login") for w in who]
        for event in events:
            assert (await client.post("/v1/events", json=event)).status_code == 200
        assert (await client.post("/v1/events", json=events[0])).status_code == 200  # replay
        bad = body(who[0], "share")  # a share without its content id
        assert (await client.post("/v1/events", json=bad)).status_code == 422
        batch = await client.post("/v1/events/batch", json=[body(who[1], "browse"), {"x": 1}])
        assert batch.json()["rejected"] == 2
        assert (await client.get(f"/v1/informants/{who[0]}/ledger")).status_code == 200
        reconciled = await client.post("/v1/admin/leaderboards/reconcile")
        assert reconciled.status_code == 200 and reconciled.json()["differences"] == 0
        rebuilt = await client.post("/v1/admin/leaderboards/rebuild?metric=points")
        assert rebuilt.status_code == 200 and rebuilt.json()["day_rows"] >= 3
        refused = await client.post("/v1/admin/leaderboards/rebuild?scope=planet")
        assert refused.status_code == 422 and refused.json()["field"] == "scope"
        # The health watch checked Redis and the database when the app started.
        text = (await client.get("/metrics")).text

    found = samples(text)
    assert value(found, "points_events_total", action="login", outcome="credited") == 3
    assert value(found, "points_credited_total", action="login") == 3  # a login is 1 point
    assert value(found, "points_events_refused_total", code="invalid") == 3
    assert value(found, "points_http_request_duration_seconds_count", route="/v1/events") == 5
    assert value(found, "points_redis_command_duration_seconds_count", op="scripts") >= 4
    assert value(found, "points_redis_command_duration_seconds_count", op="ping") >= 1
    assert value(found, "points_redis_command_duration_seconds_count", op="command") >= 1
    assert value(found, "points_redis_command_duration_seconds_count", op="pipeline") >= 1
    assert value(found, "points_ledger_commit_duration_seconds_count") >= 3
    assert value(found, "points_ledger_commit_batch_size_sum") >= 3
    assert value(found, "points_db_query_duration_seconds_count", statement="select") >= 1
    assert value(found, "points_dependency_up", dependency="redis") == 1
    assert value(found, "points_dependency_up", dependency="database") == 1
    assert value(found, "points_leaderboard_writes_total") == 3
    assert value(found, "points_leaderboard_reconciles_total", result="clean") == 1
    assert value(found, "points_leaderboard_reconcile_differences") == 0
    assert value(found, "points_leaderboard_rebuilds_total", result="ok") == 1
    assert value(found, "points_last_credit_timestamp_seconds") > time.time() - 120
    version = app.state.runtime.rules.current.version
    assert value(found, "points_rules_info", version=version) == 1
    assert not any(w in text for w in who), "an informant id reached a label"
    assert "points_embedded_redis_up" not in {n for n, _ in found}  # Redis is external here
    promtool_accepts(text)


async def test_a_held_event_loop_shows_as_lag_and_a_log_line(
    base_settings: Settings, capfd: pytest.CaptureFixture[str]
) -> None:
    """A blocking call run in the app's loop (the test client's portal) holds it as a
    blocking call in a handler would."""
    app = create_app(base_settings, CollectorRegistry())
    async with api_client(app) as client:
        lag = "points_event_loop_lag_seconds"
        deadline = time.monotonic() + 10
        while value(samples((await client.get("/metrics")).text), f"{lag}_count") < 3:
            assert time.monotonic() < deadline, "the loop watch does not run"
            await asyncio.sleep(0.1)
        before = samples((await client.get("/metrics")).text)
        client.blocking_portal.call(time.sleep, 1.3)  # the stall under test
        await asyncio.sleep(0.3)  # the watch's next timer, and the one after
        after = samples((await client.get("/metrics")).text)

    def late(found: Samples, over: str) -> float:  # observations above `over` seconds
        return value(found, f"{lag}_count") - value(found, f"{lag}_bucket", le=over)

    assert late(after, "1.0") - late(before, "1.0") == 1
    assert late(before, "0.1") == 0  # an idle loop runs its timers on time
    stalled = [line for line in capfd.readouterr().err.splitlines() if "event_loop_stalled" in line]
    assert len(stalled) == 1 and msgspec.json.decode(stalled[0])["seconds"] >= 1.0, stalled


async def test_unreachable_redis_shows_in_the_metrics(base_settings: Settings) -> None:
    settings = replace(base_settings, redis_url=f"redis://127.0.0.1:{closed_port()}/0")
    app = create_app(settings, CollectorRegistry())
    async with api_client(app) as client:
        r = await client.post("/v1/events", json=body(unique("u"), "login"))
        assert r.status_code == 503
        deadline = time.monotonic() + 20  # the health watch's first look (with retries)
        while True:
            found = samples((await client.get("/metrics")).text)
            if any(n == "points_dependency_up" for n, _ in found) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
    assert value(found, "points_dependency_unavailable_total", dependency="redis") == 1
    assert value(found, "points_dependency_up", dependency="redis") == 0
    assert value(found, "points_dependency_up", dependency="database") == 1
    assert value(found, "points_redis_errors_total", op="scripts") >= 1


def _credited(url: str) -> float:
    found = samples(httpx.get(f"{url}/metrics", timeout=10).text)
    return value(found, "points_events_total", outcome="credited")


PROMETHEUS_CONFIG = """
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: points-service
    static_configs:
      - targets: ["127.0.0.1:{port}"]
"""


def _query(prometheus: str, expression: str) -> float | None:
    r = httpx.get(f"{prometheus}/api/v1/query", params={"query": expression}, timeout=5)
    result = r.json()["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def test_two_workers_add_up_and_prometheus_reads_the_total(
    base_settings: Settings, tmp_path: Path
) -> None:
    server = ServerProcess(base_settings, tmp_path / "server.log", POINTS_WORKERS="2")
    server.start()
    prometheus: subprocess.Popen[bytes] | None = None
    try:
        sent = 60
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as client:
            answers = [
                client.post("/v1/events", json=body(unique("u"), "login")) for _ in range(sent)
            ]
        assert all(a.status_code == 200 for a in answers)
        # Every scrape, whichever worker answers it, sees both workers' counts.
        assert [_credited(server.url) for _ in range(6)] == [sent] * 6
        text = httpx.get(f"{server.url}/metrics", timeout=10).text
        promtool_accepts(text)
        multiproc = list((base_settings.data_dir / "metrics").glob("*.db"))
        assert multiproc, "the workers wrote no metric files"

        config = tmp_path / "prometheus.yml"
        config.write_text(PROMETHEUS_CONFIG.format(port=server.port))
        port = free_port()
        prometheus = subprocess.Popen(
            [
                tool("prometheus"),
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / "prometheus.log").open("wb"),
        )
        url = f"http://127.0.0.1:{port}"
        expression = 'sum(points_events_total{outcome="credited"})'
        seen = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and seen != sent:
            time.sleep(0.5)
            try:
                seen = _query(url, expression)
            except httpx.HTTPError:
                continue
        assert seen == sent, (tmp_path / "prometheus.log").read_text()[-2000:]
        assert _query(url, 'up{job="points-service"}') == 1
    finally:
        if prometheus is not None:
            prometheus.terminate()
            prometheus.wait(timeout=30)
        server.stop()


@pytest.mark.parametrize("name", ["promtool", "prometheus"])
def test_the_prometheus_tools_are_installed(name: str) -> None:
    version = subprocess.run([tool(name), "--version"], capture_output=True, text=True, check=False)
    assert version.returncode == 0 and "version" in (version.stdout + version.stderr)


async def test_the_programme_day_in_the_gauges(base_settings: Settings) -> None:
    runtime = await Runtime.start(base_settings, CollectorRegistry())
    try:
        sharers = [unique("u") for _ in range(2)]
        events = [body(w, "share", content_id=unique("c")) for w in sharers]
        events += [body(sharers[0], "login"), body(unique("u"), "post", content_id="p")]
        for event in events:
            await runtime.credits.record(event_decoder.decode(msgspec.json.encode(event)))
        await runtime.count_today()
        found = samples(exposition(runtime.metrics.registry)[0].decode())
    finally:
        await runtime.stop()
    assert value(found, "points_programme_today", measure="active_informants") == 3
    assert value(found, "points_programme_today", measure="shares") == 2
    assert value(found, "points_programme_today", measure="posts") == 1
    assert value(found, "points_programme_today", measure="points") > 0
