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
from typing import Any

from redis.asyncio import Redis

from points_service.adapters.redis_state import key_tag
from points_service.domain.boards import Board, BoardWrite

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
    def __init__(self, client: "Redis", *, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix
        self._take_back = client.register_script(_TAKE_BACK)

    def key(self, board: Board) -> str:
        return board_key(self._prefix, board)

    async def add(self, writes: Iterable[tuple[str, BoardWrite]]) -> int:
        """ZINCRBY every (informant, write), pipelined: one round trip on one node."""
        count = 0
        async with self._redis.pipeline(transaction=False) as pipe:
            for informant_id, w in writes:
                pipe.zincrby(self.key(w.board), -w.delta, informant_id)
                count += 1
            if count:
                await pipe.execute()
        return count

    async def take_back(self, informant_id: str, writes: Sequence[BoardWrite]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for w in writes:
                await self._take_back(
                    keys=[self.key(w.board)], args=[w.delta, informant_id], client=pipe
                )
            await pipe.execute()

    async def remove(self, informant_id: str, boards: Iterable[Board]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for board in boards:
                pipe.zrem(self.key(board), informant_id)
            await pipe.execute()

    async def put(self, informant_id: str, scores: Mapping[Board, int]) -> None:
        """Set the member's score on each board (restoring a hidden informant)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for board, score in scores.items():
                if score > 0:
                    pipe.zadd(self.key(board), {informant_id: -score})
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
            pipe.zrank(key, informant_id)
            pipe.zscore(key, informant_id)
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
                    pipe.zcount(key, "-inf", f"({score}")
            counts = iter(await pipe.execute())
        return [None if s is None else (-int(s), int(next(counts))) for s in found]

    async def display(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Display fields of each informant's profile, in one pipelined read."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for informant_id in ids:
                pipe.hmget(f"{key_tag(self._prefix, informant_id)}:p", *DISPLAY_FIELDS)
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
                pipe.unlink(self.key(board))
            await pipe.execute()
