"""Leaderboard benchmark: memory per member, reads over HTTP against a bare GET, rebuild.

    .venv/bin/python bench/board_load.py [--members 1000000] [--events 1000000]
        [--duration 10] [--rounds 3] [--quick]

1. Memory: one board of `--members` members as the service keeps it (a sorted set, scores
   negated), beside a plain ZADD of the same members and scores, in the same Redis
   (`MEMORY USAGE ... SAMPLES 0`).
2. Reads: `points-service serve` on that board (Redis at 127.0.0.1:6379, a fresh SQLite
   file) and the bare Litestar app (`bench/bare_app.py`, GET /bare) under the same uvicorn
   settings, all up at once and loaded one at a time with wrk, in `--rounds` rounds: in
   each, the bare GET, then the top 100 (page cache off), an informant's rank with five
   neighbours each side (a random member per request), and the top 100 with the page
   cache as shipped. Each read's ratio is taken against the bare GET of its own round,
   and the median of the rounds' ratios is the figure. Then each read at half its median
   rate, open loop by wrk (`wrk_get.lua`: requests due on a fixed schedule, latency from
   when each was due).
3. Rebuild: `--events` events written straight into a fresh PostgreSQL ledger (seven a
   day for each of events/70 informants, over ten days, in five counties and 200
   institutions) with their daily rollups, then `points-service leaderboards rebuild` of
   every board, timed: ledger events per second (the rebuild reads the rollups, one row
   per informant and day, which the credit path keeps with every commit).

Prints a summary and rewrites the "Leaderboards" section of bench/RESULTS.md. Keys (one
prefix per run) and the database are removed at the end whatever happens.
"""

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
import credit_load as cl

from points_service.adapters.redis_boards import board_key
from points_service.adapters.redis_state import profile_fields, profile_view
from points_service.domain.boards import Board
from points_service.domain.profiles import Profile

BOARD = Board("points", "all", "all")
TOP = "/v1/leaderboards/points?scope=all&period=all&limit=100"
RANK = "/v1/leaderboards/points/informants/{id}?scope=all&period=all&around=5"
TARGET_MEMORY_RATIO = 1.3
TARGET_READ_RATIO = 0.50
TARGET_HALF_RATE_P99_MS = 5.0
TARGET_REBUILD_ROWS = 100_000


def fill(client: redis.Redis, prefix: str, members: int) -> tuple[int, int]:
    """The board, a plain sorted set of the same members and scores, and each member's
    profile hash (the display fields a page joins); returns (board, plain) bytes."""
    rng = random.Random(7)
    key, plain = board_key(prefix, BOARD), f"{prefix}:plain"
    chunk = 10_000
    for start in range(1, members + 1, chunk):
        scores = {
            f"m{i}": rng.randint(1, 200_000) for i in range(start, min(start + chunk, members + 1))
        }
        pipe = client.pipeline(transaction=False)
        pipe.zadd(key, {m: -s for m, s in scores.items()})
        pipe.zadd(plain, scores)
        for m in scores:
            # as the service's set_profile writes them: the hash and its view
            profile = Profile(name=f"name {m}", unit_name="unit", county="640104")
            fields = profile_fields(profile)
            pipe.hset(
                f"{prefix}:{{{m}}}:p", mapping=dict(zip(fields[::2], fields[1::2], strict=True))
            )
            pipe.set(f"{prefix}:{{{m}}}:v", profile_view(profile))
        pipe.execute()
    # The service's marker: this Redis holds its state. Without it the service's first
    # start "recovers" from its ledger (empty here) and removes the board it is to serve.
    client.set(f"{prefix}:marker", "bench")
    board_bytes = int(client.memory_usage(key, samples=0) or 0)
    plain_bytes = int(client.memory_usage(plain, samples=0) or 0)
    client.unlink(plain)
    return board_bytes, plain_bytes


