"""Leaderboards in Redis sorted sets, and the profile fields they display.

One board is one sorted set, `<prefix>:lb{<metric>|<scope>|<period>}`: the whole identity
is the hash tag, so a board and its rebuild shadow (`...:new`) share a Redis Cluster slot
and no command touches two boards' slots at once.

Every board written is named in the registry (`<prefix>:lbreg`, a set) by the write that
could create it, in the same round trip: closing, rebuild and reconcile read the registry
instead of a SCAN, which walks the whole keyspace (every informant's keys, millions).

Scores are stored negated. Redis orders equal scores by member, ascending; with negated
scores an ascending range is highest score first and, within a tie, informant ids in
ascending order, which is how the API lists ties. A member's standard competition rank
is one more than the number of members with a strictly higher score: ZCOUNT of the
negated scores strictly below its own.
"""

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from importlib.resources import files
from operator import neg
from typing import Any

import msgspec

from points_service.adapters.redis_client import RedisClient, queued
from points_service.adapters.redis_state import VIEW_FIELDS, key_tag
from points_service.adapters.script_pipeline import Script, ScriptPipeline
from points_service.domain.boards import Around, Board, BoardWrite, Shown, Window

_LUA = files("points_service.adapters") / "lua"
_encode = msgspec.json.encode

# Decrement; a member whose score comes back to nothing leaves the board (a reversal).
_TAKE_BACK = """
local score = tonumber(redis.call('ZINCRBY', KEYS[1], ARGV[1], ARGV[2]))
if score >= 0 then redis.call('ZREM', KEYS[1], ARGV[2]) return 0 end
return score
"""

# Name boards in the registry (one key; ARGV at most REGISTER_AT names).
_REGISTER = "return redis.call('SADD', KEYS[1], unpack(ARGV))"
REGISTER_AT = 1000

DISPLAY_FIELDS = ("nm", "un", "pv", "ct", "co", "in")
DISPLAY_NAMES = VIEW_FIELDS  # the profile's view (redis_state.profile_view) holds these
assert Shown.__struct_fields__ == DISPLAY_NAMES, "a view decodes as Shown, an HMGET in order"


def _lua_strings(names: Sequence[str]) -> str:
    assert all(n.isidentifier() for n in names), "plain names, nothing to escape"
    return ", ".join(f"'{n}'" for n in names)


def _board_read_script() -> str:
    """board_read.lua with the profile fields it reads for a display, and the names it
    gives them, written in: constant, so no call carries them as arguments."""
    text = _LUA.joinpath("board_read.lua").read_text()
    assert "{--FIELDS--}" in text, "board_read.lua's marker"
    assert "{--NAMES--}" in text, "board_read.lua's marker"
    return text.replace("{--FIELDS--}", "{" + _lua_strings(DISPLAY_FIELDS) + "}").replace(
        "{--NAMES--}", "{" + _lua_strings(DISPLAY_NAMES) + "}"
    )


def _display(row: Sequence[bytes | None]) -> Shown:
    """One profile's display fields from its HMGET of DISPLAY_FIELDS (absent ones None)."""
    return Shown(*(value.decode() if value else None for value in row))


_decode_display = msgspec.json.Decoder(list[Shown]).decode
_decode_ints = msgspec.json.Decoder(list[int]).decode


def _scores(text: bytes | str) -> list[int]:
    """Board scores (negated, as stored) from one JSON array of them, in C. Redis writes
    a whole-number score as an integer ("-1500"), past 10^17 as a double ("-1.5e+17")."""
    try:
        negated = _decode_ints(text)
    except msgspec.ValidationError:
        negated = [int(s) for s in msgspec.json.decode(text)]
    return list(map(neg, negated))


