"""The board reads (a page, a standing with its window, a set of scores) against a model
of the board in Python, on boards written straight into a real Redis and a real Redis
Cluster: random members, ties, zero and negative scores, and scores past 2^53, which
Redis keeps as doubles and writes with 17 digits (a window once came back through cjson's
14 and was rounded)."""

import random
import string
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio.cluster import RedisCluster

from points_service.adapters.redis_boards import RedisBoards
from points_service.adapters.redis_client import connect
from points_service.adapters.script_pipeline import ScriptPipeline
from points_service.domain.boards import NOT_SHOWN, Board
from tests.conftest import REDIS_URL

ID_CHARS = string.ascii_letters + string.digits + "_.@:-"
BOARDS = 40  # random boards a run reads, each by every kind of read


@pytest.fixture(params=["single", "cluster"])
async def boards(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[RedisBoards, Any, list[str]]]:
    cluster = request.param == "cluster"
    url = request.getfixturevalue("redis_cluster_url") if cluster else REDIS_URL
    client = connect(url, cluster=cluster)
    scripts = ScriptPipeline(client)
    prefix = f"tread{uuid.uuid4().hex[:8]}"
    store = RedisBoards(client, prefix=prefix, scripts=scripts, cluster=cluster)
    written: list[str] = []
    yield store, client, written
    for key in written:
        await client.unlink(key)
    await scripts.close()
    await client.aclose()


def random_board(rng: random.Random) -> dict[str, int]:
    """Member -> score: few distinct scores (ties), or a wide spread, or huge ones."""
    size = rng.choice([1, 2, 3, 7, 30, 120])
    members = {"".join(rng.choices(ID_CHARS, k=rng.randint(1, 12))) for _ in range(size)}
    kind = rng.choice(["ties", "spread", "huge"])
    scores: dict[str, int] = {}
    for member in members:
        if kind == "ties":
            scores[member] = rng.choice([0, 1, 5, 5, 5, 9, -3])
        elif kind == "spread":
            scores[member] = rng.randint(-(10**6), 10**9)
        else:  # as Redis keeps them: doubles, exact or not past 2^53
            scores[member] = int(float(rng.choice([2**60, 10**17 + 1, 123456789012345678])))
    return scores


def model(scores: dict[str, int]) -> list[tuple[str, int]]:
    """The board's order: best first, ties by id (scores are stored negated)."""
    return sorted(scores.items(), key=lambda row: (-row[1], row[0]))


def higher(scores: dict[str, int], score: int) -> int:
    return sum(1 for s in scores.values() if s > score)


async def test_reads_match_a_model_of_the_board(
    boards: tuple[RedisBoards, Any, list[str]],
) -> None:
    store, client, written = boards
    one_node = not isinstance(client, RedisCluster)
    rng = random.Random(20261206)
    for n in range(BOARDS):
        board = Board("points", f"institution:r{n}", "all")
        scores = random_board(rng)
        key = store.key(board)
        written.append(key)
        await client.zadd(key, {m: -s for m, s in scores.items()})
        ordered = model(scores)
        size = len(ordered)

        for start, count in [(0, 100), (0, 1), (1, 3), (size - 1, 5), (size, 5), (size + 9, 2)]:
            window = await store.window(board, start, count)
            rows = ordered[start : start + count]
            assert window.members == size
            assert window.ids == [m for m, _ in rows], (n, start, count)
            assert window.scores == [s for _, s in rows], (n, start, count)
            expected_higher = higher(scores, rows[0][1]) if rows else 0
            assert window.higher_than_first == expected_higher, (n, start)
            assert window.ranks() == [higher(scores, s) + 1 for _, s in rows]

        for member in rng.sample(sorted(scores), min(3, size)):
            around = rng.choice([0, 1, 5])
            found = await store.around(board, member, around)
            assert found.standing == (scores[member], higher(scores, scores[member]))
            position = [m for m, _ in ordered].index(member)
            start = max(0, min(position - around, size - (2 * around + 1)))
            rows = ordered[start : start + 2 * around + 1]
            assert found.window is not None
            assert (found.window.start, found.window.ids) == (start, [m for m, _ in rows])
            assert found.window.scores == [s for _, s in rows], (n, member)
            # read in the same call on one node; on a cluster, by the caller apart
            assert found.window.display == ([NOT_SHOWN] * len(rows) if one_node else None)

        absent = "nobody-" + uuid.uuid4().hex[:6]
        assert (await store.around(board, absent, 2)).standing is None
        asked = [*rng.sample(sorted(scores), min(4, size)), absent]
        members, found_scores = await store.scores(board, asked)
        assert members == size
        assert found_scores == [
            (scores[m], higher(scores, scores[m])) if m in scores else None for m in asked
        ]
