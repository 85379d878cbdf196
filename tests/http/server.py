"""The service as a real process, for tests that kill it or run it on its defaults."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from points_service.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def environ(settings: Settings, port: int) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"REDIS_URL", "DATABASE_URL"} and not k.startswith("POINTS_")
    }
    env.update(
        POINTS_PORT=str(port),
        POINTS_DATA_DIR=str(settings.data_dir),
        POINTS_RULES_DIR=str(settings.rules_dir),
        POINTS_LEADERBOARDS_DIR=str(settings.leaderboards_dir),
        POINTS_REDIS_PREFIX=settings.redis_prefix,
        POINTS_LOG_LEVEL="WARNING",
        POINTS_ACCESS_LOG="false",
        POINTS_BOARD_PAGE_TTL_MS=str(int(settings.board_page_ttl * 1000)),
        POINTS_REBUILD_ON_REDIS_LOSS=str(settings.rebuild_on_redis_loss).lower(),
    )
    if settings.api_keys:
        env["POINTS_API_KEYS"] = settings.api_keys
    if settings.api_keys_file:
        env["POINTS_API_KEYS_FILE"] = str(settings.api_keys_file)
    if settings.redis_url:
        env["REDIS_URL"] = settings.redis_url
    if settings.redis_cluster:
        env["POINTS_REDIS_CLUSTER"] = "true"
    if settings.database_url:
        env["DATABASE_URL"] = settings.database_url
    return env


class ServerProcess:
    def __init__(self, settings: Settings, log: Path, **extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._env = environ(settings, self.port) | extra
        self._log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> None:
        with self._log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "points_service.cli", "serve"],
                env=self._env,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self._log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/health/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not ready: {self._log.read_text()[-3000:]}")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
