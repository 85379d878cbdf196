"""The lottery's Redis state: a draw in three atomic steps, none touching two slots.

A draw's stock and budget are global to the draw, the cost and a points prize are the
informant's: they live in two slots (`{<informant>}` and `{<draw>}`) and no script may
touch both. So a draw is

1. `draw_hold.lua` in the informant's slot: the cost spent (never below zero, within
   the daily limit), the draw id's record `held`;
2. `draw_take.lua` in the draw's slot: the next seq and the prize the pick gives, stock
   and budget taken, all at once; or a refusal (sold out, budget exhausted), after which
   `draw_refund.lua` gives the held cost back;
3. `draw_settle.lua` in the informant's slot: a points prize credited, the record `done`
   with the outcome.

Each step is idempotent on the draw id, so a retry of a draw cut short anywhere finishes
it with the same outcome. Only step 2 changes global state, and it is never taken back:
the seq it hands out is the order the outcomes are replayed in (domain/draws.py).
"""

from collections.abc import Awaitable, Callable
from importlib.resources import files

import msgspec

from points_service.adapters.redis_client import RedisClient
from points_service.adapters.redis_state import RedisState, StateLost, key_tag
from points_service.adapters.script_pipeline import ScriptPipeline
from points_service.domain.draws import (
    BUDGET_EXHAUSTED,
    SOLD_OUT,
    DailyLimitReached,
    Draw,
    Hold,
    Stock,
    Taken,
    stock_table,
)
from points_service.domain.state import Overdraw

_LUA = files("points_service.adapters") / "lua"
_hold = msgspec.json.Decoder(Hold)
_taken = msgspec.json.Decoder(Taken)
_NO_STOCK = 3
_REFUSED = {4: SOLD_OUT, 5: BUDGET_EXHAUSTED}

# Reads what the ledger recorded of a draw, to put its stock hash back.
StockLoader = Callable[[Draw], Awaitable[Stock]]


def draw_tag(prefix: str, draw: str) -> str:
    # Draw ids are rule ids (no braces), so the tag is the draw's own.
    return f"{prefix}:draw:{{{draw}}}"


class RedisDraws:
    def __init__(
        self,
        client: RedisClient,
        state: RedisState,
        scripts: ScriptPipeline,
        *,
        prefix: str,
        record_ttl_seconds: int,
        day_ttl_seconds: int,
        load_stock: StockLoader,
    ) -> None:
        self._redis = client
        self._state = state
        self._scripts = scripts
        self._prefix = prefix
        self._record_ttl = record_ttl_seconds
        self._day_ttl = day_ttl_seconds
        self._load_stock = load_stock
        self._hold = scripts.register(_LUA.joinpath("draw_hold.lua").read_text())
        self._take = scripts.register(_LUA.joinpath("draw_take.lua").read_text())
        self._settle = scripts.register(_LUA.joinpath("draw_settle.lua").read_text())
        self._refund = scripts.register(_LUA.joinpath("draw_refund.lua").read_text())
        self._put_stock = scripts.register(_LUA.joinpath("draw_stock.lua").read_text())

    def _keys(self, informant_id: str, draw: str, draw_id: str, day: int) -> list[str]:
        tag = key_tag(self._prefix, informant_id)
        return [f"{tag}:s", f"{tag}:w:{draw_id}", f"{tag}:dd:{draw}:{day}"]

    async def hold(
        self, informant_id: str, draw: Draw, draw_id: str, body_hash: str, day: int
    ) -> tuple[Hold, bool] | Overdraw | DailyLimitReached:
        """The held (or known) record, and whether it was there already."""
        flag, body = await self._state.call_healed(
            informant_id,
            self._hold,
            self._keys(informant_id, draw.id, draw_id, day),
            [draw.cost, body_hash, draw.daily_limit, self._record_ttl, self._day_ttl, day],
        )
        if flag == 2:
            return Overdraw(int(body))
        if flag == 4:
            return DailyLimitReached(int(body))
        return _hold.decode(body), flag == 1

    async def held(self, informant_id: str, draw_id: str) -> Hold | None:
        raw = await self._redis.get(f"{key_tag(self._prefix, informant_id)}:w:{draw_id}")
        return _hold.decode(raw) if raw is not None else None

    async def take(self, draw: Draw, draw_id: str, pick: int) -> Taken | str:
        """The outcome (new or known), or the refusal's code."""
        tag = draw_tag(self._prefix, draw.id)
        keys = [f"{tag}:stock", f"{tag}:outcomes"]
        table = msgspec.json.encode({"b": draw.budget, "ps": stock_table(draw)})
        args = [draw_id, str(pick), table, self._record_ttl]
        flag, body = await self._scripts.call(self._take, keys, args)
        if flag == _NO_STOCK:
            stock = await self._load_stock(draw)
            fields: list[str | int] = ["n", stock.seq, "sp", stock.spent]
            for prize, used in sorted(stock.used.items()):
                fields += [f"u:{prize}", used]
            await self._scripts.call(self._put_stock, [keys[0]], fields)
            flag, body = await self._scripts.call(self._take, keys, args)
            if flag == _NO_STOCK:
                raise StateLost(f"draw {draw.id!r}: Redis lost its stock again")
        if flag in _REFUSED:
            return _REFUSED[flag]
        return _taken.decode(body)

    async def settle(self, informant_id: str, draw_id: str, taken: Taken, points: int) -> Hold:
        tag = key_tag(self._prefix, informant_id)
        flag, body = await self._scripts.call(
            self._settle,
            [f"{tag}:s", f"{tag}:w:{draw_id}"],
            [msgspec.json.encode(taken), points, self._record_ttl],
        )
        if flag == 0:
            raise StateLost(f"draw id {draw_id!r}: Redis lost its record")
        return _hold.decode(body)

    async def refund(
        self, informant_id: str, draw: str, draw_id: str, body_hash: str, day: int
    ) -> bool:
        keys = self._keys(informant_id, draw, draw_id, day)
        return bool(await self._scripts.call(self._refund, keys, [body_hash]))
