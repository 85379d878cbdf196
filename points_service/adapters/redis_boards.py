"""Leaderboards in Redis sorted sets, and the profile fields they display.

One board is one sorted set, `<prefix>:lb{<metric>|<scope>|<period>}`: the whole identity
is the hash tag, so a board and its rebuild shadow (`...:new`) share a Redis Cluster slot
and no command touches two boards' slots at once.

Scores are stored negated. Redis orders equal scores by member, ascending; with negated
scores an ascending range is highest score first and, within a tie, informant ids in
ascending order, which is how the API lists ties. A member's standard competition rank
is one more than the number of members with a strictly higher score: ZCOUNT of the
negated scores strictly below its own.
"""

from collections.abc import Iterable, Mapping, Sequence
from importlib.resources import files
from typing import Any

import msgspec

from points_service.adapters.redis_client import RedisClient, queued
from points_service.adapters.redis_state import key_tag
from points_service.adapters.script_pipeline import ScriptPipeline
from points_service.domain.boards import Board, BoardWrite

_LUA = files("points_service.adapters") / "lua"
_encode = msgspec.json.encode

# Decrement; a member whose score comes back to nothing leaves the board (a reversal).
_TAKE_BACK = """
local score = tonumber(redis.call('ZINCRBY', KEYS[1], ARGV[1], ARGV[2]))
if score >= 0 then redis.call('ZREM', KEYS[1], ARGV[2]) return 0 end
return score
"""

DISPLAY_FIELDS = ("nm", "un", "pv", "ct", "co", "in")
DISPLAY_NAMES = ("name", "unit_name", "province", "city", "county", "institution_id")


def board_key(prefix: str, board: Board) -> str:
    return f"{prefix}:lb{{{board.metric}|{board.scope}|{board.period}}}"


def shadow_key(prefix: str, board: Board) -> str:
    return board_key(prefix, board) + ":new"


def board_of(prefix: str, key: str) -> Board | None:
    head = f"{prefix}:lb{{"
    if not key.startswith(head) or not key.endswith("}"):
        return None
    parts = key[len(head) : -1].split("|")
    if len(parts) != 3:
        return None
    return Board(*parts)


