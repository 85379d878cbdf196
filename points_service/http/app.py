"""`create_app(settings)`: the Litestar application, wired to a Runtime at startup."""

import asyncio
import contextlib
import random
import re
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, Schema, SecurityScheme
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.template.config import TemplateConfig
from litestar.types import ASGIApp, ExceptionHandlersMap, Message, Receive, Send
from prometheus_client import CollectorRegistry

from points_service import __version__
from points_service.adapters.api_keys import first_run_admin_key, load_keys
from points_service.adapters.collector import settle_collector
from points_service.adapters.logging import (
    LOG_FIELDS,
    access_line,
    configure_logging,
    log_key,
)
from points_service.adapters.metrics import worker_exited
from points_service.adapters.unavailable import UNAVAILABLE
from points_service.domain.events import Event
from points_service.domain.institutions import Institution
from points_service.domain.profiles import Profile
from points_service.http.auth import Guard, Refusal
from points_service.http.console.pages import TEMPLATES, console_router
from points_service.http.errors import exception_handlers
from points_service.http.hot import PageCache, hot_answer, refusal, send_json
from points_service.http.openapi import body_components, document_refusals
from points_service.http.routes import DOCUMENTED_ONLY, ROUTES, reload_rules
from points_service.http.schemas import (
    DrawIn,
    EventBatch,
    MembersOut,
    MonthlyReportOut,
    NominationsOut,
    RedemptionIn,
    ReversalIn,
)
from points_service.runtime import Runtime
from points_service.settings import Settings

_log = structlog.get_logger("points_service")


_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,64}$")


def _request_id(scope: Any) -> bytes:
    """The caller's X-Request-ID when it is a sane one, or a new one."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            if _REQUEST_ID.match(value):
                return bytes(value)
            break
    # Unique, not secret: no system call for it on every request.
    return b"%016x" % random.getrandbits(64)


def _observe(
    app: Litestar, settings: Settings, guard: Guard, handlers: ExceptionHandlersMap
) -> Any:
    """ASGI middleware, the app's outermost: a request id (X-Request-ID, taken or made,
    sent back and on every log line of the request), the latency histogram, and one
    summary line per request. Handlers add what the line should say under
    `scope[LOG_FIELDS]` (the event id, the informant id as `informant_field` renders it).

    The hot paths (`POST /v1/events`, the leaderboard reads: `hot.hot_answer`) are
    answered here, after the API key check (`guard.admit`), past Litestar's router and
    its exception middleware: a refusal goes through the app's own exception handlers
    (`hot.refusal`), so the answer is the same as Litestar's. Every other request goes
    on through the key check as middleware (`guard`) to Litestar."""

    # `refusal` finds a handler for any exception: every key a class, Exception among them
    assert Exception in handlers
    assert all(isinstance(k, type) for k in handlers)

    def middleware(inner: ASGIApp) -> ASGIApp:
        routed = guard(inner)

        async def handle(scope: Any, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await inner(scope, receive, send)
                return
            started = time.perf_counter()
            status = 500
            request_id = _request_id(scope)
            fields: dict[str, Any] = {}
            if settings.access_log:  # handlers fill in the summary line's fields
                scope[LOG_FIELDS] = fields
            structlog.contextvars.bind_contextvars(request_id=request_id.decode())
            try:
                answer = hot_answer(scope)
                if answer is None:

                    async def capture(message: Message) -> None:
                        nonlocal status
                        if message["type"] == "http.response.start":
                            status = message["status"]
                            message["headers"] = [
                                *message.get("headers", ()),
                                (b"x-request-id", request_id),
                            ]
                        await send(message)

                    await routed(scope, receive, capture)
                else:
                    try:
                        receive = await guard.admit(scope, receive)
                        status, body, headers = await answer(scope, receive)
                    except Refusal as refused:
                        status, body, headers = refused.reply()
                    except Exception as exc:
                        status, body, headers = refusal(handlers, scope, receive, exc)
                    await send_json(send, status, body, (*headers, (b"x-request-id", request_id)))
            finally:
                elapsed = time.perf_counter() - started
                route = scope.get("path_template", "unmatched")
                runtime: Runtime | None = app.state.get("runtime")
                if runtime is not None:
                    runtime.metrics.request_seconds(scope["method"], route, status, elapsed)
                if settings.access_log:
                    access_line(
                        method=scope["method"],
                        route=route,
                        status=status,
                        ms=int(elapsed * 1_000_000) / 1000,  # round(x, 3) goes through printf
                        **fields,
                    )
                structlog.contextvars.unbind_contextvars("request_id")

        return handle

    return middleware


CLOSE_EVERY = 60  # seconds between looks for leaderboard periods that have closed
STOP_WAIT = 10  # seconds a background loop may take to finish its round at shutdown
HEALTH_EVERY = 5  # seconds between health checks of Redis and the database (the gauges)
TODAY_EVERY = 6  # health checks between counts of the programme's day (30 s)
LAG_EVERY = 0.1  # seconds between the timers that measure the event loop's lag
STALL_LOGGED = 1.0  # seconds of lag that also make a log line


async def _pause(stopping: asyncio.Event, seconds: float) -> bool:
    """Wait `seconds`, or until the app stops; True when it stops."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)
    return stopping.is_set()


