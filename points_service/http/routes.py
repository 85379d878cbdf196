"""API v1 handlers. Bodies are decoded here with decoders built once, so that a bad
field is a 422 naming it, and a batch can refuse one item without refusing the rest."""

import dataclasses
import os
import time
from typing import Annotated, Any

import msgspec
import structlog
from litestar import Request, Response, get, post, put
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import HeaderParameter, PathParameter, QueryParameter, RawBody

from points_service.adapters.logging import LOG_FIELDS
from points_service.adapters.metrics import exposition
from points_service.domain.events import ID_PATTERN, TEXT_PATTERN
from points_service.domain.institutions import Institution
from points_service.domain.profiles import Profile
from points_service.http.abuse import ABUSE_ROUTES
from points_service.http.convert import (
    event_result,
    institution_out,
    ledger_entry_out,
    members_out,
    nominations_out,
    points_out,
    profile_out,
    report_out,
    rules_catalogue,
    today_out,
)
from points_service.http.errors import ApiError, decode_body, error_response
from points_service.http.hot import BOARD_ROUTES, documented_record_event, record_event_route
from points_service.http.openapi import XLSX, created, refusals, with_body, with_export
from points_service.http.schemas import (
    DRAW_PATTERN,
    BatchIn,
    BatchItem,
    BatchOut,
    BoardOut,
    DifferenceOut,
    DrawIn,
    DrawInfoOut,
    DrawOut,
    DrawPrizeOut,
    DrawResultOut,
    DrawResultsOut,
    ErrorOut,
    EventBatch,
    InstitutionOut,
    LedgerOut,
    MembersOut,
    MonthlyReportOut,
    NominationsOut,
    PointsOut,
    PrizeOut,
    ProfileOut,
    RanksOut,
    RebuildOut,
    ReconcileOut,
    RedemptionIn,
    RedemptionOut,
    ReversalIn,
    ReversalOut,
    RulesCatalogue,
    RulesOut,
    StandingOut,
    TodayOut,
    batch_decoder,
    draw_decoder,
    event_decoder,
    institution_decoder,
    profile_decoder,
    redemption_decoder,
    reversal_decoder,
)
from points_service.runtime import Runtime
from points_service.services.credit import Credited, Rejected
from points_service.services.draws import Drawn, DrawView
from points_service.services.leaderboards import BoardFilter
from points_service.services.rulebook import ReloadResult
from points_service.spreadsheets import (
    Cell,
    members_table,
    nominations_table,
    report_table,
    to_csv,
    to_xlsx,
)

AnyRequest = Request[Any, Any, Any]
_log = structlog.get_logger("points_service.rules")
InformantPath = Annotated[str, PathParameter(pattern=ID_PATTERN)]
InstitutionPath = Annotated[str, PathParameter(pattern=ID_PATTERN)]
EventIdPath = Annotated[str, PathParameter(min_length=1, max_length=128, pattern=TEXT_PATTERN)]


def _rt(request: AnyRequest) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _item(raw: msgspec.Raw) -> Any:
    try:
        return decode_body(event_decoder, raw)
    except ApiError as error:
        return Rejected(error.status, error.code, error.field, error.detail)


@post(
    "/v1/events/batch",
    status_code=200,
    summary="Record a batch of events (up to POINTS_MAX_BATCH, 1,000 by default)",
    operation_class=with_body(EventBatch),
)
async def record_batch(request: AnyRequest, body: RawBody) -> BatchOut:
    decoded = decode_body(batch_decoder, body)
    raws: list[msgspec.Raw] = decoded.events if isinstance(decoded, BatchIn) else decoded
    rt = _rt(request)
    if len(raws) > rt.settings.max_batch:
        raise ApiError(
            422, "invalid", f"a batch holds at most {rt.settings.max_batch:,} events", "events"
        )
    fields: dict[str, Any] | None = request.scope.get(LOG_FIELDS)  # type: ignore[assignment]
    if fields is not None:
        fields["events"] = len(raws)
    results = await rt.credits.record_batch([_item(r) for r in raws])
    items: list[BatchItem] = []
    accepted = 0
    for index, r in enumerate(results):
        if isinstance(r, Credited):
            accepted += 1
            items.append(BatchItem(index, 200, result=event_result(r)))
        else:
            rt.metrics.event_refused(r.code)
            error = ErrorOut(r.status, r.code, r.message, r.field, r.event_id, r.retry_after)
            items.append(BatchItem(index, r.status, error=error))
    return BatchOut(items, accepted, len(items) - accepted)


