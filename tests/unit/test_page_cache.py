"""The page cache's one build for many requests (http/hot.py), with builds the test
holds open: the HTTP side is tested against a real server in tests/http."""

import asyncio

import pytest

from points_service.http.hot import PageCache


class Builds:
    """Page builds that finish when the test says, each with its own body."""

    def __init__(self) -> None:
        self.started = 0
        self.release = asyncio.Event()
        self.fail = False

    async def make(self) -> bytes:
        self.started += 1
        number = self.started
        await self.release.wait()
        if self.fail:
            raise ValueError(f"build {number} failed")
        return f"page {number}".encode()


async def test_requests_that_miss_together_share_one_build() -> None:
    counted: list[str] = []
    pages = PageCache(ttl=60, built=counted.append)
    builds = Builds()
    waiting = [asyncio.create_task(pages.build("k", builds.make)) for _ in range(5)]
    await asyncio.sleep(0)
    assert builds.started == 1
    builds.release.set()
    assert await asyncio.gather(*waiting) == [b"page 1"] * 5
    assert counted == ["built"] + ["shared"] * 4
    assert pages.get("k") == b"page 1"
    # another key is built on its own
    assert await pages.build("other", builds.make) == b"page 2"


async def test_a_failed_build_leaves_each_waiting_request_to_build_its_own() -> None:
    counted: list[str] = []
    pages = PageCache(ttl=60, built=counted.append)
    builds = Builds()
    first = asyncio.create_task(pages.build("k", builds.make))
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(pages.build("k", builds.make)) for _ in range(3)]
    await asyncio.sleep(0)
    builds.fail = True
    builds.release.set()
    with pytest.raises(ValueError, match="build 1 failed"):
        await first
    # each waiter tried on its own, and failed with its own error
    failures = await asyncio.gather(*waiting, return_exceptions=True)
    assert sorted(str(f) for f in failures) == [f"build {n} failed" for n in (2, 3, 4)]
    assert counted == []
    assert pages.get("k") is None
    builds.fail = False
    assert await pages.build("k", builds.make) == b"page 5"
    assert counted == ["built"]


async def test_a_cancelled_build_or_waiter_does_not_strand_the_others() -> None:
    pages = PageCache(ttl=60)
    builds = Builds()
    first = asyncio.create_task(pages.build("k", builds.make))
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(pages.build("k", builds.make)) for _ in range(3)]
    await asyncio.sleep(0)
    waiting[0].cancel()  # a waiter goes away: the build and the other waiters go on
    first.cancel()  # the builder goes away: the waiters left build their own
    await asyncio.sleep(0)
    builds.release.set()
    assert [isinstance(r, asyncio.CancelledError) for r in await asyncio.gather(
        first, *waiting, return_exceptions=True
    )] == [True, True, False, False]  # fmt: skip
    assert {waiting[1].result(), waiting[2].result()} == {b"page 2", b"page 3"}
    assert pages.get("k") in (b"page 2", b"page 3")
