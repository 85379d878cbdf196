"""Where a credit-path run's time goes: one service, one load, every process's share.

    .venv/bin/python bench/probe.py [--db sqlite|postgres] [--rate N | --wrk | --batch]
        [--connections N] [--seconds 10] [--repeat 1] [--tree DIR] [--spy FILE]

Not a benchmark with targets (that is `credit_load.py`): a measuring instrument for
changes to the credit path. It starts `points-service serve` (Redis at 127.0.0.1:6379
database 0 under a prefix of its own, a fresh SQLite file or PostgreSQL database), loads
`POST /v1/events` at a fixed rate with the bench's paced client (`--rate`, the default
1,000/s), as fast as wrk goes (`--wrk`) or with wrk's batches of 1,000 events
(`--batch`, `POST /v1/events/batch`), and prints for each run:

- the rate and the latency percentiles;
- each process's CPU (% of one core) and the time it spent runnable but waiting for a
  core, from /proc/<pid>/task/*/schedstat: web worker, SQLite writer child, Redis,
  PostgreSQL, the load generator; and the whole machine's busy share;
- the ledger's group commits (events per commit, mean seconds) and the Redis pipeline's
  round trips, from the service's /metrics;
- with `--rate`, the 100 ms windows whose slowest answer took over 10 ms.

`--tree DIR` runs the service from another checkout (a `git worktree` of an older
commit) with this checkout's virtualenv: alternate two trees run by run, since whole
runs on these machines drift more than most changes move them. `--spy FILE` records the
web worker with py-spy (raw format) during the first run.
"""

import argparse
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import credit_load as cl
import uvloop

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
REDIS_URL = f"redis://{cl.HOST}:{cl.REDIS_PORT}/0"


def _groups(service: int, client: int) -> dict[str, list[int]]:
    """The processes to watch, by role (children of the service by their command line)."""
    found: dict[str, list[int]] = defaultdict(list)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            pid = int(entry.name)
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            if pid == client:
                found["client"].append(pid)
            elif name == "wrk":
                found["wrk"].append(pid)
            elif name.startswith("redis-server"):
                found["redis"].append(pid)
            elif name.startswith("postgres"):
                found["postgres"].append(pid)
            elif pid == service:
                found["worker"].append(pid)
            elif ppid == service:
                found["writer" if "writer_process" in cmdline else "worker"].append(pid)
    return found


def _schedstat(pids: list[int]) -> tuple[int, int]:
    """Nanoseconds run and waited for a core, over every thread of the processes."""
    run = wait = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                with contextlib.suppress(OSError, ValueError):
                    ran, waited, _ = (task / "schedstat").read_text().split()
                    run, wait = run + int(ran), wait + int(waited)
    return run, wait


def _busy() -> float:
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / CLOCK_TICKS


