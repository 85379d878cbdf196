"""The staff console: server-rendered pages (Jinja) over the same services as the API.

Sign-in takes an API key once; the session (adapters/redis_sessions.py) remembers which
key, and every page asks that key's scopes (domain/access.py `CONSOLE_PAGES`) before it
shows anything. A page the key may not see is a 403 page, and the navigation never
offers it. Every form that changes something carries the session's CSRF token; the
sign-in form, before there is a session, a double-submit cookie. Cookies are HTTP-only,
SameSite=Strict and (unless turned off) Secure.
"""

import hmac
import secrets
import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import partial
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, urlencode

from litestar import Request, Response, Router, get, post
from litestar.datastructures import Cookie
from litestar.exceptions import HTTPException
from litestar.params import PathParameter
from litestar.response import Redirect, Template
from litestar.static_files import create_static_files_router

from points_service.adapters.api_keys import digest
from points_service.adapters.unavailable import UNAVAILABLE
from points_service.domain.access import ADMIN, CONSOLE_PAGES, INSTITUTION_PREFIX, ApiKey
from points_service.domain.periods import PERIOD_KINDS
from points_service.domain.reports import MEASURES
from points_service.http.console.charts import bar_chart
from points_service.http.console.text import language, translate
from points_service.http.convert import (
    board_out,
    members_out,
    nominations_out,
    report_out,
    standing_out,
)
from points_service.http.routes import InstitutionPath, export_response, reload_rules, rules_out
from points_service.runtime import Runtime
from points_service.services.errors import InvalidInput, NotFound
from points_service.services.leaderboards import BoardFilter
from points_service.spreadsheets import members_table, nominations_table

SESSION_COOKIE = "ps_session"
LOGIN_CSRF_COOKIE = "ps_login_csrf"
LANG_COOKIE = "ps_lang"
PATH = "/console"
METRICS = ("points", "shares", "share_views", "posts")
TOP = 100
HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"

# No inline script or style anywhere: the pages need only their own files.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def _regions() -> dict[str, dict[str, str]]:
    raw = tomllib.loads((files("points_service.http.console") / "regions.toml").read_text("utf-8"))
    return {str(code): dict(names) for code, names in raw["regions"].items()}


REGIONS = _regions()


@dataclass(frozen=True, slots=True)
class Viewer:
    key: ApiKey
    csrf: str
    session_id: str

    def can(self, page: str, institution: str | None = None) -> bool:
        if page == "institution":
            return self.key.allows(INSTITUTION_PREFIX + (institution or "")) or (
                institution is None and bool(self.institutions)
            )
        return self.key.allows(CONSOLE_PAGES[page])

    @property
    def institutions(self) -> list[str]:
        if ADMIN in self.key.scopes:
            return []
        return sorted(
            s.removeprefix(INSTITUTION_PREFIX)
            for s in self.key.scopes
            if s.startswith(INSTITUTION_PREFIX)
        )

    def nav(self) -> list[tuple[str, str]]:
        """(page, path) of every page this key may open, in the menu's order."""
        pages = [(p, f"{PATH}/{p}") for p in ("leaderboards", "progress", "nominations")]
        shown = [(p, url) for p, url in pages if self.can(p)]
        if ADMIN in self.key.scopes:
            shown.append(("institution", f"{PATH}/institutions"))
        else:
            shown += [("institution", f"{PATH}/institutions/{i}") for i in self.institutions]
        if self.can("operations"):
            shown.append(("operations", f"{PATH}/operations"))
        return shown


def _rt(request: Request[Any, Any, Any]) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _keys(request: Request[Any, Any, Any]) -> Mapping[str, ApiKey]:
    keys: Mapping[str, ApiKey] = request.app.state.console_keys
    return keys


def _lang(request: Request[Any, Any, Any]) -> str:
    return language(request.cookies.get(LANG_COOKIE))


def region_name(code: str | None, lang: str) -> str:
    if not code:
        return ""
    names = REGIONS.get(code)
    return f"{names[lang]} ({code})" if names and lang in names else code


def _cookie(
    request: Request[Any, Any, Any],
    name: str,
    value: str,
    seconds: int,
    samesite: Literal["strict", "lax"] = "strict",
) -> Cookie:
    secure: bool = _rt(request).settings.console_secure_cookie
    return Cookie(
        key=name,
        value=value,
        path=PATH,
        max_age=seconds,
        httponly=True,
        secure=secure,
        samesite=samesite,
    )


