"""The points lottery (积分抽奖): draws defined in `rules/draws.toml`, the outcome
function, and the replay that checks every recorded outcome against a revealed seed.

The randomness is committed before it is used. Each draw has a server seed of 32 random
bytes; `sha256(seed)` is published (with the sha256 of the draw's definition) as soon as
the seed exists, before the window opens, and the seed itself only once the window has
closed. A draw request's outcome is then fixed by public inputs:

    pick  = int.from_bytes(HMAC-SHA256(key=seed, msg=draw_id as UTF-8), "big") % total_weight
    prize = the first prize, in the file's order, whose running sum of weights exceeds pick

and by the stock: a picked prize whose stock is gone, or whose value no longer fits the
remaining budget, becomes the draw's "no prize" outcome (`fallback`). Stock and budget
depend on every earlier outcome, so outcomes are replayed in the order the service gave
them (`seq`, 1, 2, 3, ... without gaps, assigned atomically with the stock). A draw that
finds nothing left to win is refused before it is given a `seq`: `sold_out` when every
prize's stock is gone, `budget_exhausted` when stock is left but none of it fits.
"""

import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Literal

import msgspec

from points_service.domain.rules import (
    AwareDateTime,
    Points,
    Positive,
    RuleId,
    RuleProblem,
    RuleSetInvalid,
    decode_document,
)

SOLD_OUT = "sold_out"
BUDGET_EXHAUSTED = "budget_exhausted"
MAX_TOTAL_WEIGHT = 2**40  # picks stay exact as Lua numbers (doubles) in the stock script
Weight = Annotated[int, msgspec.Meta(ge=0, le=1_000_000_000)]