@get("/v1/informants/{informant_id:str}/points", summary="Balance, today and streak")
async def informant_points(request: AnyRequest, informant_id: InformantPath) -> PointsOut:
    return points_out(await _rt(request).accounts.points(informant_id))


@get(
    "/v1/informants/{informant_id:str}/today",
    summary="Today against the rules: earned, caps and what is left, streak, campaigns",
)
async def informant_today(request: AnyRequest, informant_id: InformantPath) -> TodayOut:
    """Per action with a rule running now: what it earned today, each rule's daily cap
    and what is left of it; the sign-in streak and its next milestone; the campaigns and
    featured lists running now; the level. One Redis round trip."""
    rt = _rt(request)
    return today_out(await rt.accounts.today(informant_id), rt.accounts.catalogue().now)


@get(
    "/v1/rules",
    summary="How to earn: the live rules, featured content and levels",
    responses={
        200: ResponseSpec(RulesCatalogue, description="The catalogue", generate_examples=False),
        304: ResponseSpec(None, description="Not modified: the ETag sent is current"),
    },
)
async def rules_catalogue_route(
    request: AnyRequest,
    if_none_match: Annotated[str | None, HeaderParameter(name="If-None-Match")] = None,
) -> Response[Any]:
    """The live rule set in the form the app renders, with Chinese and English labels
    from the rule files. The ETag changes with the rule-set version and the day (which
    rules are running); a client that sends it back in If-None-Match gets 304."""
    rt = _rt(request)
    view = rt.accounts.catalogue()
    draws = rt.lottery.catalogue.current
    tag = f'"{view.rules.version}-{draws.version[:12]}-{view.day.isoformat()}"'
    headers = {"ETag": tag, "Cache-Control": "max-age=60"}
    if if_none_match == tag:
        return Response(b"", status_code=304, headers=headers)
    body = rules_catalogue(view, rt.settings.timezone, draws.draws.values())
    return Response(body, headers=headers)


@get(
    "/v1/informants/{informant_id:str}/ledger",
    summary="Ledger entries, newest first",
    responses=refusals({404: "The cursor is not one this service issued"}),
)
async def informant_ledger(
    request: AnyRequest,
    informant_id: InformantPath,
    cursor: Annotated[str | None, QueryParameter()] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
) -> LedgerOut:
    page = await _rt(request).accounts.ledger(informant_id, cursor, limit)
    return LedgerOut(informant_id, [ledger_entry_out(e) for e in page.entries], page.next_cursor)


@post(
    "/v1/informants/{informant_id:str}/redemptions",
    status_code=200,
    summary="Spend points, once per redemption_id",
    operation_class=with_body(RedemptionIn),
    responses=refusals(
        {
            409: "The balance is short (`insufficient_balance`), or the redemption_id was used "
            "for another redemption (`redemption_id_reused`)"
        }
    ),
)
async def redeem(request: AnyRequest, informant_id: InformantPath, body: RawBody) -> RedemptionOut:
    data = decode_body(redemption_decoder, body)
    r = await _rt(request).accounts.redeem(informant_id, data.redemption_id, data.points, data.item)
    return RedemptionOut(r.redemption_id, r.informant_id, r.points, r.item, r.balance, r.replayed)


DrawPath = Annotated[str, PathParameter(pattern=DRAW_PATTERN)]
OUTCOME = (
    "pick = int(HMAC-SHA256(key=seed, msg=draw_id as UTF-8), big-endian) % total_weight; "
    "the prize is the first whose running sum of weights (in this order) exceeds pick; a "
    "prize whose stock is gone or whose value passes the budget left gives the no-prize "
    "outcome instead (fallback); outcomes are replayed in seq order"
)


def draw_out(d: Drawn) -> DrawOut:
    p = d.prize
    return DrawOut(
        d.draw_id,
        d.draw,
        d.informant_id,
        d.seq,
        PrizeOut(p.id, p.kind, p.title, p.title_zh),
        d.points,
        d.fallback,
        d.cost,
        d.balance,
        d.replayed,
    )


