"""Soak: the credit path held at half its capacity for ten minutes (`make soak`, not in CI).

    .venv/bin/python bench/soak.py [--minutes 10] [--rate N] [--db sqlite|postgres] [--no-record]

It starts `points-service serve` as bench/credit_load.py does (Redis at 127.0.0.1:6379, a
fresh SQLite file or PostgreSQL database, one worker), measures capacity with a short wrk
run at the maximum rate (unless --rate is given), then sends single events with the default
mix at half that rate, open loop (credit_load's paced sender), for --minutes. Every 30 s
window it reports requests, rate, p50/p99 latency from the scheduled send time, errors
(non-2xx answers, socket errors), the service's RSS (the server process and its children,
from /proc), Redis used_memory and the ledger's size. At the end it prints the windows, the
overall p99, the errors and the memory growth, and rewrites its own section of
bench/RESULTS.md ("## Soak: sqlite, 1 worker, 10 min"); --no-record leaves the file alone
(trial runs). The server log is left in bench/out/soak-service.log.

Exit status 1 if any response was not 2xx or the run failed. The server, the database and
the Redis keys (one prefix per run) are removed at the end whatever happens.
"""

import argparse
import asyncio
import contextlib
import os
import platform
import signal
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import redis
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
import credit_load as cl

MB = 1024 * 1024


# --- what is measured between windows -------------------------------------------------


@dataclass
class Process:
    pid: int
    label: str
    rss: int  # bytes


@dataclass
class Sample:
    at: float  # seconds since the soak began
    processes: list[Process]
    redis_used: int
    ledger: int

    @property
    def rss(self) -> int:
        return sum(p.rss for p in self.processes)


