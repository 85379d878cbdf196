"""Credit-path benchmark: how fast the service credits events, against two ceilings.

    .venv/bin/python bench/credit_load.py [--quick] [--db sqlite|postgres] [--workers N]

It starts `points-service serve` (Redis at 127.0.0.1:6379, a fresh SQLite file or
PostgreSQL database) and a bare Litestar app (`bench/bare_app.py`) under the same uvicorn
settings, loads both with wrk (`apt-get install -y wrk`) over keep-alive connections, runs
wrk as an open loop at half the measured rate (`open_loop.lua`: latency from when each
request was due), and runs redis-benchmark on
the EVALSHA of `apply.lua` with a one-event plan. It prints a summary and rewrites the
"Credit path" section of bench/RESULTS.md; server logs are left in bench/out/.

Every response must be 2xx and every batch item accepted: a run with errors is reported as
not valid and the program exits 1. Servers, the database and the Redis keys (one prefix per
run) are removed at the end whatever happens.
"""

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn, Self

import asyncpg
import msgspec
import redis

from points_service.adapters.api_keys import digest, new_key
from points_service.adapters.redis_state import encode_apply_call
from points_service.adapters.rule_files import load_rule_dir
from points_service.domain.actions import REQUIRED_FIELDS
from points_service.domain.calendar import Calendar
from points_service.domain.engine import plan_event
from points_service.domain.events import Event

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
OUT = BENCH / "out"
RESULTS = BENCH / "RESULTS.md"
WRK_SCRIPT = BENCH / "wrk_events.lua"
# The service asks every request for an API key: the benchmark's own, made per run. The
# bare app receives the same header (and ignores it), so both carry the same bytes.
BENCH_KEY = new_key()
BENCH_KEYS = json.dumps([{"name": "bench", "hash": digest(BENCH_KEY), "scopes": ["admin"]}])
AUTH = f"Bearer {BENCH_KEY}"
WRK_ENV = dict(os.environ) | {"POINTS_BENCH_AUTH": AUTH}
APPLY_LUA = ROOT / "points_service" / "adapters" / "lua" / "apply.lua"
SERVICE = ROOT / ".venv" / "bin" / "points-service"
UVICORN = ROOT / ".venv" / "bin" / "uvicorn"

HOST = "127.0.0.1"
REDIS_PORT = 6379
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"

# The default action mix, in percent; each event carries the fields its action requires.
MIX = {"browse": 35, "like": 20, "share": 15, "share_view": 15, "login": 5, "sign_in": 5, "post": 5}
INFORMANTS = 20_000
CONTENTS = 3_000
# Ids the generators draw for each event field: prefix and pool size (wrk_events.lua agrees).
FIELD_POOLS = {
    "content_id": ("c", CONTENTS),
    "share_id": ("s", CONTENTS),
    "viewer_id": ("inf", INFORMANTS),
}
BATCH_SIZE = 1000
BATCH_CONNECTIONS = 4

# One first-time browse, as the Redis adapter sends it (redis_state.RedisState._call).
EVALSHA_CLIENTS = 50
EVALSHA_PIPELINES = (1, 16)

TARGET_SINGLE_RATIO = 0.40
TARGET_HALF_RATE_P99_MS = 10.0
TARGET_BATCH_RATIO = 0.50

_CONTENT_LENGTH = re.compile(rb"(?im)^content-length:[ \t]*(\d+)")


class BenchError(RuntimeError):
    pass


@dataclass
class Load:
    """One load run: events counted from 2xx responses (accepted items for a batch)."""

    name: str
    requests: int
    events: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)
    note: str = ""
    # Paced runs: every 2xx answer's seconds from its scheduled time, sorted.
    latencies: list[float] = field(default_factory=list, repr=False)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


@dataclass
class Evalsha:
    pipeline: int
    requests_per_s: float
    p50_ms: float


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def _mix_spec() -> str:
    return ";".join(f"{a}={w}={'+'.join(REQUIRED_FIELDS[a])}" for a, w in MIX.items())


