"""`points-service`: serve, migrate, rules check|simulate, leaderboards
check|rebuild|reconcile, draws verify|status, and the operators' other commands."""

import argparse
import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

from points_service.adapters.api_keys import KeysInvalid, add_key, first_run_admin_key, load_keys
from points_service.adapters.embedded_redis import EmbeddedRedis
from points_service.adapters.logging import configure_logging, log_key
from points_service.adapters.metrics import MULTIPROC_ENV
from points_service.adapters.rule_files import (
    load_abuse_file,
    load_award_file,
    load_board_dir,
    load_draw_file,
    load_level_file,
    load_rule_dir,
)
from points_service.adapters.sql.copy import TargetNotEmpty, copy_ledger
from points_service.adapters.sql.engine import create_engine, database_url, migrate
from points_service.domain.calendar import Calendar
from points_service.domain.engine import InformantState, decide, plan_event
from points_service.domain.events import Event, EventInvalid, check_event
from points_service.domain.rules import RuleSetInvalid
from points_service.domain.signing import new_secret
from points_service.domain.state import StoredState
from points_service.runtime import Runtime, utc_now
from points_service.services.bulk_import import BulkImports, BulkReport
from points_service.services.errors import Conflict, InvalidInput, NotFound
from points_service.services.imports import (
    ImportReport,
    Imports,
    ProfileImport,
    collector_paused,
)
from points_service.services.leaderboards import BoardFilter
from points_service.settings import Settings, SettingsError, load_settings
from points_service.spreadsheets import Cell, nominations_table, report_table, to_csv, to_xlsx


def _serve(settings: Settings) -> int:
    import uvicorn  # noqa: PLC0415 - only `serve` pays for the server's import

    asyncio.run(_migrate(settings))
    made = first_run_admin_key(settings.data_dir, settings.keys_file, settings.api_keys)
    if made is not None:
        print(
            f"points-service: no API keys were configured, so an admin key was made: it is "
            f"in {made} (send it as `Authorization: Bearer <key>`); more keys with "
            "`points-service keys create NAME --scope SCOPE`",
            file=sys.stderr,
            flush=True,
        )
    # uvicorn shuts down gracefully on SIGTERM / SIGINT, then raises the signal again for
    # the handler it found: this one ends the process with 0 after a graceful stop,
    # through the `finally` below, rather than dying of the signal.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _stopped)
    embedded = None
    if settings.redis_url is None and settings.workers > 1:
        # Workers share one embedded Redis, started before them and stopped after.
        embedded = EmbeddedRedis(settings.data_dir)
        os.environ["REDIS_URL"] = embedded.start()
    try:
        if settings.workers > 1:
            _share_metrics(settings)
            # Each worker builds its app from the environment (settings are read there).
            app: Any = "points_service.http.asgi:app_factory"
        else:
            from points_service.http.app import create_app  # noqa: PLC0415 - as above

            app = create_app(settings)
        uvicorn.run(
            app,
            factory=isinstance(app, str),
            workers=settings.workers,
            host=settings.host,
            port=settings.port,
            loop="uvloop",
            http="httptools",
            access_log=False,  # the service logs one summary line per request itself
            log_level="warning",
            timeout_graceful_shutdown=30,
        )
    finally:
        if embedded is not None:
            embedded.stop()
    return 0


def _stopped(signum: int, _frame: object) -> None:
    raise SystemExit(0)


def _share_metrics(settings: Settings) -> None:
    """Workers write their metrics to files in one directory, and a scrape of any worker
    sums them (adapters/metrics.py). The directory starts empty: the counters of an
    earlier run must not be added in."""
    directory = Path(os.environ.get(MULTIPROC_ENV) or settings.data_dir / "metrics").resolve()
    if directory.exists():
        for stale in directory.glob("*.db"):
            stale.unlink()
    directory.mkdir(parents=True, exist_ok=True)
    os.environ[MULTIPROC_ENV] = str(directory)


async def _migrate(settings: Settings) -> None:
    engine = create_engine(database_url(settings.database_url, settings.data_dir))
    try:
        await migrate(engine)
    finally:
        await engine.dispose()