@post(
    "/v1/informants/{informant_id:str}/draws",
    status_code=200,
    summary="Draw in the points lottery: spend the cost, win a prize; once per draw_id",
    operation_class=with_body(DrawIn),
    responses=refusals(
        {
            404: "No such draw in rules/draws.toml",
            409: "The balance is short (`insufficient_balance`), today's draws are used up "
            "(`daily_limit_reached`), nothing is left to win (`sold_out`, "
            "`budget_exhausted`), the window is not open (`draw_not_open`, `draw_closed`), "
            "the draw_id was used for another draw (`draw_id_reused`), or the draw's file "
            "differs from its commitment (`draw_changed`)",
        }
    ),
)
async def draw(request: AnyRequest, informant_id: InformantPath, body: RawBody) -> DrawOut:
    data = decode_body(draw_decoder, body)
    return draw_out(await _rt(request).lottery.draw(informant_id, data.draw, data.draw_id))


def draw_info_out(v: DrawView) -> DrawInfoOut:
    d, c = v.draw, v.commitment
    prizes = [
        DrawPrizeOut(
            p.id, p.kind, p.title, p.title_zh, p.weight, p.quantity, p.points,
            p.cost_to_budget, v.stock.used.get(p.id, 0),
        )
        for p in d.prizes
    ]  # fmt: skip
    return DrawInfoOut(
        draw=d.id,
        title=d.title,
        title_zh=d.title_zh,
        status=v.status,
        cost=d.cost,
        daily_limit=d.daily_limit,
        budget=d.budget,
        budget_spent=v.stock.spent,
        starts=d.starts,
        ends=d.ends,
        total_weight=d.total_weight,
        prizes=prizes,
        draws=v.stock.seq,
        seed_sha256=c.seed_sha256,
        definition=c.definition.decode(),
        definition_sha256=c.definition_sha256,
        committed_at=c.committed_at,
        seed=c.seed.hex() if v.revealed else None,
        outcome=OUTCOME,
    )


@get(
    "/v1/draws/{draw:str}",
    summary="A draw: its prizes and stock, the seed's commitment, and the seed once closed",
    responses=refusals({404: "No such draw"}),
)
async def draw_info(request: AnyRequest, draw: DrawPath) -> DrawInfoOut:
    return draw_info_out(await _rt(request).lottery.describe(draw))


@get(
    "/v1/draws/{draw:str}/results",
    summary="A closed draw's outcomes in seq order, to recompute from its seed",
    responses=refusals({404: "No such draw", 409: "The draw is not closed (`draw_not_closed`)"}),
)
async def draw_results(
    request: AnyRequest,
    draw: DrawPath,
    cursor: Annotated[str | None, QueryParameter(max_length=12, pattern=r"^[0-9]{1,12}$")] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 500,
) -> DrawResultsOut:
    after = int(cursor) if cursor else 0
    commitment, records = await _rt(request).lottery.results(draw, after, limit + 1)
    more = len(records) > limit
    records = records[:limit]
    return DrawResultsOut(
        draw,
        commitment.seed.hex(),
        [DrawResultOut(r.seq, r.draw_id, r.pick, r.prize, r.points, r.fallback) for r in records],
        str(records[-1].seq) if more else None,
    )


@post(
    "/v1/events/{event_id:str}/reversal",
    status_code=200,
    summary="Claw back an event",
    operation_class=with_body(ReversalIn, required=False),  # the reason has a default
    responses=refusals({404: "No event with this event_id was recorded"}),
)
async def reverse(request: AnyRequest, event_id: EventIdPath, body: RawBody) -> ReversalOut:
    data = decode_body(reversal_decoder, body or b"{}")
    r = await _rt(request).accounts.reverse(event_id, data.reason)
    return ReversalOut(r.event_id, r.informant_id, r.points, r.balance, r.replayed)


@put(
    "/v1/informants/{informant_id:str}",
    status_code=200,
    summary="Create or replace an informant's profile",
    operation_class=with_body(Profile),
    responses=created(ProfileOut),
)
async def put_profile(
    request: AnyRequest, informant_id: InformantPath, body: RawBody
) -> Response[ProfileOut]:
    profile, created = await _rt(request).profiles.put(
        informant_id, decode_body(profile_decoder, body)
    )
    return Response(profile_out(informant_id, profile), status_code=201 if created else 200)


