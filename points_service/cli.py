"""`points-service`: serve, migrate, rules check, rules simulate."""

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from points_service.adapters.embedded_redis import EmbeddedRedis
from points_service.adapters.rule_files import load_rule_dir
from points_service.adapters.sql.engine import create_engine, database_url, migrate
from points_service.domain.calendar import Calendar
from points_service.domain.engine import InformantState, decide, plan_event
from points_service.domain.events import Event, EventInvalid, check_event
from points_service.domain.rules import RuleSetInvalid
from points_service.settings import Settings, SettingsError, load_settings


def _serve(settings: Settings) -> int:
    import uvicorn  # noqa: PLC0415 - only `serve` pays for the server's import

    asyncio.run(_migrate(settings))
    embedded = None
    if settings.redis_url is None and settings.workers > 1:
        # Workers share one embedded Redis, started before them and stopped after.
        embedded = EmbeddedRedis(settings.data_dir)
        os.environ["REDIS_URL"] = embedded.start()
    try:
        if settings.workers > 1:
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


async def _migrate(settings: Settings) -> None:
    engine = create_engine(database_url(settings.database_url, settings.data_dir))
    try:
        await migrate(engine)
    finally:
        await engine.dispose()


def _rules_check(directory: Path) -> int:
    try:
        rules = load_rule_dir(directory)
    except RuleSetInvalid as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        print(f"{len(exc.problems)} problem(s); the rule set is refused", file=sys.stderr)
        return 1
    print(
        f"ok: {len(rules.rules)} rules, {len(rules.featured)} featured lists, "
        f"files {', '.join(rules.files)}, version {rules.version}"
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
    args = parser.parse_args(argv)
    try:
        settings = load_settings(os.environ)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        return _serve(settings)
    if args.command == "migrate":
        asyncio.run(_migrate(settings))
        return 0
    directory = args.directory or settings.rules_dir
    if args.rules == "check":
        return _rules_check(directory)
    return _rules_simulate(settings, args.events, directory)


if __name__ == "__main__":
    sys.exit(main())