async def _viewer(request: Request[Any, Any, Any]) -> Viewer | None:
    session_id = request.cookies.get(SESSION_COOKIE)
    if not session_id or len(session_id) > 100:
        return None
    session = await _rt(request).sessions.get(session_id)
    if session is None:
        return None
    key = _keys(request).get(session.key_digest)
    if key is None:  # the key was withdrawn since: the session ends with it
        return None
    return Viewer(key, session.csrf, session_id)


def _render(
    request: Request[Any, Any, Any],
    viewer: Viewer | None,
    template: str,
    status: int = 200,
    cookies: list[Cookie] | None = None,
    **context: Any,
) -> Template:
    lang = _lang(request)
    if viewer is None:  # an error page: whoever the page's check found
        viewer = getattr(request.state, "viewer", None)
    here = request.url.path
    query = request.url.query
    return Template(
        template_name=template,
        context={
            "t": partial(translate, lang),
            "lang": lang,
            "viewer": viewer,
            "nav": viewer.nav() if viewer else [],
            "here": here,
            "here_full": here + (f"?{query}" if query else ""),
            "region_name": partial(region_name, lang=lang),
            "csrf": viewer.csrf if viewer else None,
            **context,
        },
        status_code=status,
        headers=SECURITY_HEADERS,
        cookies=cookies or [],
    )


class _SignIn(Exception):
    """No session (or an ended one): to the sign-in page, and back here after."""


class _Forbidden(Exception):
    pass


async def _require(
    request: Request[Any, Any, Any], page: str, institution: str | None = None
) -> Viewer:
    viewer = await _viewer(request)
    if viewer is None:
        raise _SignIn
    request.state.viewer = viewer
    if not viewer.can(page, institution):
        raise _Forbidden
    return viewer


async def _form(request: Request[Any, Any, Any]) -> dict[str, str]:
    body = await request.body()
    try:
        parsed = parse_qs(body.decode("utf-8"), max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        return {}
    return {k: v[0] for k, v in parsed.items()}


def _same(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))


def _safe_next(target: str | None) -> str | None:
    """Only a path of the console itself (no other host, no scheme)."""
    if target and target.startswith(PATH + "/") and not any(c in target for c in "\\\r\n"):
        return target
    return None


def _landing(viewer: Viewer) -> str:
    nav = viewer.nav()
    return nav[0][1] if nav else f"{PATH}/login"


# --- sign-in, sign-out, language ------------------------------------------------------


@get("/", include_in_schema=False)
async def console_home(request: Request[Any, Any, Any]) -> Redirect:
    viewer = await _viewer(request)
    return Redirect(_landing(viewer) if viewer else f"{PATH}/login")


@get("/login", include_in_schema=False)
async def login_page(request: Request[Any, Any, Any]) -> Template:
    token = secrets.token_urlsafe(32)
    return _render(
        request,
        None,
        "login.html.j2",
        login_csrf=token,
        next=_safe_next(request.query_params.get("next")) or "",
        bye=request.query_params.get("bye") == "1",
        problem=None,
        cookies=[_cookie(request, LOGIN_CSRF_COOKIE, token, 3600)],
    )


@post("/login", include_in_schema=False, status_code=303)
async def login(request: Request[Any, Any, Any]) -> Response[Any]:
    form = await _form(request)
    target = _safe_next(form.get("next"))
    problem = None
    if not _same(form.get("csrf"), request.cookies.get(LOGIN_CSRF_COOKIE)):
        problem = "expired_form"
    else:
        key = _keys(request).get(digest(form.get("key", "").strip()))
        if key is None:
            problem = "bad_key"
        else:
            rt = _rt(request)
            session = await rt.sessions.create(key.digest, time.time())
            viewer = Viewer(key, session.csrf, session.id)
            return Redirect(
                target or _landing(viewer),
                status_code=303,
                headers=SECURITY_HEADERS,
                cookies=[
                    _cookie(request, SESSION_COOKIE, session.id, rt.sessions.seconds),
                    _cookie(request, LOGIN_CSRF_COOKIE, "", 0),
                ],
            )
    token = secrets.token_urlsafe(32)
    return _render(
        request,
        None,
        "login.html.j2",
        status=400 if problem == "expired_form" else 401,
        login_csrf=token,
        next=target or "",
        bye=False,
        problem=problem,
        cookies=[_cookie(request, LOGIN_CSRF_COOKIE, token, 3600)],
    )


