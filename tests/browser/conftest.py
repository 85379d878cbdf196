"""Browser tests: the service as a real process over a seeded Ningxia history, and Debian's
Chromium driven through Playwright's sync API.

Playwright's sync API marks its own event loop as the thread's running loop between its
calls, for as long as it is started. While it is, `asyncio.run`, pytest-asyncio tests and
async fixtures in the same process fail ("cannot be called from a running event loop").
So the browser and the service are package-scoped (started once for every test in
tests/browser, stopped before pytest moves on to the rest of the suite), tests here are
plain `def` tests, and they talk to the API with httpx's sync client.
"""

import inspect
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright
from redis import Redis

from points_service.adapters.api_keys import digest, new_key
from points_service.settings import Settings
from tests.browser.seed import Seed, generate
from tests.http.server import ServerProcess
from tests.http.test_import import cli

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/9")
CHROMIUM = "/usr/bin/chromium"  # Debian's (make tools); never `playwright install`
CHROMIUM_ARGS = [
    "--no-sandbox",  # root in a container: no user namespaces for the sandbox
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
SCREENSHOTS = ROOT / "docs" / "screenshots"
TIMEOUT_MS = 15_000  # a page or a locator that takes longer is a failure, not a wait


@dataclass(frozen=True)
class Console:
    """A running service over the seeded history, and the keys to sign in with."""

    url: str
    admin_key: str  # scope `admin`
    read_key: str  # scope `read`
    inst_a_key: str  # scope `institution:inst-a`
    inst_b_key: str  # scope `institution:inst-b`
    seed: Seed
    settings: Settings
    log: Path  # the server's stdout and stderr
    timings: dict[str, float] = field(default_factory=dict)  # seconds per setup step

    @property
    def keys(self) -> dict[str, str]:
        return {
            "admin": self.admin_key,
            "read": self.read_key,
            "inst-a": self.inst_a_key,
            "inst-b": self.inst_b_key,
        }

    def api(self, key: str | None = None) -> httpx.Client:
        """A sync client of the API with a key (the admin's by default)."""
        headers = {"Authorization": f"Bearer {key or self.admin_key}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def _keys() -> tuple[dict[str, str], str]:
    scopes = {
        "admin": ["admin"],
        "read": ["read"],
        "inst-a": ["institution:inst-a"],
        "inst-b": ["institution:inst-b"],
    }
    keys = {who: new_key() for who in scopes}
    entries = [
        {"name": f"browser-{who}", "hash": digest(keys[who]), "scopes": scopes[who]}
        for who in scopes
    ]
    return keys, json.dumps(entries)


def _run(settings: Settings, *args: str) -> str:
    done = cli(settings, *args)
    assert done.returncode == 0, f"points-service {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout.strip()


def _drop_prefix(prefix: str) -> None:
    client = Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for start in range(0, len(keys), 500):
            client.unlink(*keys[start : start + 500])
    finally:
        client.close()


@contextmanager
def running_console(
    data_dir: Path, seed: Seed | None = None, prefix: str | None = None, **env: str
) -> Iterator[Console]:
    """Seed a fresh data dir and Redis prefix through the CLI, start the service, create
    the two institutions; stop the service and drop the prefix's keys afterwards.

    The history goes in before the service starts: profiles first (an event counts on
    the boards its informant's profile names when it is credited), then the events. The
    CLI writes the SQLite ledger and Redis (state and boards) itself, so the boards are
    right whether the service starts before or after; before it, nothing races the
    service's own minute loops. `env` adds variables to the server's environment."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    seed = seed or generate()
    timings["generate"] = time.perf_counter() - started
    keys, entries = _keys()
    settings = Settings(
        redis_url=REDIS_URL,
        redis_prefix=prefix or f"psbrowser{uuid.uuid4().hex[:10]}",
        data_dir=data_dir,
        rules_dir=ROOT / "rules",
        leaderboards_dir=ROOT / "leaderboards",
        log_format="json",
        log_level="WARNING",
        access_log=False,
        board_page_ttl=0,  # pages show what a test has just done
        # The CLI has just written every state and board into this prefix: the start's
        # rebuild from the ledger (no marker yet) would only redo it, in the background
        # after /health/ready, and leave a reconcile outcome that depends on timing.
        rebuild_on_redis_loss=False,
        api_keys=entries,
    )
    try:
        step = time.perf_counter()
        _run(settings, "import-informants", str(seed.write_profiles(data_dir / "informants.jsonl")))
        timings["import-informants"] = time.perf_counter() - step
        step = time.perf_counter()
        summary = _run(settings, "import", str(seed.write_events(data_dir / "events.jsonl")))
        assert f"credited {len(seed.events):,} " in summary, summary
        assert summary.endswith("duplicates 0, rejected 0"), summary
        timings["import"] = time.perf_counter() - step

        step = time.perf_counter()
        server = ServerProcess(settings, data_dir / "server.log", **env)
        server.start()
        timings["start"] = time.perf_counter() - step
        try:
            console = Console(
                url=server.url,
                admin_key=keys["admin"],
                read_key=keys["read"],
                inst_a_key=keys["inst-a"],
                inst_b_key=keys["inst-b"],
                seed=seed,
                settings=settings,
                log=data_dir / "server.log",
                timings=timings,
            )
            with console.api() as http:
                for institution_id, body in seed.institutions.items():
                    r = http.put(f"/v1/institutions/{institution_id}", json=body)
                    assert r.status_code in (200, 201), r.text
            timings["total"] = time.perf_counter() - started
            yield console
        finally:
            server.stop()
    finally:
        _drop_prefix(settings.redis_prefix)


@pytest.fixture(scope="package")
def console(tmp_path_factory: pytest.TempPathFactory, redis_prefix_root: str) -> Iterator[Console]:
    """One seeded service for every browser test (package scope: see the docstring), on a
    Redis prefix under the run's (tests/conftest.py removes that too at the end)."""
    prefix = f"{redis_prefix_root}:browser{uuid.uuid4().hex[:8]}"
    with running_console(tmp_path_factory.mktemp("console"), prefix=prefix) as running:
        yield running


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """One headless Chromium for every browser test."""
    launched = playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
    )
    yield launched
    launched.close()


def new_context(browser: Browser, *, phone: bool = False, **options: Any) -> BrowserContext:
    """A fresh context (no cookies, no storage): desktop 1280x900, or a phone's 390x844."""
    settings: dict[str, Any] = {
        "viewport": PHONE if phone else DESKTOP,
        "accept_downloads": True,
        "locale": "zh-CN",
        "timezone_id": "Asia/Shanghai",
    }
    if phone:
        settings |= {"is_mobile": True, "has_touch": True, "device_scale_factor": 2}
    context = browser.new_context(**(settings | options))
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    return context


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    made = new_context(browser)
    yield made
    made.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    """A desktop page (1280x900, downloads accepted) in a context of the test's own."""
    return context.new_page()


@pytest.fixture
def phone_page(browser: Browser) -> Iterator[Page]:
    """A phone-sized page (390x844, touch) in a context of the test's own."""
    made = new_context(browser, phone=True)
    yield made.new_page()
    made.close()


@pytest.fixture
def contexts(browser: Browser) -> Iterator[Callable[..., BrowserContext]]:
    """Make more contexts in one test (two staff at once, a phone beside a desktop):
    `contexts(phone=True)`; all are closed after the test."""
    made: list[BrowserContext] = []

    def make(**options: Any) -> BrowserContext:
        made.append(new_context(browser, **options))
        return made[-1]

    yield make
    for c in made:
        c.close()


def screenshot(
    page: Page, name: str, directory: Path = SCREENSHOTS, *, full_page: bool = True
) -> Path:
    """A PNG of the page (the whole page, or what the viewport shows) as
    docs/screenshots/{name}.png."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


@pytest.fixture(autouse=True)
def _sync_tests_only(request: pytest.FixtureRequest) -> None:
    if inspect.iscoroutinefunction(request.function):
        pytest.fail("browser tests are plain def tests: Playwright's sync API owns the loop")
