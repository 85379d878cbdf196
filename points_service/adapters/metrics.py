"""Prometheus metrics on the service's own registry. Labels are bounded: never an id.

One worker (the default): the metrics live in the process and `/metrics` renders its
registry. Several workers (`POINTS_WORKERS` > 1): `serve` points
`PROMETHEUS_MULTIPROC_DIR` at a fresh directory before the workers start, every worker
writes its values to memory-mapped files there, and whichever worker answers the scrape
sums them (`exposition`), so a scrape through any worker sees the whole service.
Gauges say how they combine across workers (`multiprocess_mode`)."""

import os
import time
from typing import Any

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from points_service.domain.abuse import KINDS

_log = structlog.get_logger("points_service.state")

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_STATEMENTS = frozenset({"select", "insert", "update", "delete", "with"})


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def exposition(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The text a scrape gets: this process's registry, or every worker's values summed."""
    directory = multiprocess_dir()
    if directory is None:
        return generate_latest(registry), CONTENT_TYPE_LATEST
    combined = CollectorRegistry()
    multiprocess.MultiProcessCollector(combined, path=directory)  # type: ignore[no-untyped-call]
    return generate_latest(combined), CONTENT_TYPE_LATEST


def worker_exited(pid: int | None = None) -> None:
    """A worker that stops takes its live gauges with it (its counters stay summed)."""
    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(pid if pid is not None else os.getpid())  # type: ignore[no-untyped-call]


def _statement(sql: str) -> str:
    word = sql.lstrip().split(None, 1)[0].lower() if sql.strip() else ""
    return word if word in _STATEMENTS else "other"


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        # labels() takes a lock and builds a key on every call; on the per-request path
        # the children are looked up once and kept (the label sets are few and bounded).
        self._request_children: dict[tuple[str, str, int], Histogram] = {}
        self._event_children: dict[tuple[str, str], Counter] = {}
        self._points_children: dict[str, Counter] = {}
        self._redis_children: dict[str, Histogram] = {}
        self._live_version: str | None = None
        self.events = Counter(
            "points_events_total",
            "Events judged, by action and outcome (credited, duplicate, daily_cap, late, ...)",
            ["action", "outcome"],
            registry=registry,
        )
        self.abuse_flags = Counter(
            "points_abuse_flags_total",
            "Anti-abuse flags raised, by kind (rules/abuse.toml); each waits for an admin",
            ["kind"],
            registry=registry,
        )
        for kind in KINDS:
            self.abuse_flags.labels(kind)
        self.abuse_scan = Histogram(
            "points_abuse_scan_seconds",
            "Time of one anti-abuse scan of the events received",
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30),
            registry=registry,
        )
        self.draws = Counter(
            "points_draws_total",
            "Lottery draws answered, by draw and result: the prize id given, or the "
            "refusal's code (insufficient_balance, daily_limit_reached, sold_out, ...)",
            ["draw", "result"],
            registry=registry,
        )
        self.refused = Counter(
            "points_events_refused_total",
            "Events refused before they were judged (bad input, conflicts), by error code",
            ["code"],
            registry=registry,
        )
        self.points = Counter(
            "points_credited_total",
            "Points credited, by action",
            ["action"],
            registry=registry,
        )
        self.requests = Histogram(
            "points_http_request_duration_seconds",
            "HTTP request latency, by method, route template and status",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.commit_batch = Histogram(
            "points_ledger_commit_batch_size",
            "Writes per group-commit transaction",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000),
            registry=registry,
        )
        self.commit_seconds = Histogram(
            "points_ledger_commit_duration_seconds",
            "Time to write and commit one group-commit transaction",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.commit_failures = Counter(
            "points_ledger_commit_failures_total",
            "Group-commit transactions that failed (their requests were answered 503 or 500)",
            registry=registry,
        )
        self.db_seconds = Histogram(
            "points_db_query_duration_seconds",
            "Database statements outside the group commit (reads, profiles, reports), by kind",
            ["statement"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.db_errors = Counter(
            "points_db_errors_total",
            "Database statements that raised, by kind",
            ["statement"],
            registry=registry,
        )
        self.redis_seconds = Histogram(
            "points_redis_command_duration_seconds",
            "Redis round trips: script pipelines on the credit path, health pings",
            ["op"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.loop_lag = Histogram(
            "points_event_loop_lag_seconds",
            "How late a worker's event loop ran a timer (one every 0.1 s): time the loop was "
            "held by one task, by which every request in that worker was delayed",
            buckets=(0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=registry,
        )
        self.redis_errors = Counter(
            "points_redis_errors_total",
            "Redis round trips that failed, by operation",
            ["op"],
            registry=registry,
        )
        self.unavailable = Counter(
            "points_dependency_unavailable_total",
            "Requests answered 503 because a dependency was out of reach",
            ["dependency"],
            registry=registry,
        )
        self.dependency_up = Gauge(
            "points_dependency_up",
            "1 when the last health check reached the dependency (redis, database), else 0",
            ["dependency"],
            multiprocess_mode="livemin",
            registry=registry,
        )
        self._embedded: tuple[Gauge, Gauge] | None = None  # made when Redis is embedded
        self.rules_version = Gauge(
            "points_rules_info",
            "1 for the rule-set version live in some worker (label version), 0 for old ones",
            ["version"],
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.rules_reloads = Counter(
            "points_rules_reloads_total",
            "Rule reload attempts, by result",
            ["result"],
            registry=registry,
        )
        self.rules_reload_ok = Gauge(
            "points_rules_last_reload_success",
            "1 when the last rule reload succeeded, 0 when it was refused",
            multiprocess_mode="livemin",
            registry=registry,
        )
        self.undo_failures = Counter(
            "points_state_undo_failures_total",
            "Unacknowledged events whose Redis changes could not be taken back",
            registry=registry,
        )
        self.state_restored = Counter(
            "points_state_restored_total",
            "Informant states Redis did not hold and that were put back from the ledger: "
            "kind=history for informants the ledger knew (Redis lost data), kind=new for "
            "first-time informants",
            ["kind"],
            registry=registry,
        )
        for kind in ("history", "new"):
            self.state_restored.labels(kind)
        self.board_writes = Counter(
            "points_leaderboard_writes_total",
            "Credited events sent to the leaderboards",
            registry=registry,
        )
        self.board_failures = Counter(
            "points_leaderboard_write_failures_total",
            "Leaderboard writes that failed after the ledger commit (reconcile finds them)",
            registry=registry,
        )
        self.board_pages = Counter(
            "points_leaderboard_pages_total",
            "Top pages the page cache did not hold, by how they were answered: built (read "
            "and encoded), shared (waited for a build another request had begun). Pages "
            "served from the cache are the rest of the route's requests",
            ["how"],
            registry=registry,
        )
        self._page_children = {how: self.board_pages.labels(how) for how in ("built", "shared")}
        self.rebuilds = Counter(
            "points_leaderboard_rebuilds_total",
            "Leaderboard rebuilds from the ledger, by result (ok, failed)",
            ["result"],
            registry=registry,
        )
        self.rebuild_rows = Counter(
            "points_leaderboard_rebuild_rows_total",
            "Ledger rows replayed into the leaderboards by rebuilds",
            registry=registry,
        )
        self.reconciles = Counter(
            "points_leaderboard_reconciles_total",
            "Leaderboard reconciles against the ledger, by result (clean, differences, failed)",
            ["result"],
            registry=registry,
        )
        self.reconcile_differences = Gauge(
            "points_leaderboard_reconcile_differences",
            "Board entries that differed from the ledger in the last reconcile",
            multiprocess_mode="mostrecent",
            registry=registry,
        )
        self.reconcile_last = Gauge(
            "points_leaderboard_last_reconcile_timestamp_seconds",
            "When the last reconcile finished (Unix time)",
            multiprocess_mode="mostrecent",
            registry=registry,
        )
        self.last_credit = Gauge(
            "points_last_credit_timestamp_seconds",
            "When this worker last credited an event, or started if it has not (Unix time)",
            multiprocess_mode="max",
            registry=registry,
        )
        self.today = Gauge(
            "points_programme_today",
            "The programme's figures for the current programme day, from the ledger "
            "(measure: active_informants, shares, share_views, posts, points)",
            ["measure"],
            multiprocess_mode="mostrecent",
            registry=registry,
        )
        self.started = Gauge(
            "points_process_start_timestamp_seconds",
            "When the worker started (Unix time)",
            multiprocess_mode="max",
            registry=registry,
        )
        self.started.set(time.time())
        self.last_credit.set(time.time())

    def request_seconds(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        child = self._request_children.get(key)
        if child is None:
            child = self._request_children[key] = self.requests.labels(method, route, str(status))
        child.observe(seconds)

    # Observer (services.ports.Observer)
    def event_judged(self, action: str, outcome: str, points: int, count: int = 1) -> None:
        key = (action, outcome)
        child = self._event_children.get(key)
        if child is None:
            child = self._event_children[key] = self.events.labels(action, outcome)
        child.inc(count)
        if points:
            counter = self._points_children.get(action)
            if counter is None:
                counter = self._points_children[action] = self.points.labels(action)
            counter.inc(points)
        if outcome == "credited":
            self.last_credit.set(time.time())

    def abuse_scanned(self, raised: dict[str, int], seconds: float) -> None:
        for kind, count in raised.items():
            self.abuse_flags.labels(kind).inc(count)
        self.abuse_scan.observe(seconds)

    def draw_result(self, draw: str, result: str) -> None:
        # Both labels are bounded: draw and prize ids come from rules/draws.toml.
        self.draws.labels(draw, result).inc()

    def event_refused(self, code: str, count: int = 1) -> None:
        self.refused.labels(code).inc(count)

    def rules_loaded(self, version: str, ok: bool) -> None:
        if version != self._live_version:
            if self._live_version is not None:
                self.rules_version.labels(self._live_version).set(0)
            self.rules_version.labels(version).set(1)
            self._live_version = version
        self.rules_reloads.labels("ok" if ok else "refused").inc()
        self.rules_reload_ok.set(1 if ok else 0)

    def undo_failed(self, error: BaseException) -> None:
        self.undo_failures.inc()
        _log.error("state_undo_failed", error=repr(error))

    def boards_written(self, events: int) -> None:
        self.board_writes.inc(events)

    def boards_failed(self, error: BaseException) -> None:
        self.board_failures.inc()
        _log.error("leaderboard_write_failed", error=repr(error))

    def page_built(self, how: str) -> None:
        self._page_children[how].inc()

    def rebuilt(self, rows: int | None) -> None:
        """A rebuild finished (rows replayed), or failed (None)."""
        self.rebuilds.labels("failed" if rows is None else "ok").inc()
        if rows:
            self.rebuild_rows.inc(rows)

    def reconciled(self, differences: int | None) -> None:
        """A reconcile finished (how many entries differed), or failed (None)."""
        if differences is None:
            self.reconciles.labels("failed").inc()
            return
        self.reconciles.labels("differences" if differences else "clean").inc()
        self.reconcile_differences.set(differences)
        self.reconcile_last.set(time.time())

    # adapters' hooks
    def states_restored(self, known: int, new: int) -> None:
        if known:
            self.state_restored.labels("history").inc(known)
            _log.warning("state_restored_from_ledger", informants=known)
        if new:
            self.state_restored.labels("new").inc(new)

    def commit_observed(self, size: int, seconds: float) -> None:
        self.commit_batch.observe(size)
        self.commit_seconds.observe(seconds)

    def commit_failed(self, error: BaseException) -> None:
        self.commit_failures.inc()

    def redis_observed(self, op: str, seconds: float, ok: bool) -> None:
        child = self._redis_children.get(op)
        if child is None:
            child = self._redis_children[op] = self.redis_seconds.labels(op)
        child.observe(seconds)
        if not ok:
            self.redis_errors.labels(op).inc()

    def scripts_observed(self, seconds: float, ok: bool) -> None:
        self.redis_observed("scripts", seconds, ok)

    def dependency_failed(self, error: BaseException) -> None:
        """A request answered 503: which dependency was it?"""
        redis = type(error).__module__.split(".")[0] == "redis"
        self.unavailable.labels("redis" if redis else "database").inc()

    def health(self, redis: bool, database: bool, embedded: tuple[bool, bool] | None) -> None:
        self.dependency_up.labels("redis").set(1 if redis else 0)
        self.dependency_up.labels("database").set(1 if database else 0)
        if embedded is not None:
            running, aof_ok = embedded
            up, aof = self._embedded_gauges()
            up.set(1 if running else 0)
            aof.set(1 if aof_ok else 0)

    def _embedded_gauges(self) -> tuple[Gauge, Gauge]:
        """Only a service on the embedded Redis has them: absent, not 0, otherwise."""
        if self._embedded is None:
            self._embedded = (
                Gauge(
                    "points_embedded_redis_up",
                    "The embedded redis-server: 1 running and answering, 0 not",
                    multiprocess_mode="livemin",
                    registry=self.registry,
                ),
                Gauge(
                    "points_embedded_redis_aof_ok",
                    "The embedded Redis's last append-only-file write succeeded (1) or not (0)",
                    multiprocess_mode="livemin",
                    registry=self.registry,
                ),
            )
        return self._embedded

    def programme_today(self, figures: dict[str, int]) -> None:
        for measure, figure in figures.items():
            self.today.labels(measure).set(figure)

    def watch_redis(self, client: Any) -> None:
        """Time the redis-py client's commands (op "command": reads of points, boards and
        profiles) and pipelines (op "pipeline"); the credit path's scripts are timed by
        their own pipeline (op "scripts")."""

        def timed(op: str, call: Any) -> Any:
            async def run(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    result = await call(*args, **kwargs)
                except Exception:
                    self.redis_observed(op, time.perf_counter() - started, False)
                    raise
                self.redis_observed(op, time.perf_counter() - started, True)
                return result

            return run

        make_pipeline = client.pipeline

        def pipeline(*args: Any, **kwargs: Any) -> Any:
            pipe = make_pipeline(*args, **kwargs)
            pipe.execute = timed("pipeline", pipe.execute)
            return pipe

        client.execute_command = timed("command", client.execute_command)
        client.pipeline = pipeline

    def watch_engine(self, engine: AsyncEngine) -> None:
        """Time every statement the engine runs (the group commit's writers have their own
        connections and are timed as commits)."""

        @event.listens_for(engine.sync_engine, "before_cursor_execute")
        def _before(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
            conn.info.setdefault("points_started", []).append(time.perf_counter())

        @event.listens_for(engine.sync_engine, "after_cursor_execute")
        def _after(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
            started = conn.info.get("points_started")
            if started:
                self.db_seconds.labels(_statement(statement)).observe(
                    time.perf_counter() - started.pop()
                )

        @event.listens_for(engine.sync_engine, "handle_error")
        def _error(context: Any) -> None:
            started = context.connection.info.get("points_started") if context.connection else None
            if started:
                started.pop()
            self.db_errors.labels(_statement(context.statement or "")).inc()
