"""Profile views: the display fields a board page shows, one JSON text per informant
beside the profile hash, read with one MGET; a hash without a view (written before views
existed, or rewritten by a restore) is read field by field instead. Real Redis."""

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from points_service.adapters.redis_boards import RedisBoards
from points_service.adapters.redis_client import connect
from points_service.adapters.redis_state import RedisState
from points_service.adapters.script_pipeline import ScriptPipeline
from points_service.domain.boards import Board, Shown
from points_service.domain.engine import InformantState
from points_service.domain.profiles import Profile
from points_service.domain.recovery import Restored
from tests.conftest import REDIS_URL

BOARD = Board("points", "all", "all")


@pytest.fixture
async def stores() -> AsyncIterator[tuple[RedisState, RedisBoards, Any, str]]:
    prefix = f"tview{uuid.uuid4().hex[:8]}"
    client = connect(REDIS_URL)
    scripts = ScriptPipeline(client)
    state = RedisState(
        client, prefix=prefix, day_ttl_seconds=60, idem_ttl_seconds=60, scripts=scripts
    )
    boards = RedisBoards(client, prefix=prefix, scripts=scripts)
    yield state, boards, client, prefix
    async for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        await client.unlink(key)
    await scripts.close()
    await client.aclose()


async def test_views_and_hashes_show_the_same_fields(
    stores: tuple[RedisState, RedisBoards, Any, str],
) -> None:
    state, boards, client, prefix = stores
    people = {
        "a": Profile(name="甲", unit_name="兴庆区科协", province="640000", county="640104"),
        "b": Profile(name='乙 "quoted"', institution_id="inst-1"),
        "c": Profile(),
    }
    for who, profile in people.items():
        await state.set_profile(who, profile)
    await boards.add({BOARD: {"a": 3, "b": 2, "c": 1}})
    expected = {
        "a": Shown(name="甲", unit_name="兴庆区科协", province="640000", county="640104"),
        "b": Shown(name='乙 "quoted"', institution_id="inst-1"),
        "c": Shown(),
    }
    around = await boards.around(BOARD, "b", 1)
    assert around.window is not None
    assert (around.window.ids, around.window.scores) == (["a", "b", "c"], [3, 2, 1])
    assert around.window.display == [expected["a"], expected["b"], expected["c"]]
    assert await boards.display(["c", "a", "b", "nobody"]) == expected | {"nobody": Shown()}

    # Without their views (as before views existed): the same, from the hashes.
    assert await client.unlink(*(f"{prefix}:{{{w}}}:v" for w in people)) == 3
    again = await boards.around(BOARD, "b", 1)
    assert again.window is not None and again.window.display == around.window.display
    assert await boards.display(["c", "a", "b"]) == expected

    # A new profile writes its view again, and it is what is shown.
    await state.set_profile("a", Profile(name="甲二"))
    assert await client.exists(f"{prefix}:{{a}}:v") == 1
    assert (await boards.display(["a"]))["a"] == Shown(name="甲二")

    # A forced restore rewrites the hash from the ledger's profile and drops the view
    # (a key the script is given, beside the hash, in the same slot): the restored
    # fields are what is shown, and the day hashes after it in KEYS are written.
    day = 740_000
    kept = InformantState(balance=7, earned=7, days={day: {"n:login": 1}})
    restored = Restored(kept, Profile(name="甲三", county="640105"), True, range(day, day + 1))
    assert await state.restore({"a": restored}, force=True) == ["a"]
    assert await client.exists(f"{prefix}:{{a}}:v") == 0
    assert (await boards.display(["a"]))["a"] == Shown(name="甲三", county="640105")
    assert await client.hgetall(f"{prefix}:{{a}}:d:{day}") == {b"n:login": b"1"}
    assert await client.hget(f"{prefix}:{{a}}:s", "b") == b"7"