@get(
    "/v1/informants/{informant_id:str}",
    summary="An informant's profile",
    responses=refusals({404: "The informant has no profile"}),
)
async def get_profile(request: AnyRequest, informant_id: InformantPath) -> ProfileOut:
    rt = _rt(request)
    profile = await rt.profiles.get(informant_id)
    return profile_out(informant_id, profile, await rt.accounts.level(informant_id))


FORMATS = ("json", "csv", "xlsx")
Format = Annotated[
    str, QueryParameter(description="json, csv or xlsx", schema_extra={"enum": list(FORMATS)})
]
Metric = Annotated[str, PathParameter(description="points, shares, share_views or posts")]
Scope = Annotated[
    str,
    QueryParameter(
        name="scope",
        description="all, province:640000, city:640100, county:640104 or institution:ID",
    ),
]
PeriodQuery = Annotated[
    str | None,
    QueryParameter(
        description=(
            "day:2026-11-28, week:2026-W48, month:2026-11, year:2026 or all; a bare kind "
            "(day, week, month, year) is the current one; none is the current month"
        )
    ),
]


@get("/v1/leaderboards/{metric:str}", summary="Top of a leaderboard, page by page")
async def leaderboard(
    request: AnyRequest,
    metric: Metric,
    board_scope: Scope = "all",
    period: PeriodQuery = None,
    limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, QueryParameter(max_length=12)] = None,
) -> BoardOut:
    """Served by http/hot.py; this typed twin documents it."""
    raise NotImplementedError


@get(
    "/v1/leaderboards/{metric:str}/informants/{informant_id:str}",
    summary="An informant's rank, score, percentile and neighbours",
)
async def leaderboard_standing(
    request: AnyRequest,
    metric: Metric,
    informant_id: InformantPath,
    board_scope: Scope = "all",
    period: PeriodQuery = None,
    around: Annotated[int, QueryParameter(ge=0, le=50)] = 5,
) -> StandingOut:
    """Served by http/hot.py; this typed twin documents it."""
    raise NotImplementedError


@get("/v1/leaderboards/{metric:str}/ranks", summary="Ranks of many informants at once")
async def leaderboard_ranks(
    request: AnyRequest,
    metric: Metric,
    ids: Annotated[str, QueryParameter(description="informant ids, comma-separated")],
    board_scope: Scope = "all",
    period: PeriodQuery = None,
) -> RanksOut:
    """Served by http/hot.py; this typed twin documents it."""
    raise NotImplementedError


@put(
    "/v1/institutions/{institution_id:str}",
    status_code=200,
    summary="Create or replace an institution",
    operation_class=with_body(Institution),
    responses=created(InstitutionOut),
)
async def put_institution(
    request: AnyRequest, institution_id: InstitutionPath, body: RawBody
) -> Response[InstitutionOut]:
    data = decode_body(institution_decoder, body)
    created = await _rt(request).institutions.put(institution_id, data)
    return Response(institution_out(institution_id, data), status_code=201 if created else 200)


@get(
    "/v1/institutions/{institution_id:str}",
    summary="An institution",
    responses=refusals({404: "No such institution"}),
)
async def get_institution(request: AnyRequest, institution_id: InstitutionPath) -> InstitutionOut:
    return institution_out(institution_id, await _rt(request).institutions.get(institution_id))


@get(
    "/v1/institutions/{institution_id:str}/members",
    summary="The member table: 姓名, 分享文章数, 发布动态总数, points, share views, last activity",
    operation_class=with_export(MembersOut),
    responses=refusals({404: "No such institution"}),
)
async def institution_members(
    request: AnyRequest,
    institution_id: InstitutionPath,
    period: PeriodQuery = None,
    sort: Annotated[
        str,
        QueryParameter(description="name, shares, posts, points, share_views or last_activity"),
    ] = "shares",
    order: Annotated[str | None, QueryParameter(description="asc or desc")] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, QueryParameter(max_length=9)] = None,
    format: Format = "json",
) -> Response[Any]:
    table = await _rt(request).institutions.members(
        institution_id, period, sort, order, limit, cursor
    )
    name = f"members-{institution_id}-{table.period.key.replace(':', '-')}"
    return export_response(format, name, members_table(table), members_out(table))


