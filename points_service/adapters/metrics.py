"""Prometheus metrics on the service's own registry. Labels are bounded: never an id."""

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

_log = structlog.get_logger("points_service.state")

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        # labels() takes a lock and builds a key on every call; on the per-request path
        # the children are looked up once and kept (the label sets are few and bounded).
        self._request_children: dict[tuple[str, str, int], Histogram] = {}
        self._event_children: dict[tuple[str, str], Counter] = {}
        self.events = Counter(
            "points_events_total",
            "Events judged, by action and outcome (credited, duplicate, daily_cap, late, ...)",
            ["action", "outcome"],
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
        self.rules_info = Info("points_rules", "The live rule-set version", registry=registry)
        self.rules_reloads = Counter(
            "points_rules_reloads_total",
            "Rule reload attempts, by result",
            ["result"],
            registry=registry,
        )
        self.undo_failures = Counter(
            "points_state_undo_failures_total",
            "Unacknowledged events whose Redis changes could not be taken back",
            registry=registry,
        )
        self.board_failures = Counter(
            "points_leaderboard_write_failures_total",
            "Leaderboard writes that failed after the ledger commit (reconcile finds them)",
            registry=registry,
        )
        self.rules_reload_ok = Gauge(
            "points_rules_last_reload_success",
            "1 when the last rule reload succeeded, 0 when it was refused",
            registry=registry,
        )

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
            self.points.labels(action).inc(points)

    def rules_loaded(self, version: str, ok: bool) -> None:
        self.rules_info.info({"version": version})
        self.rules_reloads.labels("ok" if ok else "refused").inc()
        self.rules_reload_ok.set(1 if ok else 0)

    def undo_failed(self, error: BaseException) -> None:
        self.undo_failures.inc()
        _log.error("state_undo_failed", error=repr(error))

    def boards_failed(self, error: BaseException) -> None:
        self.board_failures.inc()
        _log.error("leaderboard_write_failed", error=repr(error))

    def commit_observed(self, size: int, seconds: float) -> None:
        self.commit_batch.observe(size)
        self.commit_seconds.observe(seconds)