def wrk_get(
    url: str, path: str, members: int, connections: int, seconds: int, rate: float = 0
) -> cl.Load:
    """As fast as wrk goes, or an open loop at `rate` requests a second: requests are due
    on a fixed schedule and latency counts from when each was due, so a stall is charged
    to every request due during it (bench/open_loop.lua; as wrk2 does)."""
    threads = min(connections, len(os.sched_getaffinity(0)))
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s"]
    argv += ["-s", str(cl.BENCH / "wrk_get.lua"), url, "--", path, str(members)]
    env = cl.WRK_ENV
    if rate:
        env = env | {"POINTS_BENCH_RATE": f"{rate:.1f}", "POINTS_BENCH_THREADS": str(threads)}
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=seconds + 120, check=False, env=env
    )
    lines = [x for x in done.stdout.splitlines() if x.startswith("BENCH ")]
    if done.returncode != 0 or not lines:
        raise cl.BenchError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    data = json.loads(lines[0].removeprefix("BENCH "))
    errors = {f"HTTP {k}": v for k, v in data["non2xx"].items()}
    errors |= {f"socket {k}": v for k, v in data["socket_errors"].items() if v}
    note = f"wrk -t{threads} -c{connections}"
    p50_us, p99_us = data["p50_us"], data["p99_us"]
    if rate:
        p50_us, p99_us, how = cl.open_loop_figures(data, rate)
        note += how
    return cl.Load(
        name=path,
        requests=data["requests"],
        events=data["ok"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=p50_us / 1000,
        p99_ms=p99_us / 1000,
        errors=cl.Counter(errors),
        samples=[data["sample"]] if data["sample"] else [],
        note=note,
    )


def serve_env(
    port: int, prefix: str, data_dir: Path, database_url: str | None = None
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POINTS_")}
    env.pop("DATABASE_URL", None)
    env |= {
        "POINTS_PORT": str(port),
        "POINTS_HOST": cl.HOST,
        "POINTS_DATA_DIR": str(data_dir),
        "POINTS_REDIS_PREFIX": prefix,
        "POINTS_API_KEYS": cl.BENCH_KEYS,
        "REDIS_URL": f"redis://{cl.HOST}:{cl.REDIS_PORT}/0",
        "POINTS_LOG_FORMAT": "json",
        # The cached top page serves near the shipped per-key limit (10,000 requests a
        # second) with one key: above it, so the limiter counts but never refuses.
        "POINTS_RATE_PER_KEY": "1000000",
    }
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


# What each round loads, in order, on which server: a service read right after the bare
# GET it is compared with.
MEASURES = (
    ("bare", "bare", "/bare"),
    ("top", "service", TOP),
    ("rank", "service", RANK),
    ("top cached", "cached", TOP),
)


@dataclasses.dataclass
class Reads:
    """Every round's load of each measure, and each measure's half-rate run."""

    rounds: list[dict[str, cl.Load]]
    half: dict[str, cl.Load]

    def ratios(self, name: str) -> list[float]:
        """The measure's rate against the bare GET of the same round, round by round."""
        return [r[name].rate / r["bare"].rate for r in self.rounds]

    def ratio(self, name: str) -> float:
        return statistics.median(self.ratios(name))

    def typical(self, name: str) -> cl.Load:
        """The round of the median rate (its latencies go in the table)."""
        ordered = sorted((r[name] for r in self.rounds), key=lambda load: load.rate)
        return ordered[(len(ordered) - 1) // 2]


def _cpu_seconds(pid: int) -> float:
    """User and system CPU a process has used (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reads(args: argparse.Namespace, prefix: str, data_dir: Path) -> Reads:
    """All three servers up at once, loaded one at a time: each round runs the bare GET,
    then each service read, so that every ratio compares runs a few seconds apart (the
    machine's speed drifts from minute to minute; a bare GET measured once, minutes
    before the reads, moved ratios by more than a code change did). Then each read at
    half its median rate."""
    seconds, warm = args.duration, max(1, args.duration // 3)
    bare_port = cl._free_port()
    bare_argv = [str(cl.UVICORN), "bare_app:app", "--app-dir", "bench", "--port", str(bare_port)]
    bare_argv += [
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    with contextlib.ExitStack() as servers:
        bare = servers.enter_context(
            cl.Server("bare", bare_argv, dict(os.environ), cl.OUT / "bare_get.log")
        )
        urls = {"bare": f"http://{cl.HOST}:{bare_port}"}
        bare.wait_ready(urllib.request.Request(f"{urls['bare']}/bare"))
        running = {"bare": bare}
        # without the page cache (every read goes to Redis), and as shipped (the top page
        # is served again for POINTS_BOARD_PAGE_TTL_MS, 1 s)
        for name, ttl in (("service", "0"), ("cached", "1000")):
            port = cl._free_port()
            env = serve_env(port, prefix, data_dir / name) | {"POINTS_BOARD_PAGE_TTL_MS": ttl}
            log = cl.OUT / f"board_service_ttl{ttl}.log"
            server = servers.enter_context(cl.Server(name, [str(cl.SERVICE), "serve"], env, log))
            urls[name] = f"http://{cl.HOST}:{port}"
            server.wait_ready(urllib.request.Request(f"{urls[name]}/health/ready"))
            running[name] = server
        for name, server_name, path in MEASURES:
            cl._step(f"{name}: warm-up {warm} s")
            wrk_get(urls[server_name], path, args.members, 64, warm)
        rounds: list[dict[str, cl.Load]] = []
        for n in range(1, args.rounds + 1):
            loads: dict[str, cl.Load] = {}
            for name, server_name, path in MEASURES:
                cl._step(f"round {n} of {args.rounds}: {name}, {seconds} s")
                pid = running[server_name].proc.pid
                cpu = _cpu_seconds(pid)
                load = wrk_get(urls[server_name], path, args.members, 64, seconds)
                used = _cpu_seconds(pid) - cpu
                if load.requests:
                    load.note += f"; server CPU {used / load.requests * 1e6:.0f} µs a request"
                loads[name] = load
            rounds.append(loads)
            for server in running.values():
                server.check_alive()
        done = Reads(rounds, {})
        for name, server_name, path in MEASURES[1:]:
            rate = max(1.0, statistics.median(r[name].rate for r in rounds) / 2)
            cl._step(f"{name}: open loop at {rate:,.0f}/s")
            done.half[name] = wrk_get(urls[server_name], path, args.members, 64, seconds, rate)
        for server in running.values():
            server.check_alive()
    intact(prefix, args.members)
    return done


def intact(prefix: str, members: int) -> None:
    """The reads were of the whole board: it still has every member (the service did not
    take it for lost and rebuild it from its empty ledger)."""
    client = redis.Redis(host=cl.HOST, port=cl.REDIS_PORT)
    try:
        found = int(client.zcard(board_key(prefix, BOARD)))
    finally:
        client.close()
    if found != members:
        raise SystemExit(f"the board has {found:,} members, not {members:,}: the reads were void")


_REBUILD_SQL = """
INSERT INTO events (event_id, informant_id, action, occurred_at, received_at, day,
                    body_hash, points, shares, share_views, posts, late, imported,
                    rule_version, decision, province, city, county, institution_id)
SELECT 'e' || g, 'inf' || ((g / 7) % $1), 'share', now(), now(),
       current_date - ((g / 7 / $1) % 20), 'h', 2, 1, 0, 0, false, true, 'bench',
       '\\x00'::bytea, '640000', '640100', '64010' || (1 + (g / 7) % $1 % 5),
       'i' || ((g / 7) % $1 % 200)
FROM generate_series(1, $2) AS g
"""


_ROLLUP_SQL = """
INSERT INTO informant_days (informant_id, day, province, city, county, institution_id,
                            events, points, shares, share_views, posts)
SELECT informant_id, day, coalesce(province, ''), coalesce(city, ''), coalesce(county, ''),
       coalesce(institution_id, ''), count(*), sum(points), sum(shares), sum(share_views),
       sum(posts)
FROM events WHERE NOT late GROUP BY 1, 2, 3, 4, 5, 6
"""


def rebuild(args: argparse.Namespace, prefix: str, data_dir: Path) -> tuple[int, float, str]:
    import asyncpg  # noqa: PLC0415

    with cl.postgres_database(f"bench_board_{os.getpid()}") as database_url:
        env = serve_env(cl._free_port(), prefix, data_dir, database_url)
        subprocess.run([str(cl.SERVICE), "migrate"], env=env, check=True, timeout=120)

        async def insert() -> None:
            conn = await asyncpg.connect(database_url)
            try:
                # seven events a day for each informant, over ten days
                await conn.execute(_REBUILD_SQL, max(1, args.events // 70), args.events)
                # The daily rollups the credit path keeps as events land (here in one go,
                # as migration 0003 backfills them).
                await conn.execute(_ROLLUP_SQL)
                await conn.execute("ANALYZE events")
                await conn.execute("ANALYZE informant_days")
            finally:
                await conn.close()

        cl._step(f"rebuild: writing {args.events:,} events into PostgreSQL")
        asyncio.run(insert())
        cl._step("rebuild: points-service leaderboards rebuild (every board)")
        started = time.perf_counter()
        done = subprocess.run(
            [str(cl.SERVICE), "leaderboards", "rebuild"],
            env=env, capture_output=True, text=True, timeout=3600, check=False,
        )  # fmt: skip
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise cl.BenchError(f"rebuild failed:\n{done.stderr[-3000:]}")
        summary = done.stderr.strip().splitlines()[-1]
    return args.events, seconds, summary


def section_title(args: argparse.Namespace) -> str:
    """The default board size has the plain title; another size a section of its own."""
    if args.members == 1_000_000:
        return "## Leaderboards"
    return f"## Leaderboards, {args.members:,} members"


def _ms(x: float) -> str:
    return f"{x:.2f} ms"


def _row(*cells: str) -> str:
    return "| " + " | ".join(cells) + " |"


def report(
    args: argparse.Namespace,
    memory: tuple[int, int],
    loads: Reads,
    rebuilt: tuple[int, float, str],
    started: datetime,
) -> str:
    board_bytes, plain_bytes = memory
    members = args.members
    lines = [
        section_title(args),
        "",
        f"- Date: {started:%Y-%m-%d %H:%M} UTC; command: "
        f"`bench/board_load.py {' '.join(sys.argv[1:])}`",
        f"- Machine: nproc {os.cpu_count()}, {cl._cpu_model()}; Redis 7.0.15 on the same "
        "machine; servers: uvicorn, uvloop, httptools, 1 worker, access log on (service)",
        f"- Board: {members:,} members (`points`, scope `all`, period `all`), scores "
        "1-200,000; each member has a profile hash and its view (the display fields pages join)",
        f"- Reads: {len(loads.rounds)} rounds of {args.duration} s runs, each round the bare "
        "GET then each read; a figure is the median round's, a ratio the median of the "
        "rounds' ratios (each read against the bare GET of its round)",
        "",
        _row("measure", "figure", "p50", "p99", "how"),
        "|---|---|---|---|---|",
    ]
    for label, size in (("the board", board_bytes), ("plain ZADD of the same", plain_bytes)):
        figure = f"{size / members:.1f} B/member ({size / 2**20:,.1f} MiB)"
        lines.append(_row(f"memory, {label}", figure, "", "", "MEMORY USAGE SAMPLES 0"))
    labels = {
        "bare": "bare `GET /bare` (ceiling)",
        "top": "top 100 `GET /v1/leaderboards/points`, no page cache",
        "top cached": "top 100, page cache 1 s (as shipped)",
        "rank": "rank and 5+5 neighbours `.../informants/{id}`",
    }
    for name, label in labels.items():
        load = loads.typical(name)
        rates = ", ".join(f"{r[name].rate:,.0f}" for r in loads.rounds)
        how = f"{load.note}; rounds: {rates} req/s"
        lines.append(
            _row(label, f"{load.rate:,.0f} req/s", _ms(load.p50_ms), _ms(load.p99_ms), how)
        )
        if name in loads.half:
            half = loads.half[name]
            lines.append(
                _row(f"{label}, half rate", f"{half.rate:,.0f} req/s", _ms(half.p50_ms),
                     _ms(half.p99_ms), half.note)
            )  # fmt: skip
    events, seconds, summary = rebuilt
    rows = events / seconds
    how = f"{events:,} events, {seconds:.1f} s: {summary}"
    lines.append(_row("rebuild from PostgreSQL", f"{rows:,.0f} ledger rows/s", "", "", how))
    memory_ratio = board_bytes / plain_bytes if plain_bytes else float("inf")

    def met(ok: bool) -> str:
        return "yes" if ok else "**no**"

    lines += [
        "",
        _row("target", "measured", "met", "rounds"),
        "|---|---|---|---|",
        _row(
            f"memory <= {TARGET_MEMORY_RATIO}x plain ZADD",
            f"{memory_ratio:.2f}x",
            met(memory_ratio <= TARGET_MEMORY_RATIO),
            "",
        ),
    ]
    for name, label in (
        ("top", "top 100 >= 50% of bare GET"),
        ("top cached", "top 100 >= 50% of bare GET, page cache"),
        ("rank", "rank >= 50% of bare GET"),
    ):
        ratio = loads.ratio(name)
        each = ", ".join(f"{x:.1%}" for x in loads.ratios(name))
        lines.append(_row(label, f"{ratio:.1%}", met(ratio >= TARGET_READ_RATIO), each))
    for key, label in (
        ("top", "top 100"),
        ("top cached", "top 100, page cache"),
        ("rank", "rank"),
    ):
        p99 = loads.half[key].p99_ms
        lines.append(
            _row(
                f"{label} p99 < 5 ms at half rate (open loop, from schedule)",
                _ms(p99),
                met(p99 < TARGET_HALF_RATE_P99_MS),
                "",
            )
        )
    lines += [
        _row("rebuild >= 100,000 rows/s", f"{rows:,.0f}", met(rows >= TARGET_REBUILD_ROWS), ""),
    ]
    every = [load for r in loads.rounds for load in r.values()] + list(loads.half.values())
    failures = [(x.name, dict(x.errors)) for x in every if x.errors]
    lines += ["", f"Errors: {failures}" if failures else "Every response was 2xx."]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--duration", type=int, default=10, help="seconds per load run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the reads")
    parser.add_argument("--quick", action="store_true", help="small and short: a smoke check")
    args = parser.parse_args()
    if args.quick:
        args.members, args.events, args.duration, args.rounds = 20_000, 50_000, 3, 2
    cl.preflight(f"redis://{cl.HOST}:{cl.REDIS_PORT}/0")
    cl.OUT.mkdir(exist_ok=True)
    started = datetime.now(UTC)
    prefix = f"bboard{os.getpid()}"
    client = redis.Redis(host=cl.HOST, port=cl.REDIS_PORT)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            data_dir = Path(tmp)
            cl._step(f"filling a board of {args.members:,} members")
            memory = fill(client, prefix, args.members)
            loads = reads(args, prefix, data_dir / "reads")
            rebuilt = rebuild(args, f"{prefix}r", data_dir / "rebuild")
    finally:
        for p in (prefix, f"{prefix}r"):
            cl.clear_redis(f"redis://{cl.HOST}:{cl.REDIS_PORT}/0", p)
        client.close()
    text = report(args, memory, loads, rebuilt, started)
    print(text)
    cl.write_results(section_title(args), text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