@get(
    "/v1/awards/{award:str}/nominations",
    summary="Nominations for an award (top_ten, outstanding), each row with its reasons",
    operation_class=with_export(NominationsOut),
    responses=refusals({404: "No such award in rules/awards.toml"}),
)
async def award_nominations(
    request: AnyRequest,
    award: Annotated[str, PathParameter(description="an award id of rules/awards.toml")],
    year: Annotated[int, QueryParameter(ge=2000, le=2200)],
    board_scope: Annotated[
        str, QueryParameter(name="scope", description="all or province:CODE")
    ] = "all",
    format: Format = "json",
) -> Response[Any]:
    found = await _rt(request).awards.nominations(award, year, board_scope)
    return export_response(
        format, f"{award}-{year}", nominations_table(found), nominations_out(found)
    )


@get(
    "/v1/reports/monthly",
    summary="The monthly progress report of a region or institution",
    operation_class=with_export(MonthlyReportOut),
)
async def monthly_report(
    request: AnyRequest,
    month: Annotated[str | None, QueryParameter(description="YYYY-MM; the current one")] = None,
    region: Annotated[
        str | None, QueryParameter(description="640000, 640100 or 640104: its children ranked")
    ] = None,
    institution: Annotated[
        str | None, QueryParameter(description="an institution id", pattern=ID_PATTERN)
    ] = None,
    format: Format = "json",
) -> Response[Any]:
    report = await _rt(request).reports.monthly(month, region, institution)
    name = f"report-{report.code}-{report.month.key.removeprefix('month:')}"
    return export_response(format, name, report_table(report), report_out(report))


def export_response(
    format: str,
    name: str,
    table: tuple[list[str], list[list[Cell]]],
    as_json: Any,
) -> Response[Any]:
    """JSON, or a download that opens in Excel (CSV with a BOM, or XLSX)."""
    if format == "json":
        return Response(as_json)
    headers, rows = table
    if format == "csv":
        body, media = to_csv(headers, rows), "text/csv; charset=utf-8"
    elif format == "xlsx":
        body, media = to_xlsx(headers, rows, name), XLSX
    else:
        raise ApiError(422, "invalid", "format is json, csv or xlsx", "format")
    return Response(
        body,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{name}.{format}"'},
    )


def rules_out(rt: Runtime) -> RulesOut:
    current, last = rt.rules.current, rt.rules.last
    draw_problems = rt.lottery.catalogue.problems  # rules/draws.toml, reloaded with them
    return RulesOut(
        version=current.version,
        files=list(current.files),
        rules=len(current.rules),
        last_reload_ok=last.ok and not draw_problems,
        last_reload_at=last.at,
        problems=[*last.problems, *draw_problems],
        worker_pid=os.getpid(),
    )


@get("/v1/admin/rules", summary="The live rule set")
async def rules_status(request: AnyRequest) -> RulesOut:
    return rules_out(_rt(request))


def reload_rules(rt: Runtime) -> ReloadResult:
    """Reload from the files and say so in the log (the metric is set by the rule book)."""
    result = rt.rules.reload()
    log = _log.info if result.ok else _log.error
    log("rules_reload", ok=result.ok, version=result.version, problems=list(result.problems))
    if not rt.reload_draws():
        problems = (*result.problems, *rt.lottery.catalogue.problems)
        return dataclasses.replace(result, ok=False, problems=problems)
    return result


@post(
    "/v1/admin/rules/reload",
    status_code=200,
    summary="Validate and swap in the rule files",
    responses={
        422: ResponseSpec(
            RulesOut,
            description="A file is broken: the rules in force stay; `problems` says why",
            generate_examples=False,
        )
    },
)
async def rules_reload(request: AnyRequest) -> Response[RulesOut]:
    rt = _rt(request)
    result = reload_rules(rt)
    if result.ok:
        # The other workers (of this host, and every pod on the same Redis prefix)
        # reload their own files within a health round (Runtime.follow_reloads).
        await rt.announce_reload()
    return Response(rules_out(rt), status_code=200 if result.ok else 422)