def _rules_check(directory: Path) -> int:
    try:
        rules = load_rule_dir(directory)
        awards = load_award_file(directory)
        abuse = load_abuse_file(directory)
        draws = load_draw_file(directory)
        levels = load_level_file(directory)
    except RuleSetInvalid as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        print(f"{len(exc.problems)} problem(s); the rule set is refused", file=sys.stderr)
        return 1
    print(
        f"ok: {len(rules.rules)} rules, {len(rules.featured)} featured lists, "
        f"files {', '.join(rules.files)}, version {rules.version}; "
        f"awards {', '.join(awards) or 'none'}; {len(levels.levels)} levels; "
        f"abuse thresholds: share views "
        f"{abuse.share_view_velocity.views}/{abuse.share_view_velocity.seconds} s, viewer "
        f"spread {abuse.viewer_spread.sharers} sharers/{abuse.viewer_spread.hours} h, burst "
        f"{abuse.burst.events}/{abuse.burst.seconds} s; draws {', '.join(draws.draws) or 'none'}"
    )
    return 0


def _rules_simulate(settings: Settings, events_file: Path, directory: Path) -> int:
    """Judge a JSON Lines file of events against fresh state, each as of when it occurred."""
    try:
        rules = load_rule_dir(directory)
    except RuleSetInvalid as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1
    calendar = Calendar.named(settings.timezone)
    decoder = msgspec.json.Decoder(Event)
    encoder = msgspec.json.Encoder()
    states: dict[str, InformantState] = {}
    events: list[tuple[int, Event]] = []
    failures = 0
    text = sys.stdin.read() if str(events_file) == "-" else events_file.read_text()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            event = decoder.decode(line)
            check_event(event, datetime.now(UTC))
        except (msgspec.DecodeError, EventInvalid) as exc:
            print(f"line {number}: {exc}", file=sys.stderr)
            failures += 1
            continue
        events.append((number, event))
    total = 0
    for number, event in sorted(events, key=lambda item: item[1].occurred_at):
        plan = plan_event(event, rules, calendar, event.occurred_at, settings.grace, replaying=True)
        decision, _ = decide(plan, states.setdefault(event.informant_id, InformantState()))
        total += decision.p
        out = {
            "line": number,
            "event_id": event.event_id,
            "informant_id": event.informant_id,
            "points": decision.p,
            "balance": decision.b,
            "lines": [[x.rule, x.points, x.reason] for x in decision.l],
        }
        sys.stdout.write(encoder.encode(out).decode() + "\n")
    print(
        f"simulated {len(events)} events, {total} points, {failures} rejected, "
        f"rules {rules.version}",
        file=sys.stderr,
    )
    return 1 if failures else 0


def _boards_check(directory: Path) -> int:
    try:
        boards = load_board_dir(directory)
    except RuleSetInvalid as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        print(f"{len(exc.problems)} problem(s); the board files are refused", file=sys.stderr)
        return 1
    combos = sum(len(s) * len(p) for s, p in boards.kept.values())
    print(
        f"ok: {len(boards.kept)} metrics, {combos} scope x period combinations, "
        f"files {', '.join(boards.files)}, version {boards.version}"
    )
    return 0


def _board_filter(args: argparse.Namespace) -> BoardFilter:
    only = BoardFilter(args.metric, args.scope, args.period)
    only.check()
    return only


async def _boards_rebuild(settings: Settings, args: argparse.Namespace) -> int:
    only = _board_filter(args)
    runtime = await Runtime.start(settings)
    try:
        if args.profiles:
            copied = await runtime.profiles.sync_mirror()
            print(f"profiles copied into Redis: {copied}", file=sys.stderr)
        started = time.perf_counter()

        def progress(rows: int) -> None:
            rate = rows / max(time.perf_counter() - started, 1e-9)
            print(f"\r{rows:,} day totals read ({rate:,.0f}/s)", end="", file=sys.stderr)

        report = await runtime.leaderboards.rebuild(only, progress, scan=args.scan)
        seconds = time.perf_counter() - started
    finally:
        await runtime.stop()
    print(
        f"\nrebuilt {report.boards} boards ({report.members:,} members) from "
        f"{report.day_rows:,} day totals in {seconds:.1f} s; removed {report.removed} "
        "boards the ledger no longer supports",
        file=sys.stderr,
    )
    return 0