async def _watch_health(runtime: Runtime, stopping: asyncio.Event) -> None:
    """Dependency health every few seconds, the programme's day every half minute: the
    gauges of both, and a log line when health changes. While both are up, a look for a
    Redis that lost its data (a rebuild from the ledger runs in the background)."""
    was = (True, True)
    rounds = 0
    recovery: asyncio.Task[None] | None = None
    try:
        while not stopping.is_set():
            now = await runtime.check_health()
            if now != was:
                log = _log.info if all(now) else _log.error
                log("dependencies", redis_up=now[0], database_up=now[1])
                was = now
            if all(now) and (recovery is None or recovery.done()):
                recovery = asyncio.create_task(_recover(runtime), name="recover-redis")
            if now[0]:
                try:
                    await runtime.follow_reloads()
                except Exception as exc:
                    _log.warning("follow_reloads_failed", error=repr(exc))
            if now[1]:
                await _database_rounds(runtime, rounds)
            rounds += 1
            if await _pause(stopping, HEALTH_EVERY):
                break
    finally:
        if recovery is not None and not recovery.done():
            recovery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await recovery


async def _watch_loop(runtime: Runtime, stopping: asyncio.Event) -> None:
    """How late the event loop runs a timer: while one task holds the loop (a long
    computation, a blocking call) every request in the worker waits, and the request
    histogram cannot tell that from a slow dependency."""
    loop = asyncio.get_running_loop()
    while not stopping.is_set():
        due = loop.time() + LAG_EVERY
        await asyncio.sleep(LAG_EVERY)
        late = max(0.0, loop.time() - due)
        runtime.metrics.loop_lag.observe(late)
        if late >= STALL_LOGGED:
            _log.warning("event_loop_stalled", seconds=round(late, 3))


async def _database_rounds(runtime: Runtime, rounds: int) -> None:
    """While the database answers: write the credits whose commit had an unknown outcome
    (services/credit.py) and the draws whose commit failed (services/draws.py), and every
    half minute count the programme's day."""
    for settle, done, failed in (
        (runtime.credits.settle_unknown, "unknown_commits_settled", "settle_unknown_failed"),
        (runtime.lottery.settle_pending, "pending_draws_settled", "settle_pending_draws_failed"),
    ):
        try:
            settled = await settle()
            if settled:
                _log.warning(done, written=settled)
        except Exception as exc:
            _log.warning(failed, error=repr(exc))
    try:  # a draw's seed is made (and its sha256 published) before its window opens
        await runtime.lottery.commit_upcoming()
    except Exception as exc:
        _log.warning("draw_commit_failed", error=repr(exc))
    if rounds % TODAY_EVERY == 0:
        try:
            await runtime.count_today()
        except Exception as exc:
            _log.warning("count_today_failed", error=repr(exc))


async def _recover(runtime: Runtime) -> None:
    """Rebuild from the ledger what Redis lost (see Runtime.recover_if_redis_lost)."""
    try:
        await runtime.recover_if_redis_lost()
    except Exception as exc:
        _log.error("redis_recovery_failed", error=repr(exc))


async def _name_unnamed(runtime: Runtime, stopping: asyncio.Event) -> None:
    """Once per Redis, the boards the registry lacks are named in it, for closing to find
    (Leaderboards.name_unnamed); while Redis is away, again each round."""
    while True:
        try:
            named = await runtime.leaderboards.name_unnamed()
        except UNAVAILABLE as exc:
            _log.warning("boards_naming_failed", error=repr(exc))
            if await _pause(stopping, CLOSE_EVERY):
                return
            continue
        except Exception as exc:  # closing must go on; `--scan` does the same by hand
            _log.error("boards_naming_failed", error=repr(exc))
            return
        if named:
            _log.info("boards_named", boards=named)
        return


async def _close_periods(runtime: Runtime, stopping: asyncio.Event) -> None:
    """Final standings of closed periods to SQL, expired boards out of Redis: one worker
    of all the processes per round, once the boards nobody named are."""
    await _name_unnamed(runtime, stopping)
    while not await _pause(stopping, CLOSE_EVERY):
        try:
            report = await runtime.leaderboards.close_periods_once(CLOSE_EVERY)
        except UNAVAILABLE as exc:
            _log.warning("close_periods_failed", error=repr(exc))
            continue
        if report is not None and (report.closed or report.removed):
            _log.info("periods_closed", boards=report.closed, unlinked=report.removed)