_SCAN = (
    "find the boards in Redis by a SCAN of the whole keyspace, not the registry every "
    "board write names its board in: also finds boards written behind the service's back"
)


@post(
    "/v1/admin/leaderboards/rebuild",
    status_code=200,
    summary="Rebuild leaderboards from the ledger (all, or one metric, scope kind, period kind)",
)
async def boards_rebuild(
    request: AnyRequest,
    metric: Annotated[str | None, QueryParameter()] = None,
    scope_kind: Annotated[str | None, QueryParameter(name="scope")] = None,
    period: Annotated[str | None, QueryParameter()] = None,
    scan: Annotated[bool, QueryParameter(description=_SCAN)] = False,
) -> RebuildOut:
    only = BoardFilter(metric, scope_kind, period)  # checked by rebuild / reconcile
    started = time.perf_counter()
    report = await _rt(request).leaderboards.rebuild(only, scan=scan)
    seconds = round(time.perf_counter() - started, 3)
    _log.info("leaderboards_rebuilt", boards=report.boards, rows=report.day_rows, s=seconds)
    return RebuildOut(report.boards, report.members, report.removed, report.day_rows, seconds)


@post(
    "/v1/admin/leaderboards/reconcile",
    status_code=200,
    summary="Compare leaderboards with the ledger; changes nothing",
)
async def boards_reconcile(
    request: AnyRequest,
    metric: Annotated[str | None, QueryParameter()] = None,
    scope_kind: Annotated[str | None, QueryParameter(name="scope")] = None,
    period: Annotated[str | None, QueryParameter()] = None,
    show: Annotated[int, QueryParameter(ge=0, le=1000)] = 100,
    scan: Annotated[bool, QueryParameter(description=_SCAN)] = False,
) -> ReconcileOut:
    only = BoardFilter(metric, scope_kind, period)  # checked by rebuild / reconcile
    started = time.perf_counter()
    differences = await _rt(request).leaderboards.reconcile(only, scan=scan)
    seconds = round(time.perf_counter() - started, 3)
    log = _log.warning if differences else _log.info
    log("leaderboards_reconciled", differences=len(differences), s=seconds)
    shown = [
        DifferenceOut(
            d.board.metric, d.board.scope, d.board.period, d.informant_id, d.redis, d.ledger
        )
        for d in differences[:show]
    ]
    return ReconcileOut(len(differences), len({d.board for d in differences}), shown, seconds)


@get("/health/live", summary="The process answers")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@get(
    "/health/ready",
    summary="Redis and the database answer",
    responses={  # the body is written out: {"status": "ok"}
        200: ResponseSpec(dict[str, str], description="Ready", generate_examples=False),
        **refusals({503: "Redis or the database does not answer (`not_ready`)"}),
    },
)
async def ready(request: AnyRequest) -> Response[bytes]:
    rt = _rt(request)
    try:
        await rt.state.ping()
        await rt.ledger.ping()
    except Exception as exc:
        return error_response(503, "not_ready", repr(exc), **{"Retry-After": "1"})
    return Response(b'{"status":"ok"}', media_type="application/json")


@get("/metrics", summary="Prometheus exposition", include_in_schema=False)
async def metrics(request: AnyRequest) -> Response[bytes]:
    body, content_type = exposition(_rt(request).metrics.registry)
    return Response(body, media_type=content_type)


ROUTES = [
    record_event_route,  # http/hot.py: the hot path, an ASGI handler
    record_batch,
    informant_points,
    informant_today,
    rules_catalogue_route,
    informant_ledger,
    redeem,
    draw,
    draw_info,
    draw_results,
    reverse,
    put_profile,
    get_profile,
    put_institution,
    get_institution,
    award_nominations,
    monthly_report,
    institution_members,
    *BOARD_ROUTES,  # http/hot.py: served as ASGI handlers, documented by the twins below
    rules_status,
    rules_reload,
    boards_rebuild,
    boards_reconcile,
    *ABUSE_ROUTES,
    live,
    ready,
    metrics,
]

# Typed handlers that are documented in /schema but never served (the route above is).
DOCUMENTED_ONLY = [documented_record_event, leaderboard, leaderboard_standing, leaderboard_ranks]