class RedisBoards:
    def __init__(
        self,
        client: RedisClient,
        *,
        prefix: str,
        scripts: ScriptPipeline | None = None,
        cluster: bool = False,
        writes_per_call: int = 500,
    ) -> None:
        self._redis = client
        self._prefix = prefix
        self._cluster = cluster
        self._per_call = 1 if cluster else writes_per_call
        # Shared with the credit path's apply calls: concurrent requests' board writes
        # and script calls travel in the same pipelines.
        self._scripts = scripts or ScriptPipeline(client)
        self._add = self._scripts.register(_LUA.joinpath("boards.lua").read_text())
        self._take_back = self._scripts.register(_TAKE_BACK)
        self._keys: dict[Board, str] = {}

    def key(self, board: Board) -> str:
        key = self._keys.get(board)
        if key is None:
            if len(self._keys) > 100_000:
                self._keys.clear()
            key = self._keys[board] = board_key(self._prefix, board)
        return key

    async def add(self, increments: Mapping[Board, Mapping[str, int]]) -> int:
        """Every board's increments in one round trip shared with concurrent requests: on
        one node, script calls of up to `writes_per_call` boards each; on a cluster, one
        call per board (one slot each). Returns the number of (board, member) writes."""
        boards = list(increments)
        step = self._per_call
        calls = []
        count = 0
        for start in range(0, len(boards), step):
            chunk = boards[start : start + step]
            writes = []
            for index, board in enumerate(chunk, start=1):
                for member, delta in increments[board].items():
                    writes.append((index, member, -delta))
            count += len(writes)
            calls.append((self._add, [self.key(b) for b in chunk], [_encode(writes)]))
        if calls:
            await self._scripts.call_many(calls)
        return count

    async def take_back(self, informant_id: str, writes: Sequence[BoardWrite]) -> None:
        await self._scripts.call_many(
            [(self._take_back, [self.key(w.board)], [w.delta, informant_id]) for w in writes]
        )

    async def remove(self, informant_id: str, boards: Iterable[Board]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for board in boards:
                await queued(pipe.zrem(self.key(board), informant_id))
            await pipe.execute()

    async def put(self, informant_id: str, scores: Mapping[Board, int]) -> None:
        """Set the member's score on each board (restoring a hidden informant)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for board, score in scores.items():
                if score > 0:
                    await queued(pipe.zadd(self.key(board), {informant_id: -score}))
            await pipe.execute()

    # --- reading -------------------------------------------------------------------

    async def size(self, board: Board) -> int:
        return int(await self._redis.zcard(self.key(board)))

    async def page(self, board: Board, start: int, count: int) -> list[tuple[str, int]]:
        """Members from position `start` (0 is the top), best first, ties by id."""
        rows: list[Any] = await self._redis.zrange(
            self.key(board), start, start + count - 1, withscores=True
        )
        return [(m.decode(), -int(s)) for m, s in rows]

    async def higher(self, board: Board, score: int) -> int:
        """How many members have a strictly higher score."""
        return int(await self._redis.zcount(self.key(board), "-inf", f"({-score}"))

    async def standing(self, board: Board, informant_id: str) -> tuple[int, int, int] | None:
        """(position, score, members with a strictly higher score), or None if absent."""
        key = self.key(board)
        async with self._redis.pipeline(transaction=False) as pipe:
            await queued(pipe.zrank(key, informant_id))
            await queued(pipe.zscore(key, informant_id))
            position, score = await pipe.execute()
        if position is None or score is None:
            return None
        higher = await self.higher(board, -int(score))
        return int(position), -int(score), higher

    async def scores(self, board: Board, ids: Sequence[str]) -> list[tuple[int, int] | None]:
        """(score, members strictly higher) for each id, None where absent."""
        key = self.key(board)
        found = await self._redis.zmscore(key, list(ids)) if ids else []
        async with self._redis.pipeline(transaction=False) as pipe:
            for score in found:
                if score is not None:
                    await queued(pipe.zcount(key, "-inf", f"({score}"))
            counts = iter(await pipe.execute())
        return [None if s is None else (-int(s), int(next(counts))) for s in found]

    async def display(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Display fields of each informant's profile, in one pipelined read."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for informant_id in ids:
                await queued(
                    pipe.hmget(f"{key_tag(self._prefix, informant_id)}:p", *DISPLAY_FIELDS)
                )
            rows = await pipe.execute()
        return {
            informant_id: {
                name: v.decode() for name, v in zip(DISPLAY_NAMES, row, strict=True) if v
            }
            for informant_id, row in zip(ids, rows, strict=True)
        }

    # --- rebuild -------------------------------------------------------------------

    async def fill_shadow(self, board: Board, scores: Iterable[tuple[str, int]]) -> int:
        key = shadow_key(self._prefix, board)
        mapping = {informant_id: -score for informant_id, score in scores if score > 0}
        if mapping:
            await self._redis.zadd(key, mapping)
        return len(mapping)

    async def clear_shadow(self, board: Board) -> None:
        await self._redis.unlink(shadow_key(self._prefix, board))

    async def swap_in(self, board: Board) -> None:
        """The shadow replaces the board in one step (RENAME within one slot); an empty
        shadow means an empty board."""
        shadow = shadow_key(self._prefix, board)
        if await self._redis.exists(shadow):
            await self._redis.rename(shadow, self.key(board))
        else:
            await self._redis.unlink(self.key(board))

    async def boards(self) -> list[Board]:
        """Every board in Redis (SCAN: for the rebuild, reconcile and closing)."""
        found = []
        async for raw in self._redis.scan_iter(match=f"{self._prefix}:lb{{*}}", count=1000):
            board = board_of(self._prefix, raw.decode())
            if board is not None:
                found.append(board)
        return found

    async def members(self, board: Board) -> dict[str, int]:
        return {
            m.decode(): -int(s)
            async for m, s in self._redis.zscan_iter(self.key(board), count=1000)
        }

    async def unlink(self, boards: Iterable[Board]) -> None:
        """Lazy deletion, one key per command (a cluster has them in different slots)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for board in boards:
                await queued(pipe.unlink(self.key(board)))
            await pipe.execute()

    async def try_lock(self, name: str, seconds: int) -> bool:
        return bool(await self._redis.set(f"{self._prefix}:lock:{name}", "1", nx=True, ex=seconds))
