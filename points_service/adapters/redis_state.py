"""Per-informant state in Redis, changed only by Lua scripts registered once.

Every key of one informant carries the hash tag `{<informant id>}` so that one script
call touches one Redis Cluster slot. Informant ids cannot contain braces (the event
schema forbids them), so the tag cannot be moved by an id.
"""

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from importlib.resources import files
from typing import Any

import msgspec

from points_service.adapters.redis_client import RedisClient, queued
from points_service.adapters.script_pipeline import Script, ScriptPipeline
from points_service.domain.boards import Placement
from points_service.domain.engine import Decision, EventPlan, undo_of
from points_service.domain.profiles import Profile
from points_service.domain.recovery import Restored
from points_service.domain.state import (
    THROTTLED,
    Applied,
    Clawback,
    Overdraw,
    PointsSnapshot,
    RateWindow,
    Spend,
    StoredState,
    Throttled,
)

_LUA = files("points_service.adapters") / "lua"
_decision = msgspec.json.Decoder(Decision)
_NO_STATE = 3  # redeem.lua / reverse.lua: the state hash is missing
_THROTTLED = 2  # apply.lua: the informant is over the rate window's limit

# Reads the ledger for informants whose state Redis does not hold (see `RedisState`).
Loader = Callable[[Sequence[str]], Awaitable[Mapping[str, Restored]]]


_spend = msgspec.json.Decoder(Spend)
_clawback = msgspec.json.Decoder(Clawback)


def key_tag(prefix: str, informant_id: str) -> str:
    return f"{prefix}:{{{informant_id}}}"


def encode_apply_call(
    prefix: str,
    day_ttl: int,
    idem_ttl: int,
    groups: Sequence[tuple[str, Sequence[EventPlan]]],
    *,
    checked: bool = False,
    marker: str | None = None,
    rate: RateWindow | None = None,
) -> tuple[list[str], bytes]:
    """KEYS and ARGV of one apply.lua call (the benchmark replays it in redis-benchmark).
    `checked`: refuse a missing state, unless `marker` (a key) exists (see apply.lua);
    `rate`: refuse an informant's new events past the window's limit."""
    keys: list[str] = []
    index: dict[str, int] = {}

    def slot(key: str) -> int:
        if key not in index:
            keys.append(key)
            index[key] = len(keys)  # Lua's KEYS is 1-based
        return index[key]

    placed = []
    for informant_id, plans in groups:
        tag = key_tag(prefix, informant_id)
        placed.append(
            {
                "s": slot(f"{tag}:s"),
                "x": slot(f"{tag}:x"),
                "p": slot(f"{tag}:p"),
                "ev": [
                    msgspec.structs.replace(
                        p, ik=slot(f"{tag}:i:{p.e}"), dk=slot(f"{tag}:d:{p.day}")
                    )
                    for p in plans
                ],
            }
        )
    call: dict[str, Any] = {"t": day_ttl, "i": idem_ttl, "g": placed}
    if rate is not None:
        call["rl"] = [rate.limit, rate.number]
    if checked:
        call["m"] = 1
        if marker is not None:
            call["mk"] = slot(marker)
    return keys, msgspec.json.encode(call)


# The informant's profile hash (`{tag}:p`): placement and status (pv ct co in st) for the
# credit path, display fields (nm un) for the leaderboards. Written by set_profile, read
# by apply.lua and RedisBoards.display.
def profile_fields(profile: Profile) -> list[str]:
    values = {
        "pv": profile.province,
        "ct": profile.city,
        "co": profile.county,
        "in": profile.institution_id,
        "st": profile.status,
        "nm": profile.name,
        "un": profile.unit_name,
    }
    return [x for k, v in values.items() if v is not None for x in (k, v)]


# Beside it, the same display fields as one JSON text (`{tag}:v`, the view): a page of a
# board reads the views of all its entries with one MGET. Written with the hash by
# set_profile; removed wherever the hash is rewritten otherwise (restore.lua). A hash
# with no view (written before views existed) is read field by field instead.
VIEW_FIELDS = ("name", "unit_name", "province", "city", "county", "institution_id")


def profile_view(profile: Profile) -> bytes:
    """The view: the display fields that are set, under their API names."""
    shown = {name: getattr(profile, name) for name in VIEW_FIELDS}
    return msgspec.json.encode({k: v for k, v in shown.items() if v is not None})


def placement_of(values: Sequence[bytes | None]) -> tuple[Placement, bool]:
    """(placement, listed) from HMGET pv ct co in st."""
    province, city, county, institution, status = (v.decode() if v else None for v in values)
    return Placement(province, city, county, institution), status in (None, "active")