# --- servers -------------------------------------------------------------------------


class Server:
    """A server in its own process group, its output in a log file; stopped on exit."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise BenchError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")

    def wait_ready(self, probe: urllib.request.Request, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            with contextlib.suppress(OSError), urllib.request.urlopen(probe, timeout=2) as reply:
                if reply.status == 200:
                    return
            time.sleep(0.2)
        raise BenchError(f"{self.name} not ready after {timeout:.0f} s:\n{self.tail()}")

    def stop(self) -> None:
        """SIGTERM to the group (uvicorn and its workers), SIGKILL to whatever is left."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            print(f"{self.name}: no exit 40 s after SIGTERM, killing", file=sys.stderr)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def problems(self) -> list[str]:
        """Log lines that are not info: the service logs JSON, uvicorn only warnings."""
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                level = json.loads(line).get("level", "")
            except (ValueError, AttributeError):
                level = "text"
            if level not in {"debug", "info"}:
                found.append(line)
        return found


def _json_post(url: str, body: bytes) -> urllib.request.Request:
    return urllib.request.Request(
        url,
        data=body,
        headers={"Content-Type": "application/json", "Authorization": AUTH},
        method="POST",
    )


@contextlib.contextmanager
def postgres_database(name: str) -> Iterator[str]:
    async def execute(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(execute(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql://postgres@{HOST}:5432/{name}"
    finally:
        asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def clear_redis(url: str, prefix: str) -> int:
    client = redis.Redis.from_url(url)
    removed = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        batch.append(key)
        if len(batch) == 1000:
            removed += client.unlink(*batch)
            batch.clear()
    if batch:
        removed += client.unlink(*batch)
    client.close()
    return removed


# --- load: wrk (closed loop) ------------------------------------------------------------


def open_loop_figures(data: dict[str, Any], rate: float) -> tuple[int, int, str]:
    """p50 and p99 (us) from each request's due time, and how, from the BENCH line of a
    wrk script run as an open loop (bench/open_loop.lua)."""
    if data["timed"] != data["requests"]:
        raise BenchError(f"{data['timed']} of {data['requests']} answers were timed")
    how = (
        f", open loop at {rate:,.0f}/s; latency from each request's due time"
        f" (p99.9 {data['due_p999_us'] / 1000:.2f} ms); wrk itself sent"
        f" {data['late'] / max(1, data['requests']):.0%} of requests late, p99"
        f" {data['late_p99_us'] / 1000:.2f} ms"
    )
    return data["due_p50_us"], data["due_p99_us"], how


def run_wrk(url: str, mode: str, tag: str, connections: int, seconds: int, rate: float = 0) -> Load:
    """As fast as wrk goes, or with `rate` an open loop at that many requests a second
    (bench/open_loop.lua: latency from when each request was due)."""
    threads = min(connections, len(os.sched_getaffinity(0)))
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "30s",
        "-s",
        str(WRK_SCRIPT),
        url,
        "--",
        mode,
        tag,
        str(INFORMANTS),
        str(CONTENTS),
        str(BATCH_SIZE),
        _mix_spec(),
    ]
    env = WRK_ENV
    if rate:
        env = env | {"POINTS_BENCH_RATE": f"{rate:.1f}", "POINTS_BENCH_THREADS": str(threads)}
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=seconds + 120, check=False, env=env
    )
    lines = [x for x in done.stdout.splitlines() if x.startswith("BENCH ")]
    if done.returncode != 0 or not lines:
        raise BenchError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    data = json.loads(lines[0].removeprefix("BENCH "))
    note, p50_us, p99_us = f"wrk -t{threads} -c{connections}", data["p50_us"], data["p99_us"]
    if rate:
        p50_us, p99_us, how = open_loop_figures(data, rate)
        note += how
    errors: Counter[str] = Counter()
    for status, n in data["non2xx"].items():
        errors[f"HTTP {status}"] += n
    for kind, n in data["socket_errors"].items():
        errors[f"socket {kind}"] += n
    errors["batch items refused"] += data["rejected"]
    errors["2xx batch body unreadable"] += data["unparsed"]
    return Load(
        name=f"{mode} {url.rsplit('/', 1)[-1]}",
        requests=data["requests"],
        events=data["events"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=p50_us / 1000,
        p99_ms=p99_us / 1000,
        errors=+errors,
        samples=[s for s in (data["sample"], data["item"]) if s],
        note=note,
    )


# --- load: paced (open loop) --------------------------------------------------------


class EventBodies:
    """Single-event bodies with the default mix and unique event ids."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.count = 0
        self.actions = list(MIX)
        self.weights = list(MIX.values())

    def __call__(self) -> bytes:
        self.count += 1
        action = random.choices(self.actions, self.weights)[0]
        event = {
            "event_id": f"{self.tag}-{self.count}",
            "informant_id": f"inf{random.randint(1, INFORMANTS)}",
            "action": action,
            "occurred_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        for name in REQUIRED_FIELDS[action]:
            prefix, pool = FIELD_POOLS[name]
            event[name] = f"{prefix}{random.randint(1, pool)}"
        return msgspec.json.encode(event)


class Connection:
    """One keep-alive HTTP/1.1 connection; answers must carry Content-Length."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> "Connection":
        reader, writer = await asyncio.open_connection(HOST, port)
        return cls(reader, writer)

    async def send(self, head: bytes, body: bytes) -> tuple[int, bytes]:
        self.writer.write(head + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        length = _CONTENT_LENGTH.search(raw)
        if length is None:
            raise BenchError(f"answer without Content-Length: {raw[:200]!r}")
        return int(raw[9:12]), await self.reader.readexactly(int(length[1]))

    def close(self) -> None:
        self.writer.close()


async def paced(
    port: int,
    path: str,
    rate: float,
    seconds: int,
    connections: int,
    make: Callable[[], bytes],
    method: str = "POST",
    make_path: Callable[[], str] | None = None,
    trace: list[tuple[float, float]] | None = None,
) -> Load:
    """Send at a fixed schedule whatever the answers; latency counts from the scheduled
    time (no coordinated omission), so a stall shows as the queue behind it. Times come
    from perf_counter: uvloop's loop.time() has millisecond steps. `trace` gets each 2xx
    answer's (scheduled time, seconds from it), in perf_counter's time."""
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await Connection.open(port))
    from_schedule: list[float] = []
    from_send: list[float] = []
    errors: Counter[str] = Counter()
    samples: list[str] = []

    async def one(scheduled: float) -> None:
        conn = await pool.get()
        body = make()
        target = make_path() if make_path else path
        head = (
            f"{method} {target} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
            f"Authorization: {AUTH}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        sent = time.perf_counter()
        try:
            status, answer = await conn.send(head, body)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            conn.close()
            pool.put_nowait(await Connection.open(port))
            errors[f"socket {type(exc).__name__}"] += 1
            if len(samples) < 3:
                samples.append(repr(exc))
            return
        pool.put_nowait(conn)
        done = time.perf_counter()
        if not 200 <= status <= 299:
            errors[f"HTTP {status}"] += 1
            if len(samples) < 3:
                samples.append(answer[:600].decode(errors="replace"))
            return
        from_schedule.append(done - scheduled)
        from_send.append(done - sent)
        if trace is not None:
            trace.append((scheduled, done - scheduled))

    total = int(rate * seconds)
    start = time.perf_counter() + 0.05
    tasks = []
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(scheduled)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    while not pool.empty():
        pool.get_nowait().close()
    from_schedule.sort()
    from_send.sort()
    return Load(
        name=f"paced {path}",
        requests=total,
        events=len(from_schedule),
        seconds=elapsed,
        p50_ms=_percentile(from_schedule, 0.50) * 1000,
        p99_ms=_percentile(from_schedule, 0.99) * 1000,
        errors=errors,
        samples=samples,
        latencies=from_schedule,
        note=(
            f"target {rate:,.0f}/s over {connections} connections; from send: "
            f"p50 {_percentile(from_send, 0.50) * 1000:.2f} ms, "
            f"p99 {_percentile(from_send, 0.99) * 1000:.2f} ms"
        ),
    )


# --- the EVALSHA ceiling ------------------------------------------------------------


def evalsha_ceiling(redis_url: str, db: int, prefix: str, requests: int) -> list[Evalsha]:
    client = redis.Redis.from_url(redis_url)
    sha = client.script_load(APPLY_LUA.read_text())
    # The call the service makes for one fresh browse, encoded by the service's own
    # adapter; redis-benchmark swaps in a random informant per call.
    now = datetime.now(UTC)
    event = Event(
        event_id="bench-evalsha", informant_id="__rand_int__", action="browse",
        content_id="c1", occurred_at=now,
    )  # fmt: skip
    rules = load_rule_dir(ROOT / "rules")
    plan = plan_event(event, rules, Calendar.named("Asia/Shanghai"), now, timedelta(hours=72))
    keys, arg = encode_apply_call(prefix, 432_000, 345_600, [("__rand_int__", [plan])])
    probe = [k.replace("__rand_int__", "probe") for k in keys]
    [[[[flag, decision]], _profile]] = client.evalsha(sha, len(keys), *probe, arg)
    client.close()
    if flag != 0 or json.loads(decision)["p"] != 1:
        raise BenchError(f"the EVALSHA plan did not credit a fresh browse: {flag} {decision!r}")
    results = []
    for pipeline in EVALSHA_PIPELINES:
        argv = ["redis-benchmark", "-h", HOST, "-p", str(REDIS_PORT), "--dbnum", str(db)]
        argv += ["-n", str(requests), "-c", str(EVALSHA_CLIENTS), "-P", str(pipeline)]
        argv += ["-r", "1000000000", "-q", "EVALSHA", sha, str(len(keys)), *keys, arg.decode()]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
        text = done.stdout + done.stderr
        rps = re.findall(r"([\d.]+) requests per second", text)
        p50 = re.findall(r"p50=([\d.]+) msec", text)
        if done.returncode != 0 or re.search(r"ERR|[Ee]rror", text) or not rps:
            raise BenchError(f"redis-benchmark -P {pipeline} failed:\n{text[-2000:]}")
        results.append(Evalsha(pipeline, float(rps[-1]), float(p50[-1]) if p50 else float("nan")))
    return results


# --- the run ------------------------------------------------------------------------


@dataclass
class Run:
    args: argparse.Namespace
    seconds: int
    warmup: int
    evalsha_requests: int
    prefix: str
    redis_url: str
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    load_at_start: tuple[float, float, float] = field(default_factory=os.getloadavg)
    bare: Load | None = None
    single: Load | None = None
    half: Load | None = None
    batch: Load | None = None
    evalsha: list[Evalsha] = field(default_factory=list)
    warmups: list[Load] = field(default_factory=list)
    log_problems: dict[str, list[str]] = field(default_factory=dict)
    redis_keys_removed: int = 0


def _step(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def measure_bare(run: Run) -> None:
    port = _free_port()
    workers = str(run.args.workers)
    argv = [str(UVICORN), "bare_app:app", "--app-dir", str(BENCH), "--host", HOST]
    argv += ["--port", str(port), "--workers", workers, "--loop", "uvloop", "--http", "httptools"]
    argv += ["--no-access-log", "--log-level", "warning"]
    url = f"http://{HOST}:{port}/bare"
    _step(f"bare app on :{port}, {workers} worker(s)")
    with Server("bare app", argv, dict(os.environ), OUT / "bare.log") as server:
        server.wait_ready(_json_post(url, EventBodies(f"{run.prefix}-probe")()))
        _step(f"bare: warm-up {run.warmup} s, then {run.seconds} s")
        run.warmups.append(
            run_wrk(url, "single", f"{run.prefix}-bw", run.args.connections, run.warmup)
        )
        run.bare = run_wrk(url, "single", f"{run.prefix}-b", run.args.connections, run.seconds)
        server.check_alive()
    run.log_problems["bare app"] = server.problems()


def service_env(
    args: argparse.Namespace,
    port: int,
    prefix: str,
    redis_url: str,
    data_dir: Path,
    database_url: str | None,
) -> dict[str, str]:
    """The environment `points-service serve` runs with: the bench key, its own prefix,
    JSON logs; args gives access_log and workers."""
    env = dict(os.environ)
    env.pop("DATABASE_URL", None)
    env |= {
        "POINTS_PORT": str(port),
        "POINTS_HOST": HOST,
        "POINTS_DATA_DIR": str(data_dir),
        "POINTS_REDIS_PREFIX": prefix,
        "POINTS_API_KEYS": BENCH_KEYS,
        "REDIS_URL": redis_url,
        "POINTS_ACCESS_LOG": args.access_log,
        "POINTS_WORKERS": str(args.workers),
        "POINTS_LOG_FORMAT": "json",
    }
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


def measure_service(run: Run, data_dir: Path, database_url: str | None) -> None:
    port = _free_port()
    env = service_env(run.args, port, run.prefix, run.redis_url, data_dir, database_url)
    base = f"http://{HOST}:{port}"
    _step(f"service on :{port}, {run.args.workers} worker(s), {run.args.db}")
    with Server("service", [str(SERVICE), "serve"], env, OUT / "service.log") as server:
        server.wait_ready(urllib.request.Request(f"{base}/health/ready"))
        one, many = f"{base}/v1/events", f"{base}/v1/events/batch"
        connections = run.args.connections
        _step(f"service: warm-up {run.warmup} s, then {run.seconds} s at {connections} connections")
        run.warmups.append(run_wrk(one, "single", f"{run.prefix}-w", connections, run.warmup))
        run.single = run_wrk(one, "single", f"{run.prefix}-s", connections, run.seconds)
        server.check_alive()
        rate = max(1.0, run.single.rate / 2)
        _step(f"service: open loop at {rate:,.0f}/s for {run.seconds} s")
        run.half = run_wrk(one, "single", f"{run.prefix}-p", connections, run.seconds, rate)
        server.check_alive()
        _step(
            f"service: batches of {BATCH_SIZE} for {run.seconds} s, {BATCH_CONNECTIONS} connections"
        )
        run.batch = run_wrk(many, "batch", f"{run.prefix}-m", BATCH_CONNECTIONS, run.seconds)
        server.check_alive()
    run.log_problems["service"] = server.problems()


# --- the report -----------------------------------------------------------------------


def _command_version(argv: list[str]) -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
        text = (done.stdout or done.stderr).strip()
        return text.splitlines()[0] if text else "?"
    return "?"


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return platform.processor() or "?"


def _service_tree() -> str:
    rev = _command_version(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--", "points_service"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return f"{rev} + uncommitted changes" if dirty else rev


def machine_notes(run: Run) -> list[str]:
    redis_version = redis.Redis.from_url(run.redis_url).info("server")["redis_version"]
    load = ", ".join(f"{x:.2f}" for x in run.load_at_start)
    return [
        f"Date: {run.started:%Y-%m-%d %H:%M} UTC; command: `{' '.join(sys.argv)}`"
        + (" (quick: a smoke check, not figures to quote)" if run.args.quick else ""),
        f"Machine: nproc {len(os.sched_getaffinity(0))}, {_cpu_model()}, "
        f"Linux {platform.release()}, load average at start {load} "
        "(load generator and servers share these CPUs)",
        f"Python {platform.python_version()}; {_command_version(['wrk', '-v'])}; "
        f"Redis {redis_version}; service tree {_service_tree()}",
        f"Servers: uvicorn, loop=uvloop, http=httptools, workers={run.args.workers}, uvicorn "
        f"access log off; service POINTS_ACCESS_LOG={run.args.access_log}, ledger "
        f"{run.args.db}, REDIS_URL={run.redis_url}, prefix {run.prefix}",
        f"Load: {INFORMANTS:,} informants, {CONTENTS:,} content ids, mix "
        + ", ".join(f"{a} {w}%" for a, w in MIX.items())
        + f"; {run.seconds} s per run after a {run.warmup} s warm-up",
    ]


def _ms(x: float) -> str:
    return f"{x:.2f} ms"


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def figures_table(run: Run) -> list[str]:
    rows = ["| measure | figure | p50 | p99 | how |", "|---|---|---|---|---|"]
    for label, unit, load in (
        ("bare `POST /bare` (ceiling)", "req/s", run.bare),
        ("service `POST /v1/events`, max", "credits/s", run.single),
        ("service `POST /v1/events`, half rate", "credits/s", run.half),
        ("service `POST /v1/events/batch` (1,000)", "events/s", run.batch),
    ):
        if load is not None:
            rows.append(
                f"| {label} | {load.rate:,.0f} {unit} | {_ms(load.p50_ms)} | {_ms(load.p99_ms)} "
                f"| {load.note} |"
            )
    for e in run.evalsha:
        rows.append(
            f"| EVALSHA apply.lua, one browse, -P {e.pipeline} | {e.requests_per_s:,.0f} calls/s "
            f"| {_ms(e.p50_ms)} | "
            f"| redis-benchmark -c {EVALSHA_CLIENTS} -n {run.evalsha_requests:,} |"
        )
    return rows


def targets_table(
    bare: Load, single: Load, half: Load, batch: Load, evalsha: list[Evalsha]
) -> tuple[list[str], bool]:
    single_ratio = _ratio(single.rate, bare.rate)
    pipelined = max(evalsha, key=lambda e: e.pipeline).requests_per_s
    batch_ratio = _ratio(batch.rate, pipelined)
    checks = [
        (
            f"single-event >= {TARGET_SINGLE_RATIO:.0%} of bare",
            f"{single_ratio:.1%} ({single.rate:,.0f} / {bare.rate:,.0f})",
            single_ratio >= TARGET_SINGLE_RATIO,
        ),
        (
            f"p99 < {TARGET_HALF_RATE_P99_MS:.0f} ms at half rate",
            f"{_ms(half.p99_ms)} at {half.rate:,.0f}/s",
            half.p99_ms < TARGET_HALF_RATE_P99_MS,
        ),
        (
            f"batch >= {TARGET_BATCH_RATIO:.0%} of pipelined EVALSHA",
            f"{batch_ratio:.1%} ({batch.rate:,.0f} / {pipelined:,.0f})",
            batch_ratio >= TARGET_BATCH_RATIO,
        ),
    ]
    rows = ["| target | measured | met |", "|---|---|---|"]
    rows += [f"| {name} | {figure} | {'yes' if ok else '**no**'} |" for name, figure, ok in checks]
    return rows, all(ok for _, _, ok in checks)


def error_lines(run: Run) -> list[str]:
    lines = []
    for load in [*run.warmups, run.bare, run.single, run.half, run.batch]:
        if load is not None and load.errors:
            counts = ", ".join(f"{kind}: {n:,}" for kind, n in load.errors.most_common())
            lines.append(f"- {load.name} ({load.note}): {counts}")
            lines += [f"  - sample: `{s[:600]}`" for s in load.samples[:3]]
    return lines


def report(run: Run, failure: str | None) -> bool:
    """Print the summary and rewrite the Credit path section; True if the run is valid."""
    errors = error_lines(run)
    section = [section_title(run.args), "", *[f"- {n}" for n in machine_notes(run)], ""]
    section += [*figures_table(run), ""]
    if failure is None and run.bare and run.single and run.half and run.batch:
        rows, met = targets_table(run.bare, run.single, run.half, run.batch, run.evalsha)
        section += [*rows, "", "All targets met." if met else "Not all targets met.", ""]
    else:
        section += [f"**The run failed**: {failure}", ""]
    if errors:
        section += ["**Not valid: the service or the ceiling answered with errors.**", "", *errors]
    elif failure is None:
        section += ["Every response was 2xx and every batch item was accepted."]
    section.append("")
    for name, problems in run.log_problems.items():
        if problems:
            section.append(f"{name} log: {len(problems):,} line(s) above info, first ones:")
            section += [f"    {p[:400]}" for p in problems[:5]]
            section.append("")
    section.append(f"Redis keys removed after the run: {run.redis_keys_removed:,}.")
    text = "\n".join(section) + "\n"
    print("\n" + text)
    write_results(section_title(run.args), text)
    print(f"written to {RESULTS.relative_to(ROOT)}; server logs in {OUT.relative_to(ROOT)}/")
    return failure is None and not errors


def section_title(args: argparse.Namespace) -> str:
    workers = "1 worker" if args.workers == 1 else f"{args.workers} workers"
    return f"## Credit path: {args.db}, {workers}"


def write_results(title: str, section: str) -> None:
    """Replace this configuration's section of RESULTS.md, keeping the others."""
    old = RESULTS.read_text() if RESULTS.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(title)}\n.*?(?=^## |\Z)", re.M | re.S)
    if pattern.search(old):
        new = pattern.sub(lambda _: section + "\n", old, count=1)
    else:
        new = old.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(new.rstrip("\n") + "\n")


def preflight(redis_url: str) -> None:
    missing = [tool for tool in ("wrk", "redis-benchmark") if shutil.which(tool) is None]
    if missing:
        raise BenchError(
            f"missing {', '.join(missing)}: this benchmark needs wrk and redis-benchmark "
            "(Debian: apt-get install -y wrk redis-tools)"
        )
    for path in (SERVICE, UVICORN):
        if not path.exists():
            raise BenchError(f"missing {path}: run `make venv`")
    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        raise BenchError(f"Redis at {redis_url} does not answer: {exc}") from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, help="seconds per load run (15; 3 with --quick)")
    parser.add_argument("--connections", type=int, default=64, help="single-event connections")
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers, both servers")
    parser.add_argument("--redis-db", type=int, default=0)
    parser.add_argument("--access-log", choices=("true", "false"), default="true")
    parser.add_argument("--quick", action="store_true", help="short runs: a smoke check")
    return parser.parse_args(argv)


def _terminate(signum: int, _frame: object) -> NoReturn:
    raise SystemExit(128 + signum)


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, _terminate)
    pid = os.getpid()
    run = Run(
        args=args,
        seconds=args.duration or (3 if args.quick else 15),
        warmup=1 if args.quick else 3,
        evalsha_requests=20_000 if args.quick else 200_000,
        prefix=f"bench{pid}",
        redis_url=f"redis://{HOST}:{REDIS_PORT}/{args.redis_db}",
    )
    try:
        preflight(run.redis_url)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    OUT.mkdir(exist_ok=True)
    failure = None
    try:
        with contextlib.ExitStack() as stack:
            data_dir = Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="points-bench-"))
            )

            def cleanup_redis() -> None:
                run.redis_keys_removed = clear_redis(run.redis_url, run.prefix)

            stack.callback(cleanup_redis)
            database_url = None
            if args.db == "postgres":
                database_url = stack.enter_context(postgres_database(f"points_bench_{pid}"))
            measure_bare(run)
            measure_service(run, data_dir, database_url)
            _step(f"EVALSHA ceiling: redis-benchmark -n {run.evalsha_requests:,} -P 1 and -P 16")
            run.evalsha = evalsha_ceiling(
                run.redis_url, args.redis_db, run.prefix, run.evalsha_requests
            )
    except BenchError as exc:
        failure = str(exc)
        print(f"error: {failure}", file=sys.stderr)
    return 0 if report(run, failure) else 1


if __name__ == "__main__":
    sys.exit(main())