class Sampler:
    """Each role's scheduler counters over the middle of a run (wrk starts after the
    sampler, so the roles are looked up again once the load is on)."""

    def __init__(self, service: int) -> None:
        self._service = service
        self._stop = threading.Event()
        self._rows: list[tuple[float, float, dict[str, tuple[int, int]]]] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "Sampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        started = time.monotonic()
        groups = _groups(self._service, os.getpid())
        regrouped = False
        while not self._stop.wait(0.1):
            if not regrouped:
                if time.monotonic() - started > 1.0:
                    groups, regrouped = _groups(self._service, os.getpid()), True
                continue
            counters = {role: _schedstat(pids) for role, pids in groups.items()}
            self._rows.append((time.monotonic(), _busy(), counters))

    def shares(self) -> dict[str, tuple[float, float]]:
        """Role: (% of a core run, % of a core waited), over the middle half of the run."""
        rows = self._rows
        if len(rows) < 4:
            return {}
        first, last = rows[len(rows) // 4], rows[3 * len(rows) // 4]
        seconds = last[0] - first[0]
        shares = {
            role: (
                (last[2][role][0] - first[2][role][0]) / seconds / 1e7,
                (last[2][role][1] - first[2][role][1]) / seconds / 1e7,
            )
            for role in last[2]
            if role in first[2]
        }
        shares["machine"] = ((last[1] - first[1]) / seconds * 100, 0.0)
        return shares


_TRIPS_SUM = 'points_redis_command_duration_seconds_sum{op="scripts"}'
_TRIPS_COUNT = 'points_redis_command_duration_seconds_count{op="scripts"}'


def _metric_sums(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://{cl.HOST}:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    sums: dict[str, float] = {}
    for name in (
        "points_ledger_commit_batch_size_sum",
        "points_ledger_commit_batch_size_count",
        "points_ledger_commit_duration_seconds_sum",
        _TRIPS_SUM,
        _TRIPS_COUNT,
    ):
        found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
        sums[name] = float(found[1]) if found else 0.0
    return sums


def _slow_windows(trace: list[tuple[float, float]]) -> str:
    if not trace:
        return "none"
    start = trace[0][0]
    windows: dict[int, list[float]] = defaultdict(list)
    for scheduled, seconds in trace:
        windows[int((scheduled - start) * 10)].append(seconds * 1000)
    slow = [
        f"{w / 10:.1f}s: max {max(v):.0f} ms, {sum(x > 10 for x in v)} over 10 ms"
        for w, v in sorted(windows.items())
        if max(v) > 10
    ]
    return f"{len(slow)} of {len(windows)}" + ("" if not slow else "; " + "; ".join(slow[:12]))


@contextlib.contextmanager
def _service(args: argparse.Namespace, port: int, prefix: str, data: Path) -> Iterator[int]:
    database_url = None
    with contextlib.ExitStack() as stack:
        if args.db == "postgres":
            database_url = stack.enter_context(cl.postgres_database(f"probe_{os.getpid()}"))
        settings = argparse.Namespace(access_log="true", workers=1)
        env = cl.service_env(settings, port, prefix, REDIS_URL, data, database_url)
        tree = Path(args.tree).resolve()
        env["PYTHONPATH"] = str(tree)
        log = (data / "service.log").open("wb")
        stack.callback(log.close)
        # Callbacks run last first: the keys go once the service has stopped (its last
        # board writes land while it stops).
        stack.callback(cl.clear_redis, REDIS_URL, prefix)
        proc = subprocess.Popen(
            [str(cl.SERVICE), "serve"], cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        stack.callback(proc.wait)
        stack.callback(proc.terminate)
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"http://{cl.HOST}:{port}/health/ready", timeout=2)
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise cl.BenchError(f"the service did not start: see {data / 'service.log'}")
            time.sleep(0.2)
        yield proc.pid


def _load(args: argparse.Namespace, port: int, tag: str, seconds: int) -> tuple[cl.Load, str]:
    if args.batch:
        url = f"http://{cl.HOST}:{port}/v1/events/batch"
        return cl.run_wrk(url, "batch", tag, args.connections or cl.BATCH_CONNECTIONS, seconds), ""
    if args.wrk:
        url = f"http://{cl.HOST}:{port}/v1/events"
        return cl.run_wrk(url, "single", tag, args.connections or 64, seconds), ""
    trace: list[tuple[float, float]] = []
    load = uvloop.run(
        cl.paced(
            port, "/v1/events", args.rate, seconds, args.connections or 64, cl.EventBodies(tag),
            trace=trace,
        )
    )  # fmt: skip
    return load, _slow_windows(trace)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--rate", type=float, default=1000.0, help="paced events/s")
    parser.add_argument("--wrk", action="store_true", help="as fast as wrk goes instead")
    parser.add_argument(
        "--batch", action="store_true", help=f"batches of {cl.BATCH_SIZE} by wrk instead"
    )
    parser.add_argument("--connections", type=int, help="64; with --batch, as credit_load's")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--tree", default=str(cl.ROOT), help="the checkout to serve from")
    parser.add_argument("--spy", help="py-spy raw profile of the web worker (first run)")
    args = parser.parse_args()
    prefix = f"probe{os.getpid()}"
    port = cl._free_port()
    with (
        tempfile.TemporaryDirectory(prefix="points-probe-") as tmp,
        _service(args, port, prefix, Path(tmp)) as pid,
    ):
        _load(args, port, f"{prefix}-w", args.warmup)
        for run in range(args.repeat):
            spy = None
            if args.spy and run == 0:
                spy = subprocess.Popen(
                    ["py-spy", "record", "-p", str(pid), "-d", str(args.seconds), "-r", "250",
                     "-f", "raw", "-o", args.spy, "--nonblocking"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
            before = _metric_sums(port)
            with Sampler(pid) as sampler:
                load, slow = _load(args, port, f"{prefix}-{run}", args.seconds)
            after = _metric_sums(port)
            if spy is not None:
                spy.wait()
            tail = load.latencies
            extra = (
                f", p99.9 {tail[int(len(tail) * 0.999)] * 1000:.2f} ms, "
                f"max {tail[-1] * 1000:.2f} ms"
                if tail
                else ""
            )
            print(
                f"run {run + 1}: {load.rate:,.0f} events/s, p50 {load.p50_ms:.2f} ms, "
                f"p99 {load.p99_ms:.2f} ms{extra}; errors {dict(load.errors) or 'none'}"
            )
            shares = sampler.shares()
            machine = shares.pop("machine", (0.0, 0.0))[0]
            print(
                "  CPU, % of a core (and % waiting for one): "
                + ", ".join(f"{r} {ran:.0f} ({wait:.0f})" for r, (ran, wait) in shares.items())
                + f"; the machine {machine:.0f} % of {os.cpu_count() or 1}00"
            )
            d = {k: after[k] - before.get(k, 0.0) for k in after}
            commits = d["points_ledger_commit_batch_size_count"] or 1
            per_commit = d["points_ledger_commit_batch_size_sum"] / commits
            commit_ms = d["points_ledger_commit_duration_seconds_sum"] / commits * 1000
            trips = d[_TRIPS_COUNT]
            trip_ms = d[_TRIPS_SUM] / (trips or 1) * 1000
            print(
                f"  group commits: {per_commit:.1f} events each, {commit_ms:.2f} ms; "
                f"Redis pipelines: {trips:,.0f}, {trip_ms:.2f} ms each"
            )
            if slow:
                print(f"  100 ms windows with an answer over 10 ms: {slow}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