async def _scan_abuse(runtime: Runtime, stopping: asyncio.Event) -> None:
    """The anti-abuse scan (rules/abuse.toml): one process of all per round."""
    while not await _pause(stopping, runtime.abuse.thresholds.scan_every_seconds):
        try:
            await runtime.scan_abuse()
        except UNAVAILABLE as exc:
            _log.warning("abuse_scan_failed", error=repr(exc))


def _complete_openapi(app: Litestar, max_batch: int) -> None:
    """Add to the document Litestar built what it cannot see: the request bodies, which
    handlers decode themselves (http/openapi.py), and the operations of ASGI routes,
    rendered from their typed twins (DOCUMENTED_ONLY) by a throwaway app; the exports'
    JSON shapes, and the refusals every operation of a kind may answer."""
    twins = Litestar(route_handlers=DOCUMENTED_ONLY, openapi_config=app.openapi_config)
    document = app.openapi_schema
    document.paths = {**(document.paths or {}), **(twins.openapi_schema.paths or {})}
    schemas = document.components.schemas
    if schemas is not None:
        schemas.update(twins.openapi_schema.components.schemas or {})
        schemas.update(
            body_components(
                Event, EventBatch, RedemptionIn, ReversalIn, DrawIn, Profile, Institution
            )
        )
        schemas.update(body_components(MembersOut, NominationsOut, MonthlyReportOut))
        batch = schemas["EventBatch"].properties
        events = batch.get("events") if isinstance(batch, dict) else None
        if isinstance(events, Schema):
            events.max_items = max_batch  # the limit in force (POINTS_MAX_BATCH)
    document_refusals(document)


def create_app(settings: Settings, registry: CollectorRegistry | None = None) -> Litestar:
    configure_logging(
        settings.log_level,
        settings.log_format,
        settings.log_informants,
        log_key(settings.data_dir, settings.log_salt),
    )

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        runtime = await Runtime.start(settings, registry)
        app.state.runtime = runtime
        app.state.page_cache = PageCache(settings.board_page_ttl, built=runtime.metrics.page_built)
        loop = asyncio.get_running_loop()

        # Outside the main thread (tests) there is no signal: the admin endpoint reloads.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, reload_rules, runtime)
        if not runtime.rules.last.ok:
            _log.error(
                "rules_invalid_serving_last_good",
                version=runtime.rules.current.version,
                problems=list(runtime.rules.last.problems),
            )
        # Everything built so far lives as long as the process (adapters/collector.py).
        settle_collector()
        _log.info(
            "started", rules=runtime.rules.current.version, redis_embedded=bool(runtime.embedded)
        )
        stopping = asyncio.Event()
        background = [
            loop.create_task(_close_periods(runtime, stopping), name="close-periods"),
            loop.create_task(_watch_health(runtime, stopping), name="watch-health"),
            loop.create_task(_scan_abuse(runtime, stopping), name="scan-abuse"),
            loop.create_task(_watch_loop(runtime, stopping), name="watch-loop"),
        ]
        try:
            yield
        finally:
            # The loops end at their next wait; a Redis or SQL call is not cut in half
            # (a cancelled cluster command can leave its connection unusable for close).
            stopping.set()
            for task in background:
                try:
                    await asyncio.wait_for(asyncio.shield(task), STOP_WAIT)
                except TimeoutError:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            loop.remove_signal_handler(signal.SIGHUP)
            await runtime.stop()
            worker_exited()
            _log.info("stopped")

    handlers = exception_handlers(UNAVAILABLE)
    app = Litestar(
        route_handlers=[*ROUTES, console_router()],
        template_config=TemplateConfig(directory=TEMPLATES, engine=JinjaTemplateEngine),
        lifespan=[lifespan],
        exception_handlers=handlers,
        openapi_config=OpenAPIConfig(
            title="points-service",
            version=__version__,
            path="/schema",
            # Every route but health, metrics and this document (http/auth.py).
            security=[{"apiKey": []}],
            components=Components(
                security_schemes={
                    "apiKey": SecurityScheme(
                        type="http",
                        scheme="bearer",
                        description="An API key (`points-service keys create`); "
                        "`X-API-Key: <key>` works too. A key with a signing secret also "
                        "signs its event requests: X-PS-Timestamp, X-PS-Nonce and "
                        "X-PS-Signature (README, HMAC-SHA256).",
                    )
                }
            ),
        ),
        request_max_body_size=settings.max_body_bytes,
        logging_config=None,
    )
    _complete_openapi(app, settings.max_batch)
    first_run_admin_key(settings.data_dir, settings.keys_file, settings.api_keys)
    keys = load_keys(settings.keys_file, settings.api_keys)
    app.state.console_keys = {k.digest: k for k in keys}  # the console's sign-in

    def limits() -> Any:
        runtime: Runtime | None = app.state.get("runtime")
        return None if runtime is None else runtime.limits

    guard = Guard(
        keys,
        limits,
        settings.rate_per_key,
        signature_window=settings.signature_window,
        max_body=settings.max_body_bytes,
    )
    app.asgi_handler = _observe(app, settings, guard, handlers)(app.asgi_handler)
    return app
