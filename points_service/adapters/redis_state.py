"""Per-informant state in Redis, changed only by Lua scripts registered once.

Every key of one informant carries the hash tag `{<informant id>}` so that one script
call touches one Redis Cluster slot. Informant ids cannot contain braces (the event
schema forbids them), so the tag cannot be moved by an id.
"""

from collections.abc import Mapping, Sequence
from importlib.resources import files
from typing import Any

import msgspec

from points_service.adapters.redis_client import RedisClient, queued
from points_service.adapters.script_pipeline import ScriptPipeline
from points_service.domain.boards import Placement
from points_service.domain.engine import Decision, EventPlan, undo_of
from points_service.domain.profiles import Profile
from points_service.domain.state import Applied, Clawback, Overdraw, PointsSnapshot, Spend

_LUA = files("points_service.adapters") / "lua"
_decision = msgspec.json.Decoder(Decision)


_spend = msgspec.json.Decoder(Spend)
_clawback = msgspec.json.Decoder(Clawback)


def key_tag(prefix: str, informant_id: str) -> str:
    return f"{prefix}:{{{informant_id}}}"


def encode_apply_call(
    prefix: str, day_ttl: int, idem_ttl: int, groups: Sequence[tuple[str, Sequence[EventPlan]]]
) -> tuple[list[str], bytes]:
    """KEYS and ARGV of one apply.lua call (the benchmark replays it in redis-benchmark)."""
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
    return keys, msgspec.json.encode({"t": day_ttl, "i": idem_ttl, "g": placed})


# The informant's profile hash (`{tag}:p`): placement and status (pv ct co in st) for the
# credit path, display fields (nm un) for the leaderboards. Written by set_profile, read
# by apply.lua and RedisBoards.display.
def placement_of(values: Sequence[bytes | None]) -> tuple[Placement, bool]:
    """(placement, listed) from HMGET pv ct co in st."""
    province, city, county, institution, status = (v.decode() if v else None for v in values)
    return Placement(province, city, county, institution), status in (None, "active")


_SET_PROFILE = """
redis.call('DEL', KEYS[1])
if #ARGV > 0 then redis.call('HSET', KEYS[1], unpack(ARGV)) end
return #ARGV / 2
"""


def _int(value: Any) -> int:
    return int(value) if value is not None else 0


class RedisState:
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

    def _tag(self, informant_id: str) -> str:
        return key_tag(self._prefix, informant_id)

    def encode_call(
        self, groups: Sequence[tuple[str, Sequence[EventPlan]]]
    ) -> tuple[list[str], bytes]:
        return encode_apply_call(self._prefix, self._day_ttl, self._idem_ttl, groups)

    @staticmethod
    def _results(raw: Sequence[Any]) -> list[Applied]:
        plans, profile = raw
        placement, listed = placement_of(profile)
        return [
            Applied(_decision.decode(body), flag == 1, placement, listed) for flag, body in plans
        ]

    async def apply(self, informant_id: str, plans: Sequence[EventPlan]) -> list[Applied]:
        keys, arg = self.encode_call([(informant_id, plans)])
        [group] = await self._scripts.call(self._apply, keys, [arg])
        return self._results(group)

    async def apply_groups(
        self, groups: Mapping[str, Sequence[EventPlan]]
    ) -> dict[str, list[Applied]]:
        """Every group in one pipelined round trip: on one Redis node, a few script calls
        of many informants each; on a cluster, one call per informant (one slot each)."""
        items = list(groups.items())
        size = 1 if self._cluster else self._groups_per_call
        calls = []
        for start in range(0, len(items), size):
            keys, arg = self.encode_call(items[start : start + size])
            calls.append((self._apply, keys, [arg]))
        raw = [group for result in await self._scripts.call_many(calls) for group in result]
        return {
            informant_id: self._results(result)
            for (informant_id, _), result in zip(items, raw, strict=True)
        }

    async def redeem(
        self, informant_id: str, redemption_id: str, points: int, body_hash: str
    ) -> tuple[Spend, bool] | Overdraw:
        tag = self._tag(informant_id)
        flag, body = await self._scripts.call(
            self._redeem,
            [f"{tag}:s", f"{tag}:r:{redemption_id}"],
            [points, body_hash, self._idem_ttl],
        )
        if flag == 2:
            return Overdraw(int(body))
        return _spend.decode(body), flag == 1

    async def reverse(self, informant_id: str, event_id: str, points: int) -> tuple[Clawback, bool]:
        tag = self._tag(informant_id)
        flag, body = await self._scripts.call(
            self._reverse, [f"{tag}:s", f"{tag}:v:{event_id}"], [points, self._idem_ttl]
        )
        return _clawback.decode(body), flag == 1

    async def snapshot(self, informant_id: str, day: int) -> PointsSnapshot:
        tag = self._tag(informant_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            await queued(pipe.hgetall(f"{tag}:s"))
            await queued(pipe.hgetall(f"{tag}:d:{day}"))
            state, today = await pipe.execute()
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
        values = {
            "pv": profile.province,
            "ct": profile.city,
            "co": profile.county,
            "in": profile.institution_id,
            "st": profile.status,
            "nm": profile.name,
            "un": profile.unit_name,
        }
        fields = [x for k, v in values.items() if v is not None for x in (k, v)]
        # One script, so the credit path never reads a half-written profile.
        await self._scripts.call(self._set_profile, [f"{self._tag(informant_id)}:p"], fields)

    async def balance(self, informant_id: str) -> int:
        return _int(await self._redis.hget(f"{self._tag(informant_id)}:s", "b"))

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