def _parent_pids() -> dict[int, int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            # pid (comm) state ppid ...: comm may hold spaces and parentheses.
            parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    return parents


def _label(argv: list[str]) -> str:
    """`points-service serve`, or a `python -m` child by its module's last name."""
    words = argv[1:] if Path(argv[0]).name.startswith("python") else argv
    if words[:1] == ["-m"] and len(words) > 1:
        return words[1].rpartition(".")[2]
    return " ".join(Path(w).name for w in words[:2])


def process_tree(root: int) -> list[Process]:
    """The process and its descendants, each with VmRSS from /proc/<pid>/status."""
    parents = _parent_pids()
    pids, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier]
        pids += frontier
    found = []
    for pid in pids:
        with contextlib.suppress(OSError, ValueError):
            status = Path(f"/proc/{pid}/status").read_text()
            kb = next(x for x in status.splitlines() if x.startswith("VmRSS:")).split()[1]
            argv = [a.decode() for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")]
            found.append(Process(pid, _label(argv), int(kb) * 1024))
    return found


def sqlite_bytes(data_dir: Path) -> int:
    """The ledger file with its WAL and shared-memory files."""
    return sum(p.stat().st_size for p in data_dir.glob("points.sqlite3*"))


async def postgres_bytes(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        size: int = await conn.fetchval("SELECT pg_database_size(current_database())")
        return size
    finally:
        await conn.close()


def mean_key_bytes(client: redis.Redis, prefix: str, samples: int = 2000) -> float:
    """MEMORY USAGE over the first keys SCAN finds under the prefix: this run's own Redis
    bytes per key, which used_memory (the whole server's) cannot tell apart."""
    sizes = []
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        sizes.append(client.memory_usage(key) or 0)
        if len(sizes) == samples:
            break
    return sum(sizes) / len(sizes) if sizes else float("nan")


# --- the run ------------------------------------------------------------------------


@dataclass
class Window:
    load: cl.Load
    sample: Sample


@dataclass
class Soak:
    args: argparse.Namespace
    prefix: str
    redis_url: str
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    load_at_start: tuple[float, float, float] = field(default_factory=os.getloadavg)
    warmup: cl.Load | None = None
    probe: cl.Load | None = None
    rate: float = 0.0
    ready: Sample | None = None
    baseline: Sample | None = None
    windows: list[Window] = field(default_factory=list)
    wall_seconds: float = 0.0
    log_problems: list[str] = field(default_factory=list)
    redis_keys_removed: int = 0
    redis_bytes_per_key: float = float("nan")  # MEMORY USAGE of a sample of the run's keys

    @property
    def window_count(self) -> int:
        count: int = max(1, round(self.args.minutes * 60 / self.args.window))
        return count


async def soak_windows(
    soak: Soak, port: int, server: cl.Server, sample: Callable[[float], Awaitable[Sample]]
) -> None:
    """Window after window of paced load; the sender stops between windows only to drain
    its last answers, reopen its connections and take the sample."""
    bodies = cl.EventBodies(f"{soak.prefix}-soak")
    connections = soak.args.connections
    start = time.perf_counter()
    soak.baseline = await sample(0.0)
    for i in range(soak.window_count):
        load = await cl.paced(port, "/v1/events", soak.rate, soak.args.window, connections, bodies)
        server.check_alive()
        s = await sample(time.perf_counter() - start)
        soak.windows.append(Window(load, s))
        errors = sum(load.errors.values())
        cl._step(
            f"window {i + 1}/{soak.window_count}: {load.requests:,} requests, "
            f"{load.rate:,.0f}/s, p50 {load.p50_ms:.2f} ms, p99 {load.p99_ms:.2f} ms, "
            f"errors {errors:,}, RSS {_mb(s.rss)}, Redis {_mb(s.redis_used)}, "
            f"ledger {_mb(s.ledger)}"
        )
    soak.wall_seconds = time.perf_counter() - start


def run_service(soak: Soak, data_dir: Path, database_url: str | None) -> None:
    args = soak.args
    port = cl._free_port()
    env = cl.service_env(args, port, soak.prefix, soak.redis_url, data_dir, database_url)
    info = redis.Redis.from_url(soak.redis_url)
    log = cl.OUT / "soak-service.log"
    cl._step(f"service on :{port}, {args.workers} worker(s), {args.db}")
    with cl.Server("service", [str(cl.SERVICE), "serve"], env, log) as server:

        async def sample(at: float) -> Sample:
            return Sample(
                at=at,
                processes=process_tree(server.proc.pid),
                redis_used=int(info.info("memory")["used_memory"]),
                ledger=await postgres_bytes(database_url)
                if database_url
                else sqlite_bytes(data_dir),
            )

        server.wait_ready(urllib.request.Request(f"http://{cl.HOST}:{port}/health/ready"))
        soak.ready = asyncio.run(sample(0.0))
        url = f"http://{cl.HOST}:{port}/v1/events"
        cl._step(f"warm-up: wrk {args.warmup} s at {args.connections} connections")
        soak.warmup = cl.run_wrk(url, "single", f"{soak.prefix}-w", args.connections, args.warmup)
        if args.rate:
            soak.rate = args.rate
        else:
            cl._step(f"capacity: wrk {args.probe} s at {args.connections} connections")
            soak.probe = cl.run_wrk(url, "single", f"{soak.prefix}-c", args.connections, args.probe)
            if soak.probe.errors:
                raise cl.BenchError(f"the capacity run had errors: {dict(soak.probe.errors)}")
            soak.rate = max(1.0, soak.probe.rate / 2)
        server.check_alive()
        cl._step(
            f"soak: {soak.rate:,.0f}/s for {soak.window_count} windows of {args.window} s "
            f"over {args.connections} connections"
        )
        uvloop.run(soak_windows(soak, port, server, sample))
        soak.redis_bytes_per_key = mean_key_bytes(info, soak.prefix)
    info.close()
    soak.log_problems = server.problems()


# --- the report -----------------------------------------------------------------------


def _mb(n: float) -> str:
    return f"{n / MB:,.1f} MB"


def _signed_mb(n: float) -> str:
    return f"{'+' if n >= 0 else '-'}{abs(n) / MB:,.1f} MB"


def _clock(seconds: float) -> str:
    return f"{int(seconds) // 60}:{int(seconds) % 60:02d}"


def section_title(args: argparse.Namespace) -> str:
    workers = "1 worker" if args.workers == 1 else f"{args.workers} workers"
    return f"## Soak: {args.db}, {workers}, {args.minutes:g} min"


def notes(soak: Soak) -> list[str]:
    args = soak.args
    redis_version = redis.Redis.from_url(soak.redis_url).info("server")["redis_version"]
    load = ", ".join(f"{x:.2f}" for x in soak.load_at_start)
    if soak.probe is not None:
        capacity = (
            f"capacity {soak.probe.rate:,.0f} credits/s (p99 {soak.probe.p99_ms:.2f} ms) from "
            f"{args.probe} s at {soak.probe.note} after a {args.warmup} s warm-up"
        )
    else:
        capacity = f"rate given (--rate), after a {args.warmup} s wrk warm-up"
    return [
        f"Date: {soak.started:%Y-%m-%d %H:%M} UTC; command: `{' '.join(sys.argv)}`",
        f"Machine: nproc {len(os.sched_getaffinity(0))}, {cl._cpu_model()}, "
        f"Linux {platform.release()}, load average at start {load} "
        "(load generator, service, Redis and PostgreSQL share these CPUs)",
        f"Python {platform.python_version()}; {cl._command_version(['wrk', '-v'])}; "
        f"Redis {redis_version}; service tree {cl._service_tree()}",
        f"Service: `points-service serve`, workers={args.workers}, "
        f"POINTS_ACCESS_LOG={args.access_log}, ledger {args.db}, REDIS_URL={soak.redis_url}, "
        f"prefix {soak.prefix}",
        f"Load: `POST /v1/events`, {cl.INFORMANTS:,} informants, {cl.CONTENTS:,} content ids, mix "
        + ", ".join(f"{a} {w}%" for a, w in cl.MIX.items())
        + f"; {capacity}; soak at {soak.rate:,.0f}/s, open loop over {args.connections} "
        f"connections (credit_load's paced sender), latency from each request's scheduled "
        f"time; {soak.window_count} windows of {args.window} s",
        "RSS: VmRSS of the server process and its children (the SQLite writer) from /proc; "
        "the writer's SQLite page cache may take 128 MiB (cache_size=-131072), so its RSS "
        "grows until that is full. Redis used_memory is the whole server's (other clients' "
        "keys included); the run's own keys are sized with MEMORY USAGE at the end",
    ]


def windows_table(soak: Soak) -> list[str]:
    rows = [
        "| window | to | requests | credits/s | p50 | p99 | errors | service RSS "
        "| Redis used_memory | ledger |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, w in enumerate(soak.windows, 1):
        s = w.sample
        rows.append(
            f"| {i} | {_clock(s.at)} | {w.load.requests:,} | {w.load.rate:,.0f} "
            f"| {w.load.p50_ms:.2f} ms | {w.load.p99_ms:.2f} ms | {sum(w.load.errors.values()):,} "
            f"| {_mb(s.rss)} | {_mb(s.redis_used)} | {_mb(s.ledger)} |"
        )
    return rows


def summary(soak: Soak) -> tuple[list[str], int]:
    """The summary table and the number of errors."""
    loads = [w.load for w in soak.windows]
    latencies = sorted(x for load in loads for x in load.latencies)
    requests = sum(load.requests for load in loads)
    events = sum(load.events for load in loads)
    errors: Counter[str] = Counter()
    for load in loads:
        errors.update(load.errors)
    load_seconds = sum(load.seconds for load in loads)
    first, last = soak.windows[0].sample, soak.windows[-1].sample
    base = soak.baseline or first
    per_million = (last.redis_used - base.redis_used) / events * 1e6 if events else float("nan")
    held = sum(load.p99_ms < cl.TARGET_HALF_RATE_P99_MS for load in loads)
    worst = max(loads, key=lambda load: load.p99_ms)
    ms = [cl._percentile(latencies, q) * 1000 for q in (0.50, 0.99, 0.999)]
    error_text = ", ".join(f"{kind}: {n:,}" for kind, n in errors.most_common()) or "none"
    by_pid = {p.pid: p for p in first.processes}
    processes = "; ".join(
        f"{p.label} (pid {p.pid}) {_mb(by_pid[p.pid].rss) if p.pid in by_pid else 'new'}"
        f" → {_mb(p.rss)}"
        for p in last.processes
    )
    growth = last.rss - first.rss
    keys = soak.redis_keys_removed
    credited = max(1, events + sum(x.events for x in (soak.warmup, soak.probe) if x is not None))
    own_per_million = keys * soak.redis_bytes_per_key / credited * 1e6
    rows = [
        "| measure | figure |",
        "|---|---|",
        f"| requests | {requests:,} over {_clock(soak.wall_seconds)} "
        f"({load_seconds / soak.wall_seconds:.1%} of it under load; the rest is the pause "
        "between windows) |",
        f"| credits (2xx) | {events:,}, {events / load_seconds:,.0f}/s "
        f"(target {soak.rate:,.0f}/s) |",
        f"| latency, all windows | p50 {ms[0]:.2f} ms, p99 {ms[1]:.2f} ms, "
        f"p99.9 {ms[2]:.2f} ms, max {latencies[-1] * 1000 if latencies else float('nan'):.2f} ms |",
        f"| p99 by window | {min(x.p99_ms for x in loads):.2f} to {worst.p99_ms:.2f} ms "
        f"(worst: window {loads.index(worst) + 1}); under {cl.TARGET_HALF_RATE_P99_MS:.0f} ms "
        f"in {held} of {len(loads)} |",
        f"| errors | {sum(errors.values()):,} ({error_text}) |",
        f"| service RSS, first window → last | {_mb(first.rss)} → {_mb(last.rss)} "
        f"({_signed_mb(growth)}, {growth / first.rss:+.1%}); at ready "
        f"{_mb(soak.ready.rss) if soak.ready else '?'}; by process: {processes} |",
        f"| Redis used_memory | {_mb(base.redis_used)} → {_mb(last.redis_used)} at the end "
        f"({_signed_mb(last.redis_used - base.redis_used)}): {_mb(per_million)} per million "
        "events |",
        f"| this run's Redis keys at the end | {keys:,}, {keys / credited:.2f} per event "
        f"credited ({credited:,} with the warm-up and capacity runs'); MEMORY USAGE of "
        f"{min(keys, 2000):,} of them: {soak.redis_bytes_per_key:,.0f} bytes a key, so about "
        f"{_mb(keys * soak.redis_bytes_per_key)} ({_mb(own_per_million)} per million events) |",
        f"| ledger | {_mb(base.ledger)} → {_mb(last.ledger)}: "
        f"{(last.ledger - base.ledger) / events if events else float('nan'):,.0f} bytes per "
        "event |",
    ]
    return rows, sum(errors.values())


def report(soak: Soak, failure: str | None) -> bool:
    """Print the result and, unless --no-record, rewrite the soak's section; True if valid."""
    title = section_title(soak.args)
    section = [title, "", *[f"- {n}" for n in notes(soak)], ""]
    errors = 0
    if soak.windows:
        rows, errors = summary(soak)
        section += [*windows_table(soak), "", *rows, ""]
    if failure is not None:
        section += [f"**The run failed**: {failure}", ""]
    if errors:
        section.append("**Not valid: the service answered with errors.**")
        samples = [s for w in soak.windows for s in w.load.samples][:3]
        section += [f"- sample: `{s[:600]}`" for s in samples]
    elif soak.windows and failure is None:
        section.append("Every response was 2xx.")
    section.append("")
    if soak.log_problems:
        section.append(f"service log: {len(soak.log_problems):,} line(s) above info, first ones:")
        section += [f"    {p[:400]}" for p in soak.log_problems[:5]]
        section.append("")
    section.append(f"Redis keys removed after the run: {soak.redis_keys_removed:,}.")
    text = "\n".join(section) + "\n"
    print("\n" + text)
    where = f"server log in {cl.OUT.relative_to(cl.ROOT)}/soak-service.log"
    if soak.args.no_record:
        print(f"not recorded (--no-record); {where}")
    else:
        cl.write_results(title, text)
        print(f"written to {cl.RESULTS.relative_to(cl.ROOT)}; {where}")
    return failure is None and not errors and bool(soak.windows)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10, help="soak length (10)")
    parser.add_argument("--window", type=int, default=30, help="seconds per window (30)")
    parser.add_argument("--rate", type=float, help="events/s to hold (default: half capacity)")
    parser.add_argument("--probe", type=int, default=15, help="seconds of the capacity run (15)")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of wrk warm-up (3)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers (1)")
    parser.add_argument("--redis-db", type=int, default=0)
    parser.add_argument("--access-log", choices=("true", "false"), default="true")
    parser.add_argument(
        "--no-record", action="store_true", help="print only: leave bench/RESULTS.md alone"
    )
    return parser.parse_args(argv)


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, cl._terminate)
    pid = os.getpid()
    soak = Soak(
        args=args,
        prefix=f"soak{pid}",
        redis_url=f"redis://{cl.HOST}:{cl.REDIS_PORT}/{args.redis_db}",
    )
    try:
        cl.preflight(soak.redis_url)
    except cl.BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cl.OUT.mkdir(exist_ok=True)
    failure = None
    try:
        with contextlib.ExitStack() as stack:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="points-soak-")))

            def cleanup_redis() -> None:
                cl._step("removing the run's Redis keys")
                soak.redis_keys_removed = cl.clear_redis(soak.redis_url, soak.prefix)

            stack.callback(cleanup_redis)
            database_url = None
            if args.db == "postgres":
                database_url = stack.enter_context(cl.postgres_database(f"points_soak_{pid}"))
            run_service(soak, data_dir, database_url)
    except cl.BenchError as exc:
        failure = str(exc)
        print(f"error: {failure}", file=sys.stderr)
    return 0 if report(soak, failure) else 1


if __name__ == "__main__":
    sys.exit(main())
