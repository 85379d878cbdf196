"""Leaderboard definitions (`leaderboards/*.toml`) and where an event lands on them.

A board is one metric, over one scope, for one period: `points` in `county:640104` for
`week:2026-W48`. The files say which metrics are kept for which kinds of scope and
period, and how long a period's board stays in Redis after it closes. They are
validated like rule files: every problem at once, naming the file, the board and the
field.
"""

import hashlib
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Final, Literal, NamedTuple, get_args

import msgspec

from points_service.domain.actions import COUNTERS
from points_service.domain.events import ID_PATTERN
from points_service.domain.periods import PERIOD_KINDS, Period, PeriodKind, periods_of
from points_service.domain.rules import RuleProblem, RuleSetInvalid, decode_document

Metric = Literal["points", "shares", "share_views", "posts"]
METRICS: Final[tuple[str, ...]] = get_args(Metric)
ScopeKind = Literal["all", "province", "city", "county", "institution"]
SCOPE_KINDS: Final[tuple[str, ...]] = get_args(ScopeKind)
REGION_KINDS: Final = ("province", "city", "county")

_REGION = re.compile(r"^\d{6}$")
_INSTITUTION = re.compile(ID_PATTERN)


def _problem(file: str, board: str | None, fld: str | None, message: str) -> RuleProblem:
    return RuleProblem(file, board, fld, message, what="board")


class BoardDef(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    metric: Metric
    scopes: list[ScopeKind]
    periods: list[PeriodKind]


class BoardFile(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    boards: list[BoardDef] = msgspec.field(default_factory=list)
    # Days a bounded period's board stays in Redis after it has closed (its end plus
    # the grace window); its final standings are kept in SQL for ever.
    retention_days: dict[PeriodKind, Annotated[int, msgspec.Meta(ge=0, le=3660)]] = msgspec.field(
        default_factory=dict
    )


@dataclass(frozen=True, slots=True)
class BoardSet:
    version: str
    # metric -> (scope kinds, period kinds) it is kept for
    kept: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]]
    retention_days: Mapping[str, int]
    files: tuple[str, ...] = ()

    def has(self, metric: str, scope_kind: str, period_kind: str) -> bool:
        scopes, periods = self.kept.get(metric, ((), ()))
        return scope_kind in scopes and period_kind in periods


def parse_board_file(name: str, data: bytes) -> BoardFile:
    return decode_document(name, data, BoardFile, what="board")


def _check_board(name: str, board: BoardDef) -> list[RuleProblem]:
    problems = []
    for fld, values in (("scopes", board.scopes), ("periods", board.periods)):
        if not values:
            problems.append(_problem(name, board.metric, fld, "must not be empty"))
        if len(set(values)) != len(values):
            problems.append(_problem(name, board.metric, fld, "lists a value twice"))
    return problems


def build_board_set(documents: Mapping[str, bytes]) -> BoardSet:
    """Validate every document together and build the set, or raise with every problem."""
    problems: list[RuleProblem] = []
    parsed: list[tuple[str, BoardFile]] = []
    for name in sorted(documents):
        try:
            parsed.append((name, parse_board_file(name, documents[name])))
        except RuleSetInvalid as exc:
            problems.extend(exc.problems)
    if not documents:
        problems.append(_problem("<leaderboards>", None, None, "no board files"))
    kept: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
    home: dict[str, str] = {}
    retention: dict[str, int] = {}
    retention_home: dict[str, str] = {}
    for name, doc in parsed:
        for board in doc.boards:
            if board.metric in home:
                message = f"also defined in {home[board.metric]}"
                problems.append(_problem(name, board.metric, "metric", message))
                continue
            home[board.metric] = name
            problems.extend(_check_board(name, board))
            kept[board.metric] = (tuple(board.scopes), tuple(board.periods))
        for period_kind, days in doc.retention_days.items():
            if period_kind in retention_home:
                message = f"also set in {retention_home[period_kind]}"
                problems.append(_problem(name, None, f"retention_days.{period_kind}", message))
            retention_home.setdefault(period_kind, name)
            retention[period_kind] = days
    used = {p for _, periods in kept.values() for p in periods}
    for missing in sorted(used - {"all"} - set(retention), key=PERIOD_KINDS.index):
        problems.append(
            _problem(
                next(iter(home.values()), "<leaderboards>"),
                None,
                f"retention_days.{missing}",
                f"boards keep `{missing}` periods but no retention is set for them",
            )
        )
    if problems:
        raise RuleSetInvalid(problems)
    digest = hashlib.sha256()
    for name in sorted(documents):
        digest.update(name.encode() + b"\0" + documents[name] + b"\0")
    return BoardSet(digest.hexdigest()[:12], kept, retention, tuple(sorted(documents)))