@post("/logout", include_in_schema=False, status_code=303)
async def logout(request: Request[Any, Any, Any]) -> Response[Any]:
    viewer = await _viewer(request)
    form = await _form(request)
    if viewer is not None:
        if not _same(form.get("csrf"), viewer.csrf):
            return _render(request, viewer, "error.html.j2", 403, title="expired_form", detail="")
        await _rt(request).sessions.end(viewer.session_id)
    return Redirect(
        f"{PATH}/login?bye=1",
        status_code=303,
        headers=SECURITY_HEADERS,
        cookies=[_cookie(request, SESSION_COOKIE, "", 0)],
    )


@get("/lang/{lang:str}", include_in_schema=False)
async def switch_language(
    request: Request[Any, Any, Any], lang: Annotated[str, PathParameter(max_length=8)]
) -> Redirect:
    """A preference, not a change to any data: a plain link sets it."""
    target = _safe_next(request.query_params.get("next")) or f"{PATH}/"
    return Redirect(
        target,
        headers=SECURITY_HEADERS,
        cookies=[_cookie(request, LANG_COOKIE, language(lang), 365 * 86400, "lax")],
    )


# --- leaderboards ---------------------------------------------------------------------


def _region_options(lang: str) -> dict[str, list[tuple[str, str]]]:
    """Provinces, and each province's cities and each city's counties, by name."""
    tree: dict[str, list[tuple[str, str]]] = {"": []}
    for code in sorted(REGIONS):
        label = REGIONS[code].get(lang, code)
        if code.endswith("0000"):
            tree[""].append((code, label))
        elif code.endswith("00"):
            tree.setdefault(code[:2] + "0000", []).append((code, label))
        else:
            tree.setdefault(code[:4] + "00", []).append((code, label))
    return tree


def _board_scope(q: Mapping[str, str]) -> str:
    institution = q.get("institution", "").strip()
    if institution:
        return f"institution:{institution}"
    for level in ("county", "city", "province"):
        code = q.get(level, "").strip()
        if code:
            return f"{level}:{code}"
    return "all"


@get("/leaderboards", include_in_schema=False)
async def leaderboards_page(request: Request[Any, Any, Any]) -> Template:
    viewer = await _require(request, "leaderboards")
    q = {k: v for k, v in request.query_params.items() if isinstance(v, str)}
    metric = q.get("metric", "points")
    period = q.get("period", "month")
    scope = _board_scope(q)
    rt = _rt(request)
    board = board_out(await rt.leaderboards.top(metric, scope, period, TOP, None))
    ranks = [e.rank for e in board.entries]
    tied = {r for r in ranks if ranks.count(r) > 1}
    informant = q.get("informant", "").strip()
    standing = None
    matches = await rt.profiles.find(informant) if informant else []
    if matches and (len(matches) == 1 or matches[0][0] == informant):
        matches = matches[:1]
        chosen = matches[0][0]
        standing = standing_out(await rt.leaderboards.standing(metric, scope, period, chosen, 5))
    province = q.get("province", "")
    city = q.get("city", "")
    kind, _, key = board.scope.partition(":")
    if kind == "all":
        scope_label = translate(_lang(request), "scope_all")
    else:
        scope_label = key if kind == "institution" else region_name(key, _lang(request))
    return _render(
        request,
        viewer,
        "leaderboards.html.j2",
        board=board,
        tied=tied,
        standing=standing,
        matches=matches,
        scope_label=scope_label,
        metric=metric,
        metrics=METRICS,
        period=period,
        periods=PERIOD_KINDS,
        regions=_region_options(_lang(request)),
        province=province,
        city=city if city.startswith(province[:2]) else "",
        county=q.get("county", ""),
        institution=q.get("institution", ""),
        informant=informant,
        query=q,
        link=lambda **change: f"{PATH}/leaderboards?" + urlencode({**q, **change}),
    )


# --- progress -------------------------------------------------------------------------


def _breadcrumb(code: str) -> list[str]:
    """The province, city and county a region code sits under, itself last."""
    chain = [code[:2] + "0000"]
    if not code.endswith("0000"):
        chain.append(code[:4] + "00")
    if not code.endswith("00"):
        chain.append(code)
    return chain


