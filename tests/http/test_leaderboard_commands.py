"""`points-service leaderboards reconcile|rebuild` as an operator runs them: separate
processes beside a running service, on the same Redis and database."""

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from redis import Redis
from redis.cluster import RedisCluster

from points_service.adapters.redis_boards import board_key
from points_service.domain.boards import Board
from points_service.settings import Settings
from tests.conftest import AUTH, REDIS_URL, unique
from tests.http.server import ServerProcess, environ, free_port
from tests.http.test_events_api import body


@pytest.fixture
def settings(settings_with_cluster: Settings) -> Settings:
    """These commands also run on a Redis Cluster."""
    return settings_with_cluster


def command(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "points_service.cli", "leaderboards", *args],
        env=environ(settings, free_port()),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def connect_sync(settings: Settings) -> Redis | RedisCluster:
    url = settings.redis_url or REDIS_URL
    return RedisCluster.from_url(url) if settings.redis_cluster else Redis.from_url(url)


def test_reconcile_finds_drift_and_rebuild_repairs_it(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    settings = isolated_settings
    server = ServerProcess(settings, tmp_path / "server.log")
    server.start()
    inst = unique("inst")
    try:
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as http:
            for n in range(6):
                who = f"{inst}-{n % 3}"
                if n < 3:
                    r = http.put(f"/v1/informants/{who}", json={"institution_id": inst})
                    assert r.status_code == 201, r.text
                r = http.post("/v1/events", json=body(who, "share", content_id=f"c{n}"))
                assert r.status_code == 200, r.text
            done = command(settings, "reconcile")
            assert (done.returncode, done.stderr.strip()) == (0, "no differences"), done.stderr

            board = Board("shares", f"institution:{inst}", "all")
            redis = connect_sync(settings)
            redis.zincrby(board_key(settings.redis_prefix, board), -4, f"{inst}-1")
            done = command(settings, "reconcile", "--metric", "shares", "--period", "all")
            assert done.returncode == 1
            assert f"shares institution:{inst} all {inst}-1: redis 6, ledger 2" in done.stdout

            done = command(settings, "rebuild", "--profiles")
            assert done.returncode == 0, done.stderr
            assert "rebuilt" in done.stderr and "profiles copied into Redis: 3" in done.stderr
            top = http.get(
                "/v1/leaderboards/shares", params={"scope": f"institution:{inst}", "period": "all"}
            ).json()
            assert [(e["informant_id"], e["score"]) for e in top["entries"]] == [
                (f"{inst}-0", 2),
                (f"{inst}-1", 2),
                (f"{inst}-2", 2),
            ]
            assert command(settings, "reconcile").returncode == 0
            closed = command(settings, "close")  # today's periods are all open
            assert (closed.returncode, closed.stdout.strip()) == (
                0,
                "closed 0 boards; unlinked 0 past their retention",
            ), closed.stderr
            bad = command(settings, "reconcile", "--metric", "karma")
            assert bad.returncode == 2 and "--metric" in bad.stderr

            # The commands find boards by the registry that every board write names its
            # board in; a board written behind the service's back only --scan finds.
            ghost = Board("shares", f"institution:{inst}-ghost", "all")
            redis.zadd(board_key(settings.redis_prefix, ghost), {"x": -4})
            assert command(settings, "reconcile").returncode == 0
            done = command(settings, "reconcile", "--scan")
            assert done.returncode == 1, done.stderr
            assert f"shares institution:{inst}-ghost all x: redis 4, ledger -" in done.stdout
            assert command(settings, "rebuild").returncode == 0
            assert redis.exists(board_key(settings.redis_prefix, ghost))
            done = command(settings, "rebuild", "--scan")
            assert done.returncode == 0, done.stderr
            assert "removed 1 boards the ledger no longer supports" in done.stderr
            assert not redis.exists(board_key(settings.redis_prefix, ghost))
            assert command(settings, "reconcile", "--scan").returncode == 0
            redis.close()
    finally:
        server.stop()