# --- scopes ------------------------------------------------------------------------


class Placement(msgspec.Struct, frozen=True, gc=False):
    """Where an informant belongs, as its profile said when the event was credited."""

    province: str | None = None
    city: str | None = None
    county: str | None = None
    institution: str | None = None

    def scopes(self) -> Iterator[tuple[str, str]]:
        """(scope kind, scope key) of every scope the informant is counted in."""
        yield "all", "all"
        for kind in ("province", "city", "county", "institution"):
            value = getattr(self, kind)
            if value:
                yield kind, f"{kind}:{value}"


NOWHERE: Final = Placement()


def region_problems(
    province: str | None, city: str | None, county: str | None
) -> list[tuple[str, str]]:
    """(field, message) for each way the three codes fail GB/T 2260's shape."""
    problems: list[tuple[str, str]] = []
    if province is not None and not (_REGION.match(province) and province.endswith("0000")):
        problems.append(("province", "a province code is six digits ending in 0000"))
    if city is not None:
        if not (_REGION.match(city) and city.endswith("00") and not city.endswith("0000")):
            problems.append(("city", "a city code is six digits ending in 00 (not 0000)"))
        elif province is None or city[:2] != province[:2]:
            problems.append(("city", "the city does not belong to the province"))
    if county is not None:
        if not (_REGION.match(county) and not county.endswith("00")):
            problems.append(("county", "a county code is six digits not ending in 00"))
        elif city is None or county[:4] != city[:4]:
            problems.append(("county", "the county does not belong to the city"))
    return problems


def parse_scope(text: str) -> tuple[str, str]:
    """(kind, key) from an API scope (`all`, `county:640104`, `institution:x`)."""
    if text == "all":
        return "all", "all"
    kind, _, value = text.partition(":")
    if kind in REGION_KINDS:
        codes: dict[str, str | None] = {"province": None, "city": None, "county": None}
        codes[kind] = value
        # Check the code's own shape only: its parents are not part of a scope.
        shape = [m for f, m in region_problems(**codes) if f == kind and "belong" not in m]
        if not shape:
            return kind, text
        raise ValueError(f"{text!r}: {shape[0]}")
    if kind == "institution" and _INSTITUTION.match(value):
        return kind, text
    raise ValueError(
        f"{text!r} is not a scope; expected all, province:CODE, city:CODE, county:CODE "
        "or institution:ID"
    )


# --- where an event lands -------------------------------------------------------------


class Board(NamedTuple):
    """A tuple, so that hashing it (a rebuild does so millions of times) is cheap."""

    metric: str
    scope: str  # all | province:640000 | ... | institution:ID
    period: str  # all | day:2026-11-28 | week:2026-W48 | month:2026-11 | year:2026


class Shown(msgspec.Struct, frozen=True, gc=False):
    """An informant's display fields on a board (from the profile; None: not set)."""

    name: str | None = None
    unit_name: str | None = None
    province: str | None = None
    city: str | None = None
    county: str | None = None
    institution_id: str | None = None


NOT_SHOWN: Final = Shown()


class Window(msgspec.Struct, frozen=True, gc=False):
    """Consecutive members of a board from position `start` (0 is the top), as columns:
    a top page has a hundred rows, and a row object each cost more than the page's
    read from Redis (bench/RESULTS.md)."""

    members: int  # on the whole board
    start: int
    ids: list[str]  # best first, ties by id
    scores: list[int]  # each id's score
    higher_than_first: int  # members with a strictly higher score than the first row
    # Each row's display fields, when the store read them with the window; None: not read
    display: list[Shown] | None = None

    def ranks(self) -> list[int]:
        """Standard competition ranks (1, 2, 2, 4) of the rows: a row tied with the one
        before shares its rank; the first row's is one more than the members strictly
        higher than it."""
        ranks: list[int] = []
        add = ranks.append
        rank = self.higher_than_first + 1
        before = None
        for position, score in enumerate(self.scores, self.start + 1):
            if score != before:
                if before is not None:
                    rank = position
                before = score
            add(rank)
        return ranks


class Around(msgspec.Struct, frozen=True, gc=False):
    members: int
    standing: tuple[int, int] | None  # (score, members strictly higher); None: absent
    window: Window | None


@dataclass(frozen=True, slots=True)
class BoardWrite:
    board: Board
    delta: int