@get("/progress", include_in_schema=False)
async def progress_page(request: Request[Any, Any, Any]) -> Template:
    viewer = await _require(request, "progress")
    provinces = [c for c in sorted(REGIONS) if c.endswith("0000")]
    region = request.query_params.get("region") or (provinces[0] if provinces else "640000")
    month = request.query_params.get("month") or None
    rt = _rt(request)
    report = report_out(await rt.reports.monthly(month, region, None))
    trend = await rt.reports.trend(report.month.key.removeprefix("month:"), region, None)
    labels = [view.key.removeprefix("month:")[5:] for view, _ in trend]
    lang = _lang(request)
    charts = [
        bar_chart(translate(lang, "trend_shares"), labels, [f.shares for _, f in trend], "shares"),
        bar_chart(translate(lang, "trend_active"), labels, [f.active for _, f in trend], "active"),
    ]
    return _render(
        request,
        viewer,
        "progress.html.j2",
        report=report,
        region=region,
        month=report.month.key.removeprefix("month:"),
        measures=MEASURES,
        breadcrumb=_breadcrumb(region) if region.isdigit() and len(region) == 6 else [],
        trend=[(view.key.removeprefix("month:"), f) for view, f in trend],
        charts=charts,
        provinces=provinces,
    )


# --- nominations ----------------------------------------------------------------------


def _year(request: Request[Any, Any, Any], raw: str | None) -> int:
    if not raw:
        return date.fromordinal(_rt(request).leaderboards.today()).year
    if not raw.isdigit():
        raise InvalidInput("year", "a calendar year, e.g. 2026")
    return int(raw)


@get("/nominations", include_in_schema=False)
async def nominations_page(request: Request[Any, Any, Any]) -> Template:
    viewer = await _require(request, "nominations")
    rt = _rt(request)
    awards = list(rt.awards.awards)
    award = request.query_params.get("award") or (awards[0] if awards else "")
    year = _year(request, request.query_params.get("year"))
    scope = request.query_params.get("scope") or "all"
    found = nominations_out(await rt.awards.nominations(award, year, scope))
    query = urlencode({"award": award, "year": year, "scope": scope})
    return _render(
        request,
        viewer,
        "nominations.html.j2",
        found=found,
        awards=[(a, rt.awards.awards[a]) for a in awards],
        award=award,
        year=year,
        scope=scope,
        provinces=[c for c in sorted(REGIONS) if c.endswith("0000")],
        export=f"{PATH}/nominations/export?{query}",
    )


@get("/nominations/export", include_in_schema=False)
async def nominations_export(request: Request[Any, Any, Any]) -> Response[Any]:
    await _require(request, "nominations")
    rt = _rt(request)
    award = request.query_params.get("award") or ""
    year = _year(request, request.query_params.get("year"))
    scope = request.query_params.get("scope") or "all"
    found = await rt.awards.nominations(award, year, scope)
    return export_response(
        _format(request), f"{award}-{year}", nominations_table(found), nominations_out(found)
    )


def _format(request: Request[Any, Any, Any]) -> str:
    chosen = request.query_params.get("format") or "csv"
    if chosen not in ("csv", "xlsx"):
        raise InvalidInput("format", "csv or xlsx")
    return chosen


# --- institutions ---------------------------------------------------------------------


@get("/institutions", include_in_schema=False)
async def institutions_page(request: Request[Any, Any, Any]) -> Response[Any]:
    viewer = await _require(request, "institution")
    chosen = (request.query_params.get("id") or "").strip()
    if chosen:
        return Redirect(f"{PATH}/institutions/{chosen}")
    if viewer.institutions:
        return Redirect(f"{PATH}/institutions/{viewer.institutions[0]}")
    return _render(request, viewer, "institution_pick.html.j2")


MEMBER_COLUMNS = ("name", "shares", "posts", "points", "share_views", "last_activity")


@get("/institutions/{institution_id:str}", include_in_schema=False)
async def institution_page(
    request: Request[Any, Any, Any], institution_id: InstitutionPath
) -> Template:
    viewer = await _require(request, "institution", institution_id)
    q = request.query_params
    period = q.get("period") or "month"
    sort = q.get("sort") or "shares"
    order = q.get("order") or None
    cursor = q.get("cursor") or None
    rt = _rt(request)
    table = members_out(
        await rt.institutions.members(institution_id, period, sort, order, 100, cursor)
    )
    base = {"period": period, "sort": table.sort, "order": table.order}
    return _render(
        request,
        viewer,
        "institution.html.j2",
        table=table,
        period=period,
        periods=PERIOD_KINDS,
        columns=MEMBER_COLUMNS,
        sort_link=lambda column: (
            "?"
            + urlencode(
                {
                    "period": period,
                    "sort": column,
                    "order": "asc" if table.sort == column and table.order == "desc" else "desc",
                }
            )
        ),
        next_link="?" + urlencode({**base, "cursor": table.next_cursor})
        if table.next_cursor
        else None,
        first_link="?" + urlencode(base) if cursor else None,
        export=f"{PATH}/institutions/{institution_id}/export?" + urlencode(base),
    )


