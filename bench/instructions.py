"""Instructions per request of a read, counted by callgrind: repeatable where throughput
on these shared hosts is not (two runs of one tree agree to ~1 %).

    .venv/bin/python bench/instructions.py rank|top|bare [--tree DIR] [--requests 1000]
        [--keep] [--save DIR]

`rank` reads an informant's rank with five neighbours each side on a board of
1,000,000 members (`board_load.RANK`), `top` the top 100 with the page cache off
(`board_load.TOP`), `bare` the bare Litestar GET (`bench/bare_app.py`). The board is
filled as `board_load.py` fills it, under the prefix `instr` (~45 s), and removed at the
end unless `--keep` (then the next run reuses it). The server runs under
`valgrind --tool=callgrind --instr-atstart=no`; 300 requests warm it up, then the
instrumentation is switched on for `--requests` requests (16 keep-alive connections
from this process) and the total is divided by their number. `--tree DIR` serves from
another checkout (a `git worktree` of an older commit) with this checkout's virtualenv,
for an A/B. `--save DIR` keeps the callgrind output there, for `callgrind_annotate
--inclusive=yes` (where the instructions go, by C function). Needs valgrind
(callgrind_control), Redis at 127.0.0.1:6379.
"""

import argparse
import asyncio
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
import board_load as bl
import credit_load as cl

PREFIX = "instr"
MEMBERS = 1_000_000
FILLED = f"{PREFIX}:filled"  # this tool's own note that the board is there
WARM_UP = 300
CONNECTIONS = 16


async def _load(port: int, count: int, target: Callable[[], str]) -> None:
    async def one(requests: int) -> None:
        reader, writer = await asyncio.open_connection(cl.HOST, port)
        for _ in range(requests):
            head = f"GET {target()} HTTP/1.1\r\nhost: x\r\nauthorization: {cl.AUTH}\r\n\r\n"
            writer.write(head.encode())
            status = await reader.readline()
            if b" 200 " not in status:
                raise cl.BenchError(f"not a 200: {status!r}")
            length = 0
            while (line := await reader.readline()) != b"\r\n":
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
        writer.close()

    await asyncio.gather(*(one(count // CONNECTIONS) for _ in range(CONNECTIONS)))


def _control(pid: int, *options: str) -> None:
    subprocess.run(["callgrind_control", *options, str(pid)], check=True, capture_output=True)


def measure(what: str, tree: Path, requests: int, save: Path | None = None) -> float:
    rng = random.Random(5)
    paths: dict[str, Callable[[], str]] = {
        "rank": lambda: bl.RANK.replace("{id}", f"m{rng.randint(1, MEMBERS)}"),
        "top": lambda: bl.TOP,
        "bare": lambda: "/bare",
    }
    port = cl._free_port()
    with tempfile.TemporaryDirectory(prefix="points-instr-") as tmp:
        out = Path(tmp) / "callgrind.out"
        grind = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
        grind.append(f"--callgrind-out-file={out}")
        if what == "bare":
            argv = [*grind, str(cl.UVICORN), "bare_app:app", "--app-dir", str(cl.BENCH)]
            argv += ["--port", str(port), "--loop", "uvloop", "--http", "httptools"]
            argv += ["--no-access-log", "--log-level", "warning"]
            env, ready = None, "/bare"
        else:
            argv = [*grind, str(cl.SERVICE), "serve"]
            env = bl.serve_env(port, PREFIX, Path(tmp)) | {
                "POINTS_BOARD_PAGE_TTL_MS": "0",
                "PYTHONPATH": str(tree),
            }
            ready = "/health/ready"
        log = (Path(tmp) / "server.log").open("wb")
        server = subprocess.Popen(argv, cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 300
            while True:
                try:
                    urllib.request.urlopen(f"http://{cl.HOST}:{port}{ready}", timeout=5)
                    break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise cl.BenchError(f"the server did not start: {log.name}") from None
                    time.sleep(1)
            asyncio.run(_load(port, WARM_UP, paths[what]))
            _control(server.pid, "-i", "on")
            asyncio.run(_load(port, requests, paths[what]))
            _control(server.pid, "-i", "off")
            _control(server.pid, "-d")
            time.sleep(1)
            total = 0
            for dump in Path(tmp).glob("callgrind.out*"):
                if save is not None and dump.stat().st_size:
                    save.mkdir(parents=True, exist_ok=True)
                    shutil.copy(dump, save / f"{what}.{dump.name}")
                counts = [
                    int(line.split()[1])
                    for line in dump.read_text(errors="replace").splitlines()
                    if line.startswith(("summary:", "totals:"))
                ]
                total += max(counts, default=0)
        finally:
            server.terminate()
            server.wait()
            log.close()
    return total / requests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("rank", "top", "bare"))
    parser.add_argument("--tree", default=str(cl.ROOT), help="the checkout to serve from")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--keep", action="store_true", help="leave the board for next time")
    parser.add_argument("--save", type=Path, help="keep the callgrind output in this directory")
    args = parser.parse_args()
    client = redis.Redis(host=cl.HOST, port=cl.REDIS_PORT)
    if args.what != "bare" and not client.exists(FILLED):
        cl._step(f"filling a board of {MEMBERS:,} members under {PREFIX}")
        bl.fill(client, PREFIX, MEMBERS)
        client.set(FILLED, 1)
    try:
        per_request = measure(args.what, Path(args.tree).resolve(), args.requests, args.save)
    finally:
        if not args.keep:
            cl.clear_redis(f"redis://{cl.HOST}:{cl.REDIS_PORT}/0", PREFIX)
    print(f"{args.what} ({args.tree}): {per_request / 1000:,.0f}k instructions a request")
    return 0


if __name__ == "__main__":
    sys.exit(main())