async def _boards_reconcile(settings: Settings, args: argparse.Namespace) -> int:
    only = _board_filter(args)
    runtime = await Runtime.start(settings)
    try:
        differences = await runtime.leaderboards.reconcile(only, scan=args.scan)
    finally:
        await runtime.stop()
    for d in differences[: args.show]:
        b = d.board
        print(
            f"{b.metric} {b.scope} {b.period} {d.informant_id}: "
            f"redis {d.redis if d.redis is not None else '-'}, "
            f"ledger {d.ledger if d.ledger is not None else '-'}"
        )
    if len(differences) > args.show:
        print(f"... and {len(differences) - args.show} more")
    boards = len({d.board for d in differences})
    print(
        f"{len(differences)} difference(s) on {boards} board(s)"
        if differences
        else "no differences",
        file=sys.stderr,
    )
    return 1 if differences else 0


def _leaderboards(settings: Settings, args: argparse.Namespace) -> int:
    if args.boards == "check":
        return _boards_check(args.directory or settings.leaderboards_dir)
    try:
        if args.boards == "rebuild":
            return asyncio.run(_boards_rebuild(settings, args))
        if args.boards == "close":
            return asyncio.run(_boards_close(settings))
        return asyncio.run(_boards_reconcile(settings, args))
    except InvalidInput as exc:
        print(f"error: --{exc.field}: {exc.message}", file=sys.stderr)
        return 2


async def _boards_close(settings: Settings) -> int:
    runtime = await Runtime.start(settings)
    try:
        report = await runtime.leaderboards.close_periods()
    finally:
        await runtime.stop()
    print(f"closed {report.closed} boards; unlinked {report.removed} past their retention")
    return 0


