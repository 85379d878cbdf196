"""Real components only: Redis at REDIS_URL, PostgreSQL at PG_ADMIN_URL, SQLite files.

Each run gets its own Redis key prefix and its own PostgreSQL database, so runs do not
collide; both are removed at the end.
"""

import asyncio
import contextlib
import json
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient
from prometheus_client import CollectorRegistry
from redis import Redis

from points_service.adapters.api_keys import digest, new_key
from points_service.adapters.redis_client import connect
from points_service.http.app import create_app
from points_service.settings import Settings
from tests.redis_cluster import RedisCluster

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/9")
PG_ADMIN_URL = os.environ.get("PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
RUN = uuid.uuid4().hex[:8]
# Every test talks as the admin (a key of the run's own); the scope tests make others.
ADMIN_KEY = new_key()
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
ADMIN_KEYS = json.dumps([{"name": "test-admin", "hash": digest(ADMIN_KEY), "scopes": ["admin"]}])
BACKENDS = ["sqlite", "postgres"]


def unique(label: str = "x") -> str:
    return f"{label}-{uuid.uuid4().hex[:12]}"


def with_rule_files(settings: Settings, directory: Path, **files: str) -> Settings:
    """`settings` on a copy of the shipped rules/ in `directory`, with `files` (name
    without .toml: its text) added or replaced."""
    rules = directory / "rules"
    shutil.copytree(ROOT / "rules", rules)
    for name, text in files.items():
        (rules / f"{name}.toml").write_text(text, encoding="utf-8")
    return replace(settings, rules_dir=rules)


def event_now(who: str, action: str, **fields: Any) -> dict[str, Any]:
    """An event of a second ago with a fresh id; `fields` add to it or replace."""
    return {
        "event_id": unique("e"),
        "informant_id": who,
        "action": action,
        "occurred_at": (datetime.now(UTC) - timedelta(seconds=1)).isoformat(),
        **fields,
    }


@pytest.fixture(scope="session")
def redis_prefix_root() -> Iterator[str]:
    root = f"pstest{RUN}"
    yield root
    client = Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{root}*", count=1000))
    for start in range(0, len(keys), 500):
        client.unlink(*keys[start : start + 500])
    client.close()


async def _admin(statement: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    name = f"points_test_{RUN}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def base_settings(redis_prefix_root: str, tmp_path: Path) -> Settings:
    return Settings(
        redis_url=REDIS_URL,
        redis_prefix=f"{redis_prefix_root}:{uuid.uuid4().hex[:8]}",
        data_dir=tmp_path,
        rules_dir=ROOT / "rules",
        leaderboards_dir=ROOT / "leaderboards",
        log_format="json",
        log_level="WARNING",
        access_log=False,
        board_page_ttl=0,  # tests read what they have just written
        # Each test has a Redis prefix of its own over a shared database: a rebuild of
        # every board from that database at each start is not what they test (the Redis
        # loss tests turn it on).
        rebuild_on_redis_loss=False,
        api_keys=ADMIN_KEYS,
    )


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    cluster = RedisCluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        cluster.start()
        yield cluster.url
    finally:
        cluster.stop()


def _settings(kind: str, request: pytest.FixtureRequest, base: Settings) -> Settings:
    if kind == "postgres":
        return replace(base, database_url=request.getfixturevalue("postgres_url"))
    if kind == "cluster":  # the SQLite ledger, and a Redis Cluster of three masters
        url = request.getfixturevalue("redis_cluster_url")
        return replace(base, redis_url=url, redis_cluster=True)
    return base


@pytest.fixture(params=BACKENDS)
def settings(request: pytest.FixtureRequest, base_settings: Settings) -> Settings:
    return _settings(request.param, request, base_settings)


@pytest.fixture(params=[*BACKENDS, "cluster"])
def settings_with_cluster(request: pytest.FixtureRequest, base_settings: Settings) -> Settings:
    """For the credit and leaderboard suites, which also run on a Redis Cluster."""
    return _settings(request.param, request, base_settings)


def redis_client(settings: Settings) -> Any:
    """A client of the Redis the settings name (a cluster client for a cluster)."""
    return connect(settings.redis_url or REDIS_URL, cluster=settings.redis_cluster)


@contextlib.asynccontextmanager
async def own_database(settings: Settings) -> AsyncIterator[Settings]:
    if settings.database_url is None:
        yield settings
        return
    name = f"points_test_own_{uuid.uuid4().hex[:10]}"
    await _admin(f'CREATE DATABASE "{name}"')
    try:
        yield replace(settings, database_url=f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}")
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def isolated_settings(settings: Settings) -> AsyncIterator[Settings]:
    """`settings` with a database of the test's own (SQLite already is): for tests that
    compare every board with every event, such as reconcile."""
    async with own_database(settings) as own:
        yield own


@pytest.fixture
async def isolated_settings_with_cluster(
    settings_with_cluster: Settings,
) -> AsyncIterator[Settings]:
    """The same, over SQLite, PostgreSQL and a Redis Cluster."""
    async with own_database(settings_with_cluster) as own:
        yield own


def api_client(app: Any, **options: Any) -> AsyncTestClient:  # type: ignore[type-arg]
    """A test client that sends the admin key."""
    client: AsyncTestClient = AsyncTestClient(app, **options)  # type: ignore[type-arg]
    client.headers.update(AUTH)
    return client


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    app = create_app(settings, CollectorRegistry())
    async with api_client(app, timeout=60) as c:
        yield c


# The fault-injection tests' figures (tests/http/fault_load.py), a line or so a test,
# printed after the run as a section of pytest's summary.
FAULT_FIGURES: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FAULT_FIGURES:
        terminalreporter.section("fault figures")
        for line in FAULT_FIGURES:
            terminalreporter.write_line(line)