def _lines(text: bytes, values: int) -> tuple[list[str], list[int]] | None:
    """The ids and scores of a window sent as one text, a line per member and per score
    (board_read.lua); None when it does not hold `values` lines: a member with a newline,
    which the service never writes, and which is then read as rows."""
    lines = text.decode().split("\n") if values else []
    if len(lines) != values:
        return None
    return lines[::2], _scores("[" + ",".join(lines[1::2]) + "]")


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
        self._replace = self._scripts.register(_LUA.joinpath("board_replace.lua").read_text())
        self._register = self._scripts.register(_REGISTER)
        self._keys: dict[Board, str] = {}
        # Boards this process has seen named in the registry (a bounded cache: a board
        # missing from it is only named again).
        self._registered: set[Board] = set()
        self._read = self._scripts.register(_board_read_script())

    def key(self, board: Board) -> str:
        key = self._keys.get(board)
        if key is None:
            if len(self._keys) > 100_000:
                self._keys.clear()
            key = self._keys[board] = board_key(self._prefix, board)
        return key

    @property
    def ordered(self) -> bool:
        return self._scripts.ordered

    def add(self, increments: Mapping[Board, Mapping[str, int]]) -> "asyncio.Future[Any]":
        """Send every board's increments, in one round trip shared with concurrent
        requests: on one node, script calls of up to `writes_per_call` boards each, which
        ride along with the next calls this process makes (ScriptPipeline.call_later; a
        read of this class sends them first); on a cluster, one call per board (one slot
        each), now. The future is done once Redis has applied them."""
        boards = list(increments)
        step = self._per_call
        new, calls = self._registering(boards)
        for start in range(0, len(boards), step):
            chunk = boards[start : start + step]
            args: list[Any] = []  # see boards.lua
            for board in chunk:
                members = increments[board]
                writes: list[Any] = [None] * (2 * len(members))
                writes[::2] = members  # member, negated delta, member, ... (no loop in Python)
                writes[1::2] = [-delta for delta in members.values()]
                args.append(len(members))
                args += writes
            calls.append((self._add, [self.key(b) for b in chunk], args))
        return self._naming(self._scripts.call_later(calls), new)

    def _registering(
        self, boards: Iterable[Board]
    ) -> tuple[list[Board], list[tuple[Script, list[str], list[Any]]]]:
        """The boards this process has not seen named in the registry, and the calls that
        name them: they go first in the round trip that writes the boards, and Redis runs
        a pipeline's calls in order (on one node), so a board does not exist unnamed. A
        name whose board is gone is harmless: closing and rebuild drop it."""
        new = [b for b in boards if b not in self._registered]
        if not new:
            return new, []
        if len(self._registered) > 100_000:
            self._registered.clear()
        self._registered.update(new)  # taken back if the round trip fails (_named)
        return new, self._naming_calls(new)

    def _naming_calls(self, boards: Sequence[Board]) -> list[tuple[Script, list[str], list[Any]]]:
        """The script calls that add `boards` to the registry (REGISTER_AT a call)."""
        names = ["|".join(b) for b in boards]
        registry = [self._registry()]
        return [
            (self._register, registry, names[i : i + REGISTER_AT])
            for i in range(0, len(names), REGISTER_AT)
        ]

    def _naming(self, done: "asyncio.Future[Any]", new: list[Board]) -> "asyncio.Future[Any]":
        """`done`, the round trip that names `new`: if it fails, they are named next time."""
        if new:
            done.add_done_callback(partial(self._named, new))
        return done

    def _named(self, boards: list[Board], done: "asyncio.Future[Any]") -> None:
        if done.cancelled() or done.exception() is not None:
            self._registered.difference_update(boards)

    async def take_back(self, informant_id: str, writes: Sequence[BoardWrite]) -> None:
        await self._scripts.call_many(
            [(self._take_back, [self.key(w.board)], [w.delta, informant_id]) for w in writes]
        )

    async def remove(self, informant_id: str, boards: Iterable[Board]) -> None:
        self._scripts.flush()  # increments still waiting go first (add)
        async with self._redis.pipeline(transaction=False) as pipe:
            for board in boards:
                await queued(pipe.zrem(self.key(board), informant_id))
            await pipe.execute()

    async def put(self, informant_id: str, scores: Mapping[Board, int]) -> None:
        """Set the member's score on each board (restoring a hidden informant)."""
        new, naming = self._registering(b for b, score in scores.items() if score > 0)
        if naming:  # named first (see _registering); this also sends waiting increments
            await self._naming(self._scripts.call_many(naming), new)
        self._scripts.flush()  # increments still waiting go first (add)
        async with self._redis.pipeline(transaction=False) as pipe:
            for board, score in scores.items():
                if score > 0:
                    await queued(pipe.zadd(self.key(board), {informant_id: -score}))
            await pipe.execute()

    # --- reading -------------------------------------------------------------------

    @staticmethod
    def _columns(flat: Sequence[bytes]) -> tuple[list[str], list[int]]:
        """Members and scores of a ZRANGE WITHSCORES (scores negated, as stored), each
        column converted in one C-level pass: a page's hundred rows went through Python
        a row at a time, at a fifth of the page's cost (bench/RESULTS.md)."""
        return list(map(bytes.decode, flat[::2])), _scores(b"[" + b",".join(flat[1::2]) + b"]")

    async def window(self, board: Board, start: int, count: int) -> Window:
        """Members from position `start` (0 is the top), best first, ties by id."""
        key = [self.key(board)]
        members, joined, first, size = await self._scripts.call(
            self._read, key, ["page", start, count]
        )
        columns = _lines(joined, size)
        if columns is None:
            members, flat, first = await self._scripts.call(self._read, key, ["rows", start, count])
            columns = self._columns(flat)
        return Window(int(members), start, *columns, int(first))

    async def around(self, board: Board, informant_id: str, around: int) -> Around:
        """The member's standing, and the window of `around` members each side (padded
        at the edges to 2 * around + 1). On one node the window's display fields come
        in the same call."""
        key = [self.key(board)]
        args: list[Any] = ["around", informant_id, around]
        if not self._cluster:
            args.append(f"{self._prefix}:{{")
        reply = await self._scripts.call(self._read, key, args)
        if len(reply) == 2:
            return Around(reply[0], None, None)
        # Lua numbers come back as integers; the score is a string (a double in Redis)
        if len(reply) == 8:  # one node: the window as a page's text, the fields as JSON
            members, _position, score, higher, start, text, first, profiles = reply
            shown = _decode_display(profiles)
            columns = _lines(text, 2 * len(shown))
            if columns is not None:
                window = Window(members, start, *columns, first, shown)
                return Around(members, (-int(float(score)), higher), window)
            # as rows, and the display fields read apart (by the caller)
            reply = await self._scripts.call(self._read, key, args[:3])
            if len(reply) == 2:  # gone from the board in between
                return Around(reply[0], None, None)
        members, _position, score, higher, start, rows, first = reply
        window = Window(members, start, *self._columns(rows), first)
        return Around(members, (-int(float(score)), higher), window)

    async def scores(
        self, board: Board, ids: Sequence[str]
    ) -> tuple[int, list[tuple[int, int] | None]]:
        """The board's size, and (score, members strictly higher) for each id."""
        members, found = await self._scripts.call(self._read, [self.key(board)], ["ranks", *ids])
        return int(members), [
            None if score is None else (-int(float(score)), int(higher)) for score, higher in found
        ]

    async def display(self, ids: Sequence[str]) -> dict[str, Shown]:
        """Display fields of each informant's profile: one script call on one node, one
        pipelined read on a cluster."""
        if not ids:
            return {}
        tags = [key_tag(self._prefix, i) for i in ids]
        if self._cluster:
            async with self._redis.pipeline(transaction=False) as pipe:
                for tag in tags:
                    await queued(pipe.hmget(f"{tag}:p", *DISPLAY_FIELDS))
                rows = await pipe.execute()
            return {i: _display(row) for i, row in zip(ids, rows, strict=True)}
        keys = [f"{tag}:v" for tag in tags] + [f"{tag}:p" for tag in tags]
        shown = await self._scripts.call(self._read, keys, ["display"])
        return dict(zip(ids, _decode_display(shown), strict=True))

    # --- rebuild -------------------------------------------------------------------

    async def replace(self, boards: Sequence[tuple[Board, Mapping[str, int]]]) -> int:
        """Each board becomes exactly these members and scores, by one script call per
        board (built in its shadow key, then renamed over it, in the board's slot): readers
        see the old board or the new one. No members: the board is removed. Returns the
        members written."""
        new, calls = self._registering(b for b, _ in boards)
        written = 0
        for board, members in boards:
            negated = {m: -score for m, score in members.items() if score > 0}
            written += len(negated)
            keys = [shadow_key(self._prefix, board), self.key(board)]
            calls.append((self._replace, keys, [_encode(negated)]))
        if calls:
            await self._naming(self._scripts.call_many(calls), new)
        return written

    async def boards(self, *, scan: bool = False) -> list[Board]:
        """Every board in Redis, as the registry names them (a name may outlive its
        board); `scan`: found by a SCAN of the whole keyspace instead, which also finds
        boards written behind the service's back."""
        if not scan:
            return await self.registered()
        self._scripts.flush()
        found = []
        async for raw in self._redis.scan_iter(match=f"{self._prefix}:lb{{*}}", count=1000):
            board = board_of(self._prefix, raw.decode())
            if board is not None:
                found.append(board)
        return found

    async def members(self, board: Board) -> dict[str, int]:
        self._scripts.flush()  # increments still waiting go first (add)
        return {
            m.decode(): -int(s)
            async for m, s in self._redis.zscan_iter(self.key(board), count=1000)
        }

    async def unlink(self, boards: Iterable[Board]) -> None:
        """Lazy deletion, one key per command (a cluster has them in different slots)."""
        self._scripts.flush()  # increments still waiting go first (add)
        async with self._redis.pipeline(transaction=False) as pipe:
            for board in boards:
                await queued(pipe.unlink(self.key(board)))
            await pipe.execute()

    async def try_lock(self, name: str, seconds: int) -> bool:
        return bool(await self._redis.set(f"{self._prefix}:lock:{name}", "1", nx=True, ex=seconds))

    async def release(self, name: str) -> None:
        """Give up a lock of `try_lock` before its time is up."""
        await self._redis.delete(f"{self._prefix}:lock:{name}")

    async def keep_note(self, name: str, value: bytes) -> None:
        await self._redis.set(f"{self._prefix}:note:{name}", value)

    async def read_note(self, name: str) -> bytes | None:
        found = await self._redis.get(f"{self._prefix}:note:{name}")
        return found if isinstance(found, bytes) else None

    # --- the registry of boards (closing, rebuild and reconcile read it) -----------

    def _registry(self) -> str:
        return f"{self._prefix}:lbreg"

    async def register(self, boards: Iterable[Board]) -> None:
        """Name boards in the registry whatever this process has seen (adopting boards
        found by a SCAN)."""
        new = list(boards)
        await self._scripts.call_many(self._naming_calls(new))
        self._registered.update(new)

    async def unregister(self, boards: Iterable[Board]) -> None:
        boards = list(boards)
        self._registered.difference_update(boards)
        names = ["|".join(b) for b in boards]
        for start in range(0, len(names), REGISTER_AT):
            await self._redis.srem(self._registry(), *names[start : start + REGISTER_AT])

    async def registered(self) -> list[Board]:
        self._scripts.flush()  # writes still waiting name their boards first (add)
        found = []
        async for raw in self._redis.sscan_iter(self._registry(), count=1000):
            parts = raw.decode().split("|")
            if len(parts) == 3:
                found.append(Board(*parts))
        return found