# KEYS: the profile hash, its view (one slot). ARGV: the view, then field, value...
_SET_PROFILE = """
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], ARGV[1])
if #ARGV > 1 then redis.call('HSET', KEYS[1], unpack(ARGV, 2)) end
return (#ARGV - 1) / 2
"""


def _int(value: Any) -> int:
    return int(value) if value is not None else 0


class StateLost(ConnectionError):
    """Redis lost an informant's state again while it was being put back (a 503)."""


class RedisState:
    """The informants' state. With a loader (`heal_from`), a state that is missing is
    never taken for a new informant's: the scripts refuse it, the loader reads what the
    ledger kept, `restore.lua` puts it back (an empty one for an informant the ledger
    does not know) and the call is made again. So a Redis that lost its data, flushed
    or restarted empty, heals one informant at a time as they come back, and every
    answer stays what the ledger supports."""

    def __init__(
        self,
        client: RedisClient,
        *,
        prefix: str,
        day_ttl_seconds: int,
        idem_ttl_seconds: int,
        cluster: bool = False,
        groups_per_call: int = 100,
        scripts: ScriptPipeline | None = None,
    ) -> None:
        self._cluster = cluster
        self._groups_per_call = groups_per_call
        self._redis = client
        self._prefix = prefix
        self._day_ttl = day_ttl_seconds
        self._idem_ttl = idem_ttl_seconds
        self._scripts = scripts or ScriptPipeline(client)
        self._apply = self._scripts.register(_LUA.joinpath("apply.lua").read_text())
        self._redeem = self._scripts.register(_LUA.joinpath("redeem.lua").read_text())
        self._reverse = self._scripts.register(_LUA.joinpath("reverse.lua").read_text())
        self._undo = self._scripts.register(_LUA.joinpath("undo.lua").read_text())
        self._set_profile = self._scripts.register(_SET_PROFILE)
        self._restore = self._scripts.register(_LUA.joinpath("restore.lua").read_text())
        self._loader: Loader | None = None
        self._on_restored: Callable[[int, int], None] | None = None
        self._marker_key = f"{prefix}:marker"
        # On one Redis node the scripts read the marker themselves: a missing state is a
        # new informant's while it is there. A cluster keeps it in another slot than any
        # informant, so there every missing state is looked up in the ledger.
        self._marker = None if cluster else self._marker_key
        self._waiting: dict[tuple[str, bool], asyncio.Future[None]] = {}
        self._heal_due = False
        self._healing: set[asyncio.Task[None]] = set()

    def heal_from(
        self, loader: Loader, on_restored: Callable[[int, int], None] | None = None
    ) -> None:
        """Put missing states back through `loader`; `on_restored(known, new)` counts
        the informants restored (here or by `restore`) with history from the ledger,
        and the new ones."""
        self._loader = loader
        self._on_restored = on_restored

    async def _heal(self, ids: Sequence[str], *, known_only: bool = False) -> None:
        """Put these states back. The informants of every request that finds a state
        missing in the same turn of the event loop are read from the ledger together
        (one read, one pipelined round of restores): after a loss, or when many new
        informants arrive at once, the ledger sees one query for a crowd."""
        loop = asyncio.get_running_loop()
        waits = []
        for informant_id in ids:
            key = (informant_id, known_only)
            future = self._waiting.get(key)
            if future is None:
                future = self._waiting[key] = loop.create_future()
            waits.append(future)
        if not self._heal_due:
            self._heal_due = True
            loop.call_soon(self._start_heal)
        await asyncio.gather(*waits)

    def _start_heal(self) -> None:
        batch, self._waiting, self._heal_due = self._waiting, {}, False
        task = asyncio.get_running_loop().create_task(self._run_heal(batch))
        self._healing.add(task)
        task.add_done_callback(self._healing.discard)

    async def _run_heal(self, batch: dict[tuple[str, bool], "asyncio.Future[None]"]) -> None:
        assert self._loader is not None
        try:
            restored = await self._loader(list(dict.fromkeys(i for i, _ in batch)))
            # Reads put back only the informants the ledger knows (see snapshot).
            wanted = {
                i: r
                for i, r in restored.items()
                if (i, False) in batch or r.history or r.profile is not None
            }
            await self.restore(wanted)
        except BaseException as exc:
            for future in batch.values():
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for future in batch.values():
            if not future.done():
                future.set_result(None)

    async def restore(self, restored: Mapping[str, Restored], *, force: bool = False) -> list[str]:
        """Write each informant's state (skipping those that have one, unless `force`);
        returns the ids written."""
        ids = list(restored)
        calls = [self._restore_call(i, restored[i], force) for i in ids]
        flags = await self._scripts.call_many(calls) if calls else []
        written = [i for i, flag in zip(ids, flags, strict=True) if flag == 1]
        if self._on_restored is not None and written:
            known = sum(1 for i in written if restored[i].history)
            self._on_restored(known, len(written) - known)
        return written

    def _restore_call(
        self, informant_id: str, restored: Restored, force: bool
    ) -> tuple[Script, list[str], list[bytes]]:
        tag = self._tag(informant_id)
        state = restored.state
        keys = [
            f"{tag}:s", f"{tag}:x", f"{tag}:p", f"{tag}:v",
            *(f"{tag}:d:{d}" for d in restored.days),
        ]  # fmt: skip
        days = [
            [5 + n, [x for k, v in sorted(state.days[day].items()) for x in (k, v)]]
            for n, day in enumerate(restored.days)
            if state.days.get(day)
        ]
        body: dict[str, Any] = {
            "b": state.balance,
            "e": state.earned,
            "sk": state.streak,
            "sd": state.streak_day,
            "x": sorted(state.ever),
            "d": days,
            "t": self._day_ttl,
            "f": force,
        }
        if restored.profile is not None:
            body["p"] = profile_fields(restored.profile)
        return self._restore, keys, [msgspec.json.encode(body)]

    async def _new_informant(self) -> bool:
        """Whether a state that is missing is a new informant's (read paths)."""
        return self._marker is not None and await self.marked()

    async def stored(self, ids: Sequence[str]) -> dict[str, StoredState | None]:
        """Balance, earned and streak as Redis holds them (None: no state)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for i in ids:
                await queued(pipe.hmget(f"{self._tag(i)}:s", ["b", "e", "sk", "sd"]))
            rows = await pipe.execute()
        return {
            i: None if all(v is None for v in row) else StoredState(*(_int(v) for v in row))
            for i, row in zip(ids, rows, strict=True)
        }

    def _tag(self, informant_id: str) -> str:
        return key_tag(self._prefix, informant_id)

    def encode_call(
        self,
        groups: Sequence[tuple[str, Sequence[EventPlan]]],
        rate: RateWindow | None = None,
    ) -> tuple[list[str], bytes]:
        return encode_apply_call(
            self._prefix,
            self._day_ttl,
            self._idem_ttl,
            groups,
            checked=self._loader is not None,
            marker=self._marker,
            rate=rate,
        )

    @staticmethod
    def _results(raw: Sequence[Any] | int) -> list[Applied | Throttled] | None:
        if raw == 0:
            return None  # no state (see apply.lua)
        assert not isinstance(raw, int)
        plans, profile = raw
        placement, listed = placement_of(profile)
        return [
            THROTTLED
            if flag == _THROTTLED
            else Applied(_decision.decode(body), flag == 1, placement, listed)
            for flag, body in plans
        ]

    async def apply(
        self, informant_id: str, plans: Sequence[EventPlan], rate: RateWindow | None = None
    ) -> list[Applied | Throttled]:
        return (await self.apply_groups({informant_id: plans}, rate))[informant_id]

    async def apply_groups(
        self, groups: Mapping[str, Sequence[EventPlan]], rate: RateWindow | None = None
    ) -> dict[str, list[Applied | Throttled]]:
        """Every group in one pipelined round trip: on one Redis node, a few script calls
        of many informants each; on a cluster, one call per informant (one slot each).
        Informants without a state are put back from the ledger and applied again."""
        found = await self._apply_groups(groups, rate)
        missing = [i for i, r in found.items() if r is None]
        if missing:
            await self._heal(missing)
            found |= await self._apply_groups({i: groups[i] for i in missing}, rate)
        applied: dict[str, list[Applied | Throttled]] = {}
        for informant_id, result in found.items():
            if result is None:
                raise StateLost(f"informant {informant_id!r}: Redis lost the state again")
            applied[informant_id] = result
        return applied

    async def _apply_groups(
        self, groups: Mapping[str, Sequence[EventPlan]], rate: RateWindow | None
    ) -> dict[str, list[Applied | Throttled] | None]:
        items = list(groups.items())
        size = 1 if self._cluster else self._groups_per_call
        calls = []
        for start in range(0, len(items), size):
            keys, arg = self.encode_call(items[start : start + size], rate)
            calls.append((self._apply, keys, [arg]))
        raw = [group for result in await self._scripts.call_many(calls) for group in result]
        return {
            informant_id: self._results(result)
            for (informant_id, _), result in zip(items, raw, strict=True)
        }

    async def call_healed(
        self, informant_id: str, script: Script, keys: list[str], args: list[Any]
    ) -> Any:
        """A script that answers {3, ''} when the state is missing: heal, call again
        (its last ARGV, '1', asks it to refuse a missing state when a loader heals)."""
        if self._loader is not None:
            args = [*args, "1"]
        flag, body = await self._scripts.call(script, keys, args)
        if flag == _NO_STATE:
            await self._heal([informant_id])
            flag, body = await self._scripts.call(script, keys, args)
            if flag == _NO_STATE:
                raise StateLost(f"informant {informant_id!r}: Redis lost the state again")
        return flag, body

    async def redeem(
        self, informant_id: str, redemption_id: str, points: int, body_hash: str
    ) -> tuple[Spend, bool] | Overdraw:
        tag = self._tag(informant_id)
        flag, body = await self.call_healed(
            informant_id,
            self._redeem,
            [f"{tag}:s", f"{tag}:r:{redemption_id}"],
            [points, body_hash, self._idem_ttl],
        )
        if flag == 2:
            return Overdraw(int(body))
        return _spend.decode(body), flag == 1

    async def reverse(self, informant_id: str, event_id: str, points: int) -> tuple[Clawback, bool]:
        tag = self._tag(informant_id)
        flag, body = await self.call_healed(
            informant_id,
            self._reverse,
            [f"{tag}:s", f"{tag}:v:{event_id}"],
            [points, self._idem_ttl],
        )
        return _clawback.decode(body), flag == 1

    async def snapshot(self, informant_id: str, day: int) -> PointsSnapshot:
        tag = self._tag(informant_id)

        async def read() -> list[dict[bytes, bytes]]:
            async with self._redis.pipeline(transaction=False) as pipe:
                await queued(pipe.hgetall(f"{tag}:s"))
                await queued(pipe.hgetall(f"{tag}:d:{day}"))
                return list(await pipe.execute())

        state, today = await read()
        if not state and self._loader is not None and not await self._new_informant():
            # Read-only: an informant the ledger does not know gets no keys.
            await self._heal([informant_id], known_only=True)
            state, today = await read()
        return PointsSnapshot(
            balance=_int(state.get(b"b")),
            earned=_int(state.get(b"e")),
            streak=_int(state.get(b"sk")),
            streak_day=_int(state.get(b"sd")),
            today={k.decode(): int(v) for k, v in today.items() if not k.startswith(b"x:")},
        )

    async def undo(self, informant_id: str, plan: EventPlan, decision: Decision) -> bool:
        tag = self._tag(informant_id)
        keys = [f"{tag}:s", f"{tag}:x", f"{tag}:i:{plan.e}", f"{tag}:d:{plan.day}"]
        undone = await self._scripts.call(
            self._undo, keys, [msgspec.json.encode(undo_of(plan, decision))]
        )
        return bool(undone)

    async def set_profile(self, informant_id: str, profile: Profile) -> None:
        """Replace the informant's profile hash: what apply.lua reads and what the
        leaderboards display."""
        tag = self._tag(informant_id)
        args = [profile_view(profile), *profile_fields(profile)]
        # One script, so the credit path never reads a half-written profile.
        await self._scripts.call(self._set_profile, [f"{tag}:p", f"{tag}:v"], args)

    async def balance(self, informant_id: str) -> int:
        key = f"{self._tag(informant_id)}:s"
        held = await self._redis.hget(key, "b")
        if held is None and self._loader is not None and not await self._new_informant():
            await self._heal([informant_id], known_only=True)
            held = await self._redis.hget(key, "b")
        return _int(held)

    async def marked(self) -> bool:
        """Whether the marker key is there: every informant the ledger knows has its
        state in this Redis (`mark`), and a missing state is a new informant's."""
        return bool(await self._redis.exists(self._marker_key))

    async def mark(self, stamp: str) -> None:
        await self._redis.set(self._marker_key, stamp)

    async def announce(self, name: str) -> int:
        """Bump a counter every process of the service watches; returns its new value."""
        return int(await self._redis.incr(f"{self._prefix}:announce:{name}"))

    async def announced(self, name: str) -> int:
        return _int(await self._redis.get(f"{self._prefix}:announce:{name}"))

    async def ping(self) -> bool:
        return bool(await self._redis.ping())

    async def append_only_ok(self) -> bool:
        """Whether the server's last append-only-file write (and rewrite) succeeded."""
        info = await self._redis.info("persistence")
        return bool(
            info.get("aof_last_write_status", "ok") == "ok"
            and info.get("aof_last_bgrewrite_status", "ok") == "ok"
        )

    async def close(self) -> None:
        await self._scripts.close()