@get("/institutions/{institution_id:str}/export", include_in_schema=False)
async def institution_export(
    request: Request[Any, Any, Any], institution_id: InstitutionPath
) -> Response[Any]:
    await _require(request, "institution", institution_id)
    q = request.query_params
    table = await _rt(request).institutions.members(
        institution_id,
        q.get("period") or "month",
        q.get("sort") or "shares",
        q.get("order") or None,
        500,
        None,
    )
    name = f"members-{institution_id}-{table.period.key.replace(':', '-')}"
    return export_response(_format(request), name, members_table(table), members_out(table))


# --- operations -----------------------------------------------------------------------


@get("/operations", include_in_schema=False)
async def operations_page(request: Request[Any, Any, Any]) -> Template:
    viewer = await _require(request, "operations")
    rt = _rt(request)
    return _render(
        request,
        viewer,
        "operations.html.j2",
        rules=rules_out(rt),
        reconcile=await rt.leaderboards.last_reconcile(),
        done=request.query_params.get("done"),
    )


async def _checked(request: Request[Any, Any, Any]) -> Viewer:
    """The viewer of a form that changes something: an admin, with the session's token."""
    viewer = await _require(request, "operations")
    form = await _form(request)
    if not _same(form.get("csrf"), viewer.csrf):
        raise _Forbidden
    return viewer


@post("/operations/reload", include_in_schema=False, status_code=303)
async def operations_reload(request: Request[Any, Any, Any]) -> Redirect:
    await _checked(request)
    rt = _rt(request)
    result = reload_rules(rt)
    if result.ok:
        await rt.announce_reload()
    return Redirect(f"{PATH}/operations?done=reload", status_code=303, headers=SECURITY_HEADERS)


@post("/operations/reconcile", include_in_schema=False, status_code=303)
async def operations_reconcile(request: Request[Any, Any, Any]) -> Redirect:
    await _checked(request)
    await _rt(request).leaderboards.reconcile(BoardFilter(None, None, None))
    return Redirect(f"{PATH}/operations?done=reconcile", status_code=303, headers=SECURITY_HEADERS)


# --- what goes wrong ------------------------------------------------------------------


def _sign_in(request: Request[Any, Any, Any], _: Exception) -> Response[Any]:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":
        target = f"{PATH}/"
    return Redirect(
        f"{PATH}/login?" + urlencode({"next": target}), status_code=303, headers=SECURITY_HEADERS
    )


def _forbidden(request: Request[Any, Any, Any], _: Exception) -> Template:
    return _render(request, None, "error.html.j2", 403, title="forbidden", detail="")


def _invalid(request: Request[Any, Any, Any], exc: Exception) -> Template:
    assert isinstance(exc, InvalidInput)
    return _render(
        request, None, "error.html.j2", 400, title="bad_request", detail=f"{exc.field}: {exc}"
    )


def _not_found(request: Request[Any, Any, Any], exc: Exception) -> Template:
    return _render(request, None, "error.html.j2", 404, title="not_found", detail=str(exc))


def _unavailable(request: Request[Any, Any, Any], _: Exception) -> Template:
    return _render(request, None, "error.html.j2", 503, title="unavailable", detail="")


def _http(request: Request[Any, Any, Any], exc: Exception) -> Template:
    assert isinstance(exc, HTTPException)
    title = {404: "not_found", 403: "forbidden"}.get(exc.status_code, "bad_request")
    return _render(request, None, "error.html.j2", exc.status_code, title=title, detail="")


def console_router() -> Router:
    handlers: dict[Any, Any] = {
        _SignIn: _sign_in,
        _Forbidden: _forbidden,
        InvalidInput: _invalid,
        NotFound: _not_found,
        HTTPException: _http,
    }
    for kind in UNAVAILABLE:
        handlers[kind] = _unavailable
    return Router(
        path=PATH,
        route_handlers=[
            console_home,
            login_page,
            login,
            logout,
            switch_language,
            leaderboards_page,
            progress_page,
            nominations_page,
            nominations_export,
            institutions_page,
            institution_page,
            institution_export,
            operations_page,
            operations_reload,
            operations_reconcile,
            create_static_files_router(
                path="/static", directories=[HERE / "static"], include_in_schema=False
            ),
        ],
        exception_handlers=handlers,
        include_in_schema=False,
    )