async def _state_rebuild(settings: Settings, force: bool) -> int:
    runtime = await Runtime.start(settings)
    started = time.perf_counter()

    def progress(informants: int) -> None:
        rate = informants / max(time.perf_counter() - started, 1e-9)
        print(f"\r{informants:,} informants read ({rate:,.0f}/s)", end="", file=sys.stderr)

    try:
        report = await runtime.recovery.rebuild(force=force, progress=progress)
    finally:
        await runtime.stop()
    print(
        f"\nstates of {report.informants:,} informants: {report.written:,} written from the "
        f"ledger, {report.kept:,} already in Redis and kept, in "
        f"{time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )
    return 0


async def _state_reconcile(settings: Settings, show: int) -> int:
    runtime = await Runtime.start(settings)
    try:
        differences = await runtime.recovery.reconcile()
    finally:
        await runtime.stop()

    def held(s: StoredState | None) -> str:
        if s is None:
            return "none (put back when next used)"
        return f"balance {s.balance}, earned {s.earned}, streak {s.streak} (day {s.streak_day})"

    for d in differences[:show]:
        print(f"{d.informant_id}: redis {held(d.redis)}; ledger {held(d.ledger)}")
    if len(differences) > show:
        print(f"... and {len(differences) - show} more")
    missing = sum(1 for d in differences if d.redis is None)
    print(
        f"{len(differences)} informant(s) differ ({missing} with no state in Redis)"
        if differences
        else "no differences",
        file=sys.stderr,
    )
    return 1 if len(differences) > missing else 0


async def _abuse_scan(settings: Settings, hours: int) -> int:
    runtime = await Runtime.start(settings)
    try:
        scan = await runtime.abuse.scan(timedelta(hours=hours))
        flags = await runtime.abuse.flags(status="open", limit=500)
    finally:
        await runtime.stop()
    for flag in flags:
        print(
            f"{flag.flag_id}\t{flag.informant_id}\t{flag.kind}\t{flag.subject}\t"
            f"{flag.start.isoformat()}\t{flag.end.isoformat()}\t"
            + msgspec.json.encode(dict(flag.evidence)).decode()
        )
    found = ", ".join(f"{k} {n}" for k, n in sorted(scan.found.items())) or "nothing"
    print(
        f"{scan.events:,} events received since {scan.since.isoformat()} scanned in "
        f"{scan.seconds:.1f} s: found {found}; {sum(scan.new.values())} new flag(s), "
        f"{scan.widened} widened; {len(flags)} open flag(s) listed above",
        file=sys.stderr,
    )
    return 0


async def _draws_verify(settings: Settings, draw: str | None) -> int:
    """Recompute every outcome of each closed draw (or of DRAW) from its revealed seed;
    1 when any differs from the ledger."""
    runtime = await Runtime.start(settings)
    failed = False
    try:
        lottery = runtime.lottery
        for name in [draw] if draw else await lottery.names():
            try:
                verified = await lottery.verify(name)
            except (NotFound, Conflict) as exc:
                if draw:
                    print(f"error: {exc}", file=sys.stderr)
                    return 2
                print(f"{name}: skipped ({exc})")
                continue
            for problem in verified.problems:
                print(f"{name}: MISMATCH {problem}")
            failed = failed or bool(verified.problems)
            verdict = f"{len(verified.problems)} problem(s)" if verified.problems else "verified"
            print(f"{name}: {verified.outcomes} outcome(s) recomputed from the seed: {verdict}")
    finally:
        await runtime.stop()
    return 1 if failed else 0


async def _draws_status(settings: Settings) -> int:
    runtime = await Runtime.start(settings)
    try:
        for problem in runtime.lottery.catalogue.problems:
            print(f"error: {problem}", file=sys.stderr)
        for name in await runtime.lottery.names():
            view = await runtime.lottery.describe(name)
            d, stock = view.draw, view.stock
            given = ", ".join(
                f"{p.id} {stock.used.get(p.id, 0)}/{p.quantity}" for p in d.prizes if p.quantity
            )
            seed = view.commitment.seed.hex() if view.revealed else "(sealed)"
            print(
                f"{name}\t{view.status}\t{d.starts.isoformat()} .. {d.ends.isoformat()}\t"
                f"draws {stock.seq}\tbudget {stock.spent}/{d.budget}\t{given}\t"
                f"seed_sha256 {view.commitment.seed_sha256}\tseed {seed}"
            )
    finally:
        await runtime.stop()
    return 0


def _draws(settings: Settings, args: argparse.Namespace) -> int:
    if args.draws == "verify":
        return asyncio.run(_draws_verify(settings, args.draw))
    return asyncio.run(_draws_status(settings))


def _draw_commands(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    draws = sub.add_parser("draws", help="the points lottery (rules/draws.toml)")
    actions = draws.add_subparsers(dest="draws", required=True)
    verify = actions.add_parser(
        "verify", help="recompute every outcome of closed draws from their revealed seeds"
    )
    verify.add_argument("draw", nargs="?", help="one draw (default: every closed draw)")
    actions.add_parser("status", help="each draw's window, stock, budget and commitment")


def _keys(settings: Settings, args: argparse.Namespace) -> int:
    try:
        if args.keys == "create":
            secret = new_secret() if args.sign else None
            key = add_key(settings.keys_file, args.name, args.scope, secret)
            print(key)
            if secret is not None:
                print(secret)
            print(
                f"the key above is shown once; its hash is in {settings.keys_file}; "
                + (
                    "the second line is its signing secret (HMAC, X-PS-Signature), kept in "
                    "that file too, which only the service should read; "
                    if secret
                    else ""
                )
                + "restart the service (or its workers) to use it",
                file=sys.stderr,
            )
            return 0
        for k in load_keys(settings.keys_file, settings.api_keys):
            signs = "\tsigned" if k.secret else ""
            print(f"{k.name}\t{' '.join(sorted(k.scopes))}{signs}")
        return 0
    except KeysInvalid as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _state(settings: Settings, args: argparse.Namespace) -> int:
    if args.state == "rebuild":
        return asyncio.run(_state_rebuild(settings, args.force))
    return asyncio.run(_state_reconcile(settings, args.show))


async def _copy_ledger(settings: Settings, target_url: str) -> int:
    source = create_engine(database_url(settings.database_url, settings.data_dir))
    target = create_engine(database_url(target_url, settings.data_dir))
    started = time.perf_counter()

    def progress(table: str, rows: int) -> None:
        print(f"\r{table}: {rows:,} rows", end="", file=sys.stderr)

    try:
        copied, sums = await copy_ledger(source, target, progress)
    except TargetNotEmpty as exc:
        print(f"error: {exc}; copy into an empty database", file=sys.stderr)
        return 1
    finally:
        await source.dispose()
        await target.dispose()
    print(file=sys.stderr)
    for c in copied:
        print(f"{c.table}: {c.rows:,} rows")
    print(
        f"copied in {time.perf_counter() - started:.1f} s; checked: row counts, balances "
        f"({sums.balance:,}) and ledger points ({sums.entry_points:,}) equal on both sides",
        file=sys.stderr,
    )
    return 0


def _read_lines(source: Path) -> list[tuple[int, bytes]]:
    data = sys.stdin.buffer.read() if str(source) == "-" else source.read_bytes()
    with collector_paused():
        return list(enumerate(data.splitlines(), start=1))


class _Progress:
    """A progress bar on a terminal; a line every 10 % otherwise."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._started = time.perf_counter()
        self._tty = sys.stderr.isatty()
        self._shown = -1

    def __call__(self, done: int, total: int) -> None:
        share = done / total if total else 1.0
        rate = done / max(time.perf_counter() - self._started, 1e-9)
        tenth = int(share * 10)
        if not self._tty and tenth == self._shown:
            return
        self._shown = tenth
        bar = "#" * int(share * 30)
        line = f"[{bar:<30}] {share:4.0%} {done:,}/{total:,} {self._what} ({rate:,.0f}/s)"
        print(f"\r{line}" if self._tty else line, end="" if self._tty else "\n", file=sys.stderr)


def _print_refused(refused: Sequence[Any], show: int) -> None:
    for r in refused[:show]:
        where = f" ({r.field})" if r.field else ""
        print(f"line {r.line}: {r.status}{where}: {r.message}", file=sys.stderr)
    if len(refused) > show:
        print(f"... and {len(refused) - show} more", file=sys.stderr)


def _finish(refused: Sequence[Any], show: int, summary: str) -> int:
    if sys.stderr.isatty():
        print(file=sys.stderr)  # past the progress bar
    _print_refused(refused, show)
    print(summary)
    return 1 if refused else 0


async def _import(settings: Settings, source: Path, show: int, bulk: bool) -> int:
    lines = _read_lines(source)
    runtime = await Runtime.start(settings)
    try:
        if bulk:
            importer = BulkImports(runtime.credits, runtime.ledger, runtime.recovery, utc_now)
            report: ImportReport = await importer.run(lines, _Progress("events"))
        else:
            report = await Imports(runtime.credits).run(lines, _Progress("events"))
    finally:
        await runtime.stop()
    summary = (
        f"read {report.read:,}, credited {report.credited:,} ({report.points:,} points), "
        f"duplicates {report.duplicates:,}, rejected {len(report.refused):,}"
    )
    if report.dry_runs:
        summary += f", dry runs {report.dry_runs:,} (judged, not recorded)"
    if isinstance(report, BulkReport):
        summary += (
            f"; informants known already (through the credit path) "
            f"{report.through_credit_path:,}, states put back from the ledger {report.raced:,}"
        )
    return _finish(report.refused, show, summary)


async def _import_informants(settings: Settings, source: Path, show: int) -> int:
    lines = _read_lines(source)
    runtime = await Runtime.start(settings)
    try:
        report = await ProfileImport(runtime.profiles).run(
            lines, csv=source.suffix.lower() == ".csv", progress=_Progress("profiles")
        )
    finally:
        await runtime.stop()
    return _finish(
        report.refused,
        show,
        f"read {report.read:,}, created {report.created:,}, updated {report.updated:,}, "
        f"rejected {len(report.refused):,}",
    )


Table = tuple[list[str], list[list[Cell]]]


async def _award_table(runtime: Runtime, args: argparse.Namespace) -> tuple[Table, str]:
    found = await runtime.awards.nominations(args.award, args.year, args.scope)
    return nominations_table(found), f"{args.award}-{args.year}"


async def _report_table(runtime: Runtime, args: argparse.Namespace) -> tuple[Table, str]:
    report = await runtime.reports.monthly(args.month, args.region, args.institution)
    return report_table(report), f"report-{report.code}-{report.month.key.removeprefix('month:')}"


async def _export_table(settings: Settings, args: argparse.Namespace) -> tuple[Table, str]:
    build = _award_table if args.command == "awards" else _report_table
    runtime = await Runtime.start(settings)
    try:
        return await build(runtime, args)
    finally:
        await runtime.stop()


def _exports(settings: Settings, args: argparse.Namespace) -> int:
    """`awards export` / `reports export`: the API's table, written to a file."""
    try:
        (headers, rows), name = asyncio.run(_export_table(settings, args))
    except (InvalidInput, NotFound) as exc:
        where = f"--{exc.field}: " if isinstance(exc, InvalidInput) else ""
        print(f"error: {where}{exc}", file=sys.stderr)
        return 2
    data = to_xlsx(headers, rows, name) if args.format == "xlsx" else to_csv(headers, rows)
    output: Path = args.output or Path(f"{name}.{args.format}")
    output.write_bytes(data)
    print(f"{output}: {len(rows)} rows")
    return 0


def _board_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metric", help="points, shares, share_views or posts (default: all)")
    parser.add_argument("--scope", help="all, province, city, county or institution")
    parser.add_argument("--period", help="day, week, month, year or all")
    parser.add_argument(
        "--scan",
        action="store_true",
        help="find the boards in Redis by a SCAN of the whole keyspace, not the registry "
        "that every board write names its board in (slow with millions of keys; also "
        "finds boards written behind the service's back)",
    )


def _abuse_commands(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    abuse = sub.add_parser("abuse", help="anti-abuse flags (rules/abuse.toml)")
    actions = abuse.add_subparsers(dest="abuse", required=True)
    scan = actions.add_parser("scan", help="scan the events received; list the open flags")
    scan.add_argument("--hours", type=int, default=24, help="how far back (default 24)")


def _key_commands(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    keys = sub.add_parser("keys", help="API keys").add_subparsers(dest="keys", required=True)
    create = keys.add_parser("create", help="make a key; prints it once, stores its hash")
    create.add_argument("name", help="what the key is for, e.g. app-backend")
    create.add_argument(
        "--scope",
        action="append",
        required=True,
        help="events:write, read, admin or institution:ID (repeat for more)",
    )
    create.add_argument(
        "--sign",
        action="store_true",
        help="also make a signing secret: the key's event requests must then be signed "
        "(HMAC-SHA256 with a timestamp and a nonce)",
    )
    keys.add_parser("list", help="the configured keys' names and scopes")


def _recovery_commands(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """`copy-ledger` and `state`: what an operator runs when a store is lost or moved."""
    copy = sub.add_parser("copy-ledger", help="copy the whole ledger into another, empty database")
    copy.add_argument("target", help="the target's URL, e.g. postgresql://user@host/points")
    state = sub.add_parser("state", help="informants' Redis state").add_subparsers(
        dest="state", required=True
    )
    state_rebuild = state.add_parser(
        "rebuild", help="put back from the ledger every state Redis does not hold"
    )
    state_rebuild.add_argument(
        "--force",
        action="store_true",
        help="overwrite the states Redis holds too (stop the service first)",
    )
    state_reconcile = state.add_parser("reconcile", help="compare Redis state with the ledger")
    state_reconcile.add_argument("--show", type=int, default=50, help="differences to print")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="points-service")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="serve the HTTP API (settings from the environment)")
    sub.add_parser("migrate", help="bring the ledger schema to the latest revision")
    rules = sub.add_parser("rules", help="rule files").add_subparsers(dest="rules", required=True)
    check = rules.add_parser("check", help="validate a rule directory")
    check.add_argument("directory", nargs="?", type=Path)
    simulate = rules.add_parser("simulate", help="judge events without recording them")
    simulate.add_argument("events", type=Path, help="JSON Lines of events, - for stdin")
    simulate.add_argument("--rules", type=Path, dest="directory")
    boards = sub.add_parser("leaderboards", help="leaderboards").add_subparsers(
        dest="boards", required=True
    )
    boards_check = boards.add_parser("check", help="validate a board directory")
    boards_check.add_argument("directory", nargs="?", type=Path)
    rebuild = boards.add_parser("rebuild", help="rebuild boards from the ledger")
    _board_options(rebuild)
    rebuild.add_argument(
        "--profiles", action="store_true", help="first copy every profile into Redis again"
    )
    boards.add_parser("close", help="write closed periods' final standings; drop expired boards")
    reconcile = boards.add_parser("reconcile", help="compare boards with the ledger")
    _board_options(reconcile)
    reconcile.add_argument("--show", type=int, default=50, help="differences to print")
    for commands in (_recovery_commands, _key_commands, _abuse_commands, _draw_commands):
        commands(sub)
    imports = sub.add_parser("import", help="replay past events (JSON Lines) through the rules")
    imports.add_argument("file", type=Path, help="JSON Lines of events, - for stdin")
    imports.add_argument("--show", type=int, default=50, help="rejected lines to print")
    imports.add_argument(
        "--bulk",
        action="store_true",
        help="judge new informants' history in this process and write it in large "
        "chunks (many times faster; boards of periods past their retention are not "
        "written)",
    )
    people = sub.add_parser("import-informants", help="informant profiles (JSON Lines or CSV)")
    people.add_argument("file", type=Path, help="a .csv file, or JSON Lines (- for stdin)")
    people.add_argument("--show", type=int, default=50, help="rejected lines to print")
    awards = sub.add_parser("awards", help="award nominations").add_subparsers(
        dest="awards", required=True
    )
    award_export = awards.add_parser("export", help="nominations as CSV or XLSX")
    award_export.add_argument("award", help="an award of rules/awards.toml, e.g. top_ten")
    award_export.add_argument("--year", type=int, required=True)
    award_export.add_argument("--scope", default="all", help="all or province:CODE")
    award_export.add_argument("--format", choices=("csv", "xlsx"), default="xlsx")
    award_export.add_argument("--output", type=Path, help="the file (default: in .)")
    reports = sub.add_parser("reports", help="monthly reports").add_subparsers(
        dest="reports", required=True
    )
    report_export = reports.add_parser("export", help="a monthly report as CSV or XLSX")
    report_export.add_argument("--month", help="YYYY-MM (default: the current one)")
    report_export.add_argument("--region", help="640000, 640100 or 640104")
    report_export.add_argument("--institution", help="an institution id")
    report_export.add_argument("--format", choices=("csv", "xlsx"), default="xlsx")
    report_export.add_argument("--output", type=Path, help="the file (default: in .)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(os.environ)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command != "serve":  # serve's app configures its own
        # Log lines to stderr, never into the summary a command prints on stdout.
        configure_logging(
            settings.log_level,
            settings.log_format,
            settings.log_informants,
            # The data dir's key when there is one; a check needs no data dir made.
            log_key(settings.data_dir, settings.log_salt) if settings.data_dir.exists() else b"",
        )
    return _run(settings, args)


def _run(settings: Settings, args: argparse.Namespace) -> int:
    try:
        return _COMMANDS[args.command](settings, args)
    except RuleSetInvalid as exc:
        # The rule or board files a command starts the service's objects with (from
        # POINTS_RULES_DIR / POINTS_LEADERBOARDS_DIR, relative to where it runs).
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2


def _migrate_command(settings: Settings, _args: argparse.Namespace) -> int:
    asyncio.run(_migrate(settings))
    return 0


def _rules(settings: Settings, args: argparse.Namespace) -> int:
    directory = args.directory or settings.rules_dir
    if args.rules == "check":
        return _rules_check(directory)
    return _rules_simulate(settings, args.events, directory)


_COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
    "serve": lambda settings, _args: _serve(settings),
    "migrate": _migrate_command,
    "rules": _rules,
    "leaderboards": _leaderboards,
    "state": _state,
    "keys": _keys,
    "draws": _draws,
    "abuse": lambda s, a: asyncio.run(_abuse_scan(s, a.hours)),
    "copy-ledger": lambda s, a: asyncio.run(_copy_ledger(s, a.target)),
    "import": lambda s, a: asyncio.run(_import(s, a.file, a.show, a.bulk)),
    "awards": _exports,
    "reports": _exports,
    "import-informants": lambda s, a: asyncio.run(_import_informants(s, a.file, a.show)),
}


if __name__ == "__main__":
    sys.exit(main())