class Prize(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """One outcome. `weight / total weight` is its chance of being picked; `quantity` its
    stock; `value` what it takes of the draw's budget (a points prize: its points)."""

    id: RuleId
    kind: Literal["points", "item", "none"]
    weight: Weight
    quantity: Positive | None = None
    points: Positive | None = None
    value: Points | None = None
    title: str = ""
    title_zh: str = ""

    @property
    def cost_to_budget(self) -> int:
        if self.kind == "points":
            return self.points or 0
        return self.value or 0


class Draw(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    id: RuleId
    title: str = ""
    title_zh: str = ""
    cost: Positive  # points spent on each draw
    daily_limit: Positive  # draws per informant per programme day
    budget: Positive  # points of prize value the whole draw may give out
    starts: AwareDateTime
    ends: AwareDateTime
    prizes: Annotated[list[Prize], msgspec.Meta(min_length=2)]

    @property
    def total_weight(self) -> int:
        return sum(p.weight for p in self.prizes)

    @property
    def no_prize(self) -> Prize:
        return next(p for p in self.prizes if p.kind == "none")

    def prize(self, prize_id: str) -> Prize | None:
        return next((p for p in self.prizes if p.id == prize_id), None)

    def status(self, moment: datetime) -> Literal["upcoming", "open", "closed"]:
        if moment < self.starts:
            return "upcoming"
        return "open" if moment < self.ends else "closed"


class DrawFile(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    description: str = ""
    draws: list[Draw] = msgspec.field(default_factory=list)


@dataclass(frozen=True, slots=True)
class DrawSet:
    draws: Mapping[str, Draw] = field(default_factory=dict)
    version: str = "none"

    def get(self, draw: str) -> Draw | None:
        return self.draws.get(draw)


def _check_prize(index: int, prize: Prize) -> list[str]:
    where = f"prizes[{index}]"
    wrong: list[str] = []
    if prize.kind == "none":
        if prize.quantity is not None or prize.points is not None or prize.value is not None:
            wrong.append(f"{where}: the no-prize outcome has no quantity, points or value")
        return wrong
    if prize.quantity is None:
        wrong.append(f"{where}.quantity: a {prize.kind} prize needs a quantity (its stock)")
    if prize.kind == "points":
        if prize.points is None:
            wrong.append(f"{where}.points: a points prize needs its points")
        if prize.value is not None and prize.value != prize.points:
            wrong.append(f"{where}.value: a points prize is worth its points")
    else:
        if prize.points is not None:
            wrong.append(f"{where}.points: an item prize credits no points")
        if prize.value is None:
            wrong.append(f"{where}.value: an item prize needs its value in points (budget)")
    return wrong


def _check_draw(name: str, draw: Draw) -> list[RuleProblem]:
    problems: list[RuleProblem] = []

    def problem(fld: str, message: str) -> None:
        problems.append(RuleProblem(name, draw.id, fld, message, "draw"))

    if draw.starts >= draw.ends:
        problem("ends", "`ends` must be after `starts`")
    nones = [p for p in draw.prizes if p.kind == "none"]
    if len(nones) != 1:
        problem("prizes", 'exactly one prize has `kind = "none"` (no prize, and the fallback)')
    ids = [p.id for p in draw.prizes]
    if len(ids) != len(set(ids)):
        problem("prizes", "two prizes have the same id")
    if not 1 <= draw.total_weight <= MAX_TOTAL_WEIGHT:
        problem("prizes", f"the weights must add up to between 1 and {MAX_TOTAL_WEIGHT}")
    for index, prize in enumerate(draw.prizes):
        for message in _check_prize(index, prize):
            fld, _, text = message.partition(": ")
            problem(fld, text)
    return problems


def build_draw_set(name: str, data: bytes) -> DrawSet:
    """Validate `draws.toml`; RuleSetInvalid names the file, the draw and the field."""
    doc = decode_document(name, data, DrawFile, "draw")
    problems: list[RuleProblem] = []
    seen: set[str] = set()
    for draw in doc.draws:
        problems.extend(_check_draw(name, draw))
        if draw.id in seen:
            problems.append(RuleProblem(name, draw.id, "id", "two draws have this id", "draw"))
        seen.add(draw.id)
    if problems:
        raise RuleSetInvalid(problems)
    return DrawSet(
        draws={d.id: d for d in doc.draws}, version=hashlib.sha256(data).hexdigest()[:12]
    )


# --- commitment and outcome ----------------------------------------------------------


def definition_bytes(draw: Draw) -> bytes:
    """The definition as it is published and committed (its sha256 is published too)."""
    return msgspec.json.encode(draw)


def decode_definition(data: bytes) -> Draw:
    return msgspec.json.decode(data, type=Draw)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pick_of(seed: bytes, draw_id: str, total_weight: int) -> int:
    mac = hmac.new(seed, draw_id.encode(), hashlib.sha256).digest()
    return int.from_bytes(mac, "big") % total_weight


def prize_at(draw: Draw, pick: int) -> Prize:
    running = 0
    for prize in draw.prizes:
        running += prize.weight
        if pick < running:
            return prize
    raise ValueError(f"pick {pick} is past the total weight {running}")


def stock_table(draw: Draw) -> list[list[object]]:
    """What the stock script needs of the prizes: [id, running weight, quantity, value,
    1 for the no-prize outcome] in the file's order."""
    table: list[list[object]] = []
    running = 0
    for p in draw.prizes:
        running += p.weight
        table.append([p.id, running, p.quantity or 0, p.cost_to_budget, int(p.kind == "none")])
    return table


@dataclass
class Stock:
    """What a draw has given out so far."""

    used: dict[str, int] = field(default_factory=dict)
    spent: int = 0  # of the budget
    seq: int = 0  # outcomes given

    def left(self, prize: Prize) -> int:
        return (prize.quantity or 0) - self.used.get(prize.id, 0)

    def fits(self, draw: Draw, prize: Prize) -> bool:
        return self.left(prize) > 0 and prize.cost_to_budget <= draw.budget - self.spent


@dataclass(frozen=True, slots=True)
class Outcome:
    seq: int
    prize: Prize
    pick: int
    fallback: bool  # the picked prize was gone or over budget: no prize instead


def refusal(draw: Draw, stock: Stock) -> str | None:
    """`sold_out` / `budget_exhausted` when nothing is left to win, else None."""
    stocked = [p for p in draw.prizes if p.kind != "none"]
    if any(stock.fits(draw, p) for p in stocked):
        return None
    return BUDGET_EXHAUSTED if any(stock.left(p) > 0 for p in stocked) else SOLD_OUT


def resolve(draw: Draw, pick: int, stock: Stock) -> Outcome | str:
    """The next outcome for `pick`, and `stock` updated; or the refusal's code. The
    Redis stock script (adapters/lua/draw_take.lua) does the same, atomically."""
    refused = refusal(draw, stock)
    if refused is not None:
        return refused
    prize = prize_at(draw, pick)
    fallback = prize.kind != "none" and not stock.fits(draw, prize)
    if fallback:
        prize = draw.no_prize
    stock.seq += 1
    if prize.kind != "none":
        stock.used[prize.id] = stock.used.get(prize.id, 0) + 1
        stock.spent += prize.cost_to_budget
    return Outcome(stock.seq, prize, pick, fallback)


@dataclass(frozen=True, slots=True)
class RecordedDraw:
    """One outcome as the ledger recorded it."""

    seq: int
    draw_id: str
    pick: int
    prize: str
    points: int  # credited by a points prize
    fallback: bool


def replay(draw: Draw, seed: bytes, records: Iterable[RecordedDraw]) -> list[str]:
    """Every way the recorded outcomes differ from what the seed gives, in `seq` order."""
    problems: list[str] = []
    stock = Stock()
    total = draw.total_weight
    for r in sorted(records, key=lambda r: r.seq):
        if r.seq != stock.seq + 1:
            problems.append(f"seq {stock.seq + 1}: missing (the next recorded is {r.seq})")
            break
        pick = pick_of(seed, r.draw_id, total)
        expected = resolve(draw, pick, stock)
        if isinstance(expected, str):
            problems.append(f"seq {r.seq} ({r.draw_id!r}): refused as {expected}, yet recorded")
            break
        got = (r.pick, r.prize, r.points, r.fallback)
        want = (pick, expected.prize.id, expected.prize.points or 0, expected.fallback)
        if got != want:
            problems.append(
                f"seq {r.seq} ({r.draw_id!r}): recorded pick {r.pick} prize {r.prize!r} "
                f"points {r.points} fallback {r.fallback}; the seed gives pick {pick} prize "
                f"{expected.prize.id!r} points {want[2]} fallback {expected.fallback}"
            )
            # Go on from what the seed gives: one bad row should not hide the rest.
    return problems


def stock_of(draw: Draw, records: Sequence[RecordedDraw]) -> Stock:
    """The stock after these outcomes."""
    stock = Stock(seq=max((r.seq for r in records), default=0))
    for r in records:
        prize = draw.prize(r.prize)
        if prize is not None and prize.kind != "none":
            stock.used[prize.id] = stock.used.get(prize.id, 0) + 1
            stock.spent += prize.cost_to_budget
    return stock


# --- what the state store answers with ------------------------------------------------


class Taken(msgspec.Struct, frozen=True):
    """An outcome as the stock script gave it: seq, prize id, pick, fallback 0|1."""

    n: int
    p: str
    k: str
    f: int


class Hold(msgspec.Struct, frozen=True):
    """A draw id's record in the informant's slot: body hash, cost, balance after (the
    hold, then the settled outcome), programme day, `held` or `done`, the outcome."""

    h: str
    c: int
    b: int
    d: int
    s: str
    o: Taken | None = None


@dataclass(frozen=True, slots=True)
class DailyLimitReached:
    count: int


@dataclass(frozen=True, slots=True)
class Commitment:
    """A draw's seed and the definition committed with it."""

    draw: str
    seed: bytes  # secret until the window closes
    seed_sha256: str  # published from the start
    definition: bytes
    definition_sha256: str
    committed_at: datetime


def new_commitment(draw: Draw, seed: bytes, at: datetime) -> Commitment:
    definition = definition_bytes(draw)
    return Commitment(draw.id, seed, sha256_hex(seed), definition, sha256_hex(definition), at)


@dataclass(frozen=True, slots=True)
class DrawRecord:
    """One draw as the ledger holds it (the `draws` row)."""

    draw_id: str
    draw: str
    seq: int
    informant_id: str
    pick: int
    prize: str
    points: int
    fallback: bool
    cost: int
    balance: int
    body_hash: str
    created_at: datetime

    def recorded(self) -> RecordedDraw:
        return RecordedDraw(
            self.seq, self.draw_id, self.pick, self.prize, self.points, self.fallback
        )
