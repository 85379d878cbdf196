"""History import benchmark: `points-service import` of generated events into PostgreSQL.

    .venv/bin/python bench/import_load.py [--events 200000] [--informants 2000]

Writes a JSON Lines file of a generated history (each informant signs in, browses,
shares and likes on consecutive days; the file is shuffled, the import orders it), runs
the import into a fresh PostgreSQL database with Redis at 127.0.0.1:6379, and reports
events per second. Rewrites the "History import" section of bench/RESULTS.md.
"""

import argparse
import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import credit_load as cl
import report_load as rl

TARGET = 20_000


def generate(path: Path, events: int, informants: int) -> None:
    """Each informant's share of the events spread over 2025, in a fixed mix of actions."""
    rng = random.Random(5)
    start = datetime(2025, 1, 1, 2, 0, tzinfo=UTC)
    each = max(1, events // informants)
    lines = []
    for n in range(events):
        who = n % informants
        k = n // informants  # the informant's k-th event
        at = start + timedelta(days=k * 365 // each, minutes=(k * 7 + who) % 600)
        action = ("sign_in", "browse", "share", "like", "browse", "share", "post",
                  "browse", "like", "share")[k % 10]  # fmt: skip
        event: dict[str, object] = {
            "event_id": f"imp-{n}", "informant_id": f"inf{who}", "action": action,
            "occurred_at": at.isoformat(),
        }  # fmt: skip
        if action != "sign_in":
            event["content_id"] = f"c{rng.randint(1, 5000)}"
        lines.append(json.dumps(event))
    rng.shuffle(lines)
    path.write_text("\n".join(lines) + "\n")


# PostgreSQL's own advice for loading a database ("Populating a Database": a larger
# max_wal_size), and compressed full-page images: reloadable settings, no restart. The
# default max_wal_size (1 GB) forces a checkpoint every few hundred MB of WAL during a
# big import, and each checkpoint makes the next write to every index page a full-page
# image (8 kB) in the WAL.
LOAD_SETTINGS = {"max_wal_size": "16GB", "checkpoint_timeout": "30min", "wal_compression": "lz4"}
SHOWN = ("shared_buffers", "max_wal_size", "checkpoint_timeout", "wal_compression")


def _psql(url: str, sql: str) -> str:
    done = subprocess.run(["psql", url, "-Atc", sql], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def _server_settings(url: str) -> str:
    return ", ".join(f"{name} {_psql(url, f'SHOW {name}')}" for name in SHOWN)


def _wal(url: str) -> tuple[int, int, int]:
    """The server's WAL bytes, full-page images and checkpoints so far (cluster-wide)."""
    out = _psql(
        url,
        "SELECT w.wal_bytes::bigint, w.wal_fpi, b.checkpoints_timed + b.checkpoints_req "
        "FROM pg_stat_wal w, pg_stat_bgwriter b",
    )
    wal_bytes, fpi, checkpoints = (int(x) for x in out.split("|"))
    return wal_bytes, fpi, checkpoints


@contextlib.contextmanager
def _load_settings(url: str, wanted: bool) -> Iterator[None]:
    """LOAD_SETTINGS for the run (ALTER SYSTEM, reloaded), reset afterwards."""
    if not wanted:
        yield
        return
    try:
        for name, value in LOAD_SETTINGS.items():
            _psql(url, f"ALTER SYSTEM SET {name} = '{value}'")
        _psql(url, "SELECT pg_reload_conf()")
        time.sleep(0.5)  # the postmaster's children pick the file up
        yield
    finally:
        for name in LOAD_SETTINGS:
            _psql(url, f"ALTER SYSTEM RESET {name}")
        _psql(url, "SELECT pg_reload_conf()")


async def _profiles(url: str, informants: int) -> None:
    """The informants' profiles, straight into the database (as report_load.py)."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(rl._PROFILES, informants)
    finally:
        await conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--informants", type=int, default=2_000)
    parser.add_argument(
        "--path",
        choices=("bulk", "credit"),
        default="bulk",
        help="`import --bulk` (judged in the import) or the credit path (judged in Redis)",
    )
    parser.add_argument(
        "--load-settings",
        action="store_true",
        help="raise max_wal_size and compress full-page images for the run "
        f"({', '.join(f'{k}={v}' for k, v in LOAD_SETTINGS.items())}; reset afterwards)",
    )
    args = parser.parse_args()
    cl.preflight(f"redis://{cl.HOST}:{cl.REDIS_PORT}/0")
    started = datetime.now(UTC)
    prefix = f"bimport{os.getpid()}"
    with (
        tempfile.TemporaryDirectory() as tmp,
        cl.postgres_database(f"bench_import_{os.getpid()}") as url,
    ):
        path = Path(tmp) / "events.jsonl"
        cl._step(f"writing {args.events:,} events")
        generate(path, args.events, args.informants)
        env = {k: v for k, v in os.environ.items() if not k.startswith("POINTS_")}
        env |= {
            "DATABASE_URL": url,
            "REDIS_URL": f"redis://{cl.HOST}:{cl.REDIS_PORT}/0",
            "POINTS_REDIS_PREFIX": prefix,
            "POINTS_DATA_DIR": tmp,
            "POINTS_LOG_LEVEL": "WARNING",
        }
        subprocess.run([str(cl.SERVICE), "migrate"], env=env, check=True, timeout=120)
        plain = url.replace("+asyncpg", "")  # psql's and asyncpg's spelling
        asyncio.run(_profiles(plain, args.informants))
        cl._step("points-service import")
        with _load_settings(plain, args.load_settings):
            settings = _server_settings(plain)
            wal_before = _wal(plain)
            began = time.perf_counter()
            bulk = ["--bulk"] if args.path == "bulk" else []
            done = subprocess.run(
                [str(cl.SERVICE), "import", str(path), *bulk],
                env=env, capture_output=True, text=True, timeout=7200, check=False,
            )  # fmt: skip
            seconds = time.perf_counter() - began
            wal_after = _wal(plain)
        timings = []
        if done.returncode == 0:
            cl._step("ANALYZE, then nominations and the monthly report on what came in")
            _psql(plain, "ANALYZE")
            timings = asyncio.run(rl.measure(env))
    cl.clear_redis(f"redis://{cl.HOST}:{cl.REDIS_PORT}/0", prefix)
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
        return 1
    rate = args.events / seconds
    how = "import --bulk" if args.path == "bulk" else "import (the credit path)"
    title = f"## History import: {args.events:,} events, {how}" + (
        ", PostgreSQL set for loading" if args.load_settings else ""
    )
    text = "\n".join(
        [
            title,
            "",
            f"- Date: {started:%Y-%m-%d %H:%M} UTC; command: "
            f"`bench/import_load.py {' '.join(sys.argv[1:])}`",
            f"- Machine: nproc {os.cpu_count()}, {cl._cpu_model()}; PostgreSQL 15 and Redis "
            "7.0.15 on the same machine; one import process "
            + (
                "(chunks of whole informants, about 20,000 events each, judged in the "
                "process; one chunk commits while the next is judged)"
                if args.path == "bulk"
                else "(batches of 1,000, 16 lanes by informant)"
            ),
            f"- PostgreSQL settings during the import: {settings}"
            + (
                " (`--load-settings`: set with ALTER SYSTEM for the run, reset afterwards)"
                if args.load_settings
                else " (as the server runs)"
            ),
            f"- {args.events:,} events of {args.informants:,} informants, each informant's "
            "spread over 2025 (sign-ins, browsing, shares, likes, posts), shuffled; profiles "
            "(five cities, 200 institutions) written into the database first",
            "",
            "| measure | figure | target | met |",
            "|---|---|---|---|",
            f"| import into PostgreSQL | {rate:,.0f} events/s ({seconds:.1f} s) | "
            f"{TARGET:,} events/s | {'yes' if rate >= TARGET else '**no**'} |",
            "",
            f"Import summary: `{done.stdout.strip()}`",
            "",
            "PostgreSQL during the import (cluster-wide): "
            f"{(wal_after[0] - wal_before[0]) / 2**30:,.1f} GiB of WAL "
            f"({(wal_after[0] - wal_before[0]) / args.events:,.0f} bytes an event), "
            f"{wal_after[1] - wal_before[1]:,} full-page images, "
            f"{wal_after[2] - wal_before[2]:,} checkpoints.",
            "",
            "Then, on the imported ledger (after ANALYZE), through the service's own objects:",
            "",
            "| measure | seconds | rows | target | met |",
            "|---|---|---|---|---|",
            *(
                f"| {label} | {took:.2f} | {count:,} | < {rl.TARGET_SECONDS:.0f} s | "
                f"{'yes' if took < rl.TARGET_SECONDS else '**no**'} |"
                for label, took, count in timings
            ),
            "",
        ]
    )
    print(text)
    cl.write_results(title, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