def metric_values(points: int, counters: list[int]) -> dict[str, int]:
    values = {"points": points}
    values.update(zip(COUNTERS, counters, strict=True))
    return {m: v for m, v in values.items() if v}


def board_targets(boards: BoardSet, placement: Placement, day: int) -> dict[str, tuple[Board, ...]]:
    """metric -> the boards an event of that metric moves, for an informant placed so,
    on programme day `day`."""
    scopes = list(placement.scopes())
    periods = periods_of(day)
    return {
        metric: tuple(
            Board(metric, scope, period.key)
            for scope_kind, scope in scopes
            for period in periods
            if boards.has(metric, scope_kind, period.kind)
        )
        for metric in boards.kept
    }


def board_writes(
    boards: BoardSet, placement: Placement, day: int, values: Mapping[str, int]
) -> list[BoardWrite]:
    """Every board an event with these metric values, on programme day `day`, moves."""
    if not values:
        return []
    targets = board_targets(boards, placement, day)
    return [
        BoardWrite(board, delta)
        for metric, delta in values.items()
        for board in targets.get(metric, ())
    ]


# --- totals from the ledger -----------------------------------------------------------


class DayTotal(msgspec.Struct, frozen=True, gc=False):
    """What one informant's unreversed, on-time events of one day added, by placement."""

    day: int
    informant_id: str
    placement: Placement
    values: Mapping[str, int]  # metric -> total (zeros left out)


class BoardTotals:
    """Each wanted board with its members' totals, from day totals fed in day order.

    Day totals are first summed per period, informant and placement (a few additions a
    row); when the rows pass a period's last day, that period's sums are spread over its
    boards (scopes x metrics) and handed back. So memory holds the open periods only
    (and `all`, handed back at the end), and each (board, member) is written once per
    placement rather than once per day.
    """

    def __init__(self, boards: BoardSet, wanted: Callable[[Board, Period], bool]) -> None:
        self._boards = boards
        self._wanted = wanted
        # period key -> (informant, placement) -> totals in METRICS order
        self._open: dict[str, dict[tuple[str, Placement], list[int]]] = {}
        self._periods: dict[str, Period] = {}
        self._closes: dict[int, list[str]] = {}  # last day -> periods that end then
        self._day: int | None = None
        self._day_periods: list[Period] = []

    def _closed_before(self, day: int | None) -> list[tuple[Board, dict[str, int]]]:
        ready = []
        for last in sorted(d for d in self._closes if day is None or d < day):
            for key in self._closes.pop(last):
                ready.extend(self._spread(self._periods.pop(key), self._open.pop(key)))
        return ready

    def _spread(
        self, period: Period, sums: dict[tuple[str, Placement], list[int]]
    ) -> list[tuple[Board, dict[str, int]]]:
        out: dict[Board, dict[str, int]] = {}
        # placement -> (metric position, board) of every wanted board it counts on
        targets: dict[Placement, list[tuple[int, Board]]] = {}
        for (informant_id, placement), values in sums.items():
            mine = targets.get(placement)
            if mine is None:
                mine = targets[placement] = [
                    (n, board)
                    for scope_kind, scope in placement.scopes()
                    for n, metric in enumerate(METRICS)
                    if self._boards.has(metric, scope_kind, period.kind)
                    and self._wanted(board := Board(metric, scope, period.key), period)
                ]
            for n, board in mine:
                value = values[n]
                if value:
                    members = out.get(board)
                    if members is None:
                        members = out[board] = {}
                    members[informant_id] = members.get(informant_id, 0) + value
        return list(out.items())

    def add(self, row: DayTotal) -> list[tuple[Board, dict[str, int]]]:
        if self._day is not None and row.day < self._day:
            raise ValueError("day totals must come in day order")
        ready: list[tuple[Board, dict[str, int]]] = []
        if row.day != self._day:
            ready = self._closed_before(row.day)
            self._day = row.day
            self._day_periods = periods_of(row.day)
        values = [row.values.get(m, 0) for m in METRICS]
        key = (row.informant_id, row.placement)
        for period in self._day_periods:
            sums = self._open.get(period.key)
            if sums is None:
                sums = self._open[period.key] = {}
                self._periods[period.key] = period
                self._closes.setdefault(period.last_day, []).append(period.key)
            total = sums.get(key)
            if total is None:
                sums[key] = list(values)
            else:
                for n, v in enumerate(values):
                    total[n] += v
        return ready

    def finish(self) -> list[tuple[Board, dict[str, int]]]:
        return self._closed_before(None)
