"""Wire shapes of API v1. Field names are a contract with the app: add, never rename."""

from datetime import date, datetime
from typing import Annotated

import msgspec

from points_service.domain.events import TEXT_PATTERN, ClientKey, Event
from points_service.domain.institutions import Institution
from points_service.domain.profiles import Profile
from points_service.settings import MAX_BATCH_CEILING

Points = Annotated[int, msgspec.Meta(ge=1, le=100_000_000)]
Item = Annotated[str, msgspec.Meta(min_length=1, max_length=256, pattern=TEXT_PATTERN)]
MAX_BATCH = 1000  # POINTS_MAX_BATCH's default; the served document shows the one in force


class LineOut(msgspec.Struct):
    rule: str | None
    points: int
    reason: str
    requested: int


class LevelOut(msgspec.Struct):
    """A level of rules/levels.toml."""

    level: int
    title: str
    title_zh: str
    at: int  # the experience that reaches it


class LevelStanding(msgspec.Struct):
    """Where an informant's experience (earned points, never lowered by spending) stands."""

    level: int
    title: str
    title_zh: str
    experience: int
    next_level: LevelOut | None  # None at the top level
    to_next: int | None  # experience still needed for next_level
    progress: float  # 0..1 of the way from this level to the next


class EventResult(msgspec.Struct):
    event_id: str
    informant_id: str
    action: str
    points: int
    balance: int
    lines: list[LineOut]
    replayed: bool
    dry_run: bool
    late: bool
    day: date
    streak: int
    counters: dict[str, int]
    rule_version: str
    # The informant's level after this event (null for an answer first given before
    # levels existed), and the levels this event reached, for the app to celebrate.
    level: LevelStanding | None = None
    levels_reached: list[LevelOut] = msgspec.field(default_factory=list)


class ErrorOut(msgspec.Struct, omit_defaults=True):
    status_code: int
    code: str
    detail: str
    field: str | None = None
    event_id: str | None = None
    # A 429's seconds to wait (also in the Retry-After header of a whole-request 429).
    retry_after: int | None = None


class BatchItem(msgspec.Struct, omit_defaults=True):
    index: int
    status: int
    result: EventResult | None = None
    error: ErrorOut | None = None


class BatchOut(msgspec.Struct):
    results: list[BatchItem]
    accepted: int
    rejected: int


class BatchIn(msgspec.Struct, forbid_unknown_fields=True):
    # The configured limit (settings.max_batch) is checked after decoding; this bound
    # only keeps a decoder from building a list past any limit that may be set.
    events: Annotated[list[msgspec.Raw], msgspec.Meta(max_length=MAX_BATCH_CEILING)]


class EventBatch(msgspec.Struct):
    """The batch body as documented; items are decoded one by one (see BatchIn)."""

    events: Annotated[list[Event], msgspec.Meta(max_length=MAX_BATCH)]


class ActionTodayOut(msgspec.Struct):
    count: int
    points: int


class PointsOut(msgspec.Struct):
    informant_id: str
    balance: int
    earned: int
    day: date
    today: dict[str, ActionTodayOut]
    streak: int
    last_sign_in: date | None
    level: LevelStanding | None = None


class LedgerEntryOut(msgspec.Struct):
    id: int
    kind: str
    ref_id: str
    points: int
    day: date | None
    created_at: datetime
    rule_version: str | None
    detail: str | None


class LedgerOut(msgspec.Struct):
    informant_id: str
    entries: list[LedgerEntryOut]
    next_cursor: str | None


class RedemptionIn(msgspec.Struct, forbid_unknown_fields=True):
    redemption_id: ClientKey
    points: Points
    item: Item


class RedemptionOut(msgspec.Struct):
    redemption_id: str
    informant_id: str
    points: int
    item: str
    balance: int
    replayed: bool


class ReversalIn(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(max_length=256, pattern=TEXT_PATTERN)] = "reversed"


class ReversalOut(msgspec.Struct):
    event_id: str
    informant_id: str
    points: int
    balance: int
    replayed: bool


# --- the lottery -----------------------------------------------------------------------

DRAW_PATTERN = r"^[a-z0-9][a-z0-9_.\-]{0,63}$(?!\n)"  # a draw id of rules/draws.toml


class DrawIn(msgspec.Struct, forbid_unknown_fields=True):
    draw_id: ClientKey  # the client's key: the same draw_id again is the same draw
    draw: Annotated[str, msgspec.Meta(pattern=DRAW_PATTERN)]


class PrizeOut(msgspec.Struct):
    id: str
    kind: str  # points | item | none
    title: str
    title_zh: str


class DrawOut(msgspec.Struct):
    draw_id: str
    draw: str
    informant_id: str
    seq: int  # the outcome's place in the draw's order (replayed in this order)
    prize: PrizeOut
    points: int  # credited by a points prize (to the balance; not to earned)
    fallback: bool  # the picked prize was gone or over budget: no prize instead
    cost: int
    balance: int
    replayed: bool


class DrawPrizeOut(msgspec.Struct):
    id: str
    kind: str
    title: str
    title_zh: str
    weight: int
    quantity: int | None
    points: int | None
    value: int  # what it takes of the budget
    given: int


class DrawInfoOut(msgspec.Struct):
    draw: str
    title: str
    title_zh: str
    status: str  # upcoming | open | closed
    cost: int
    daily_limit: int
    budget: int
    budget_spent: int
    starts: datetime
    ends: datetime
    total_weight: int
    prizes: list[DrawPrizeOut]
    draws: int  # outcomes given so far
    seed_sha256: str  # the commitment, published before the window opens
    definition: str  # the committed definition, exactly the bytes definition_sha256 hashes
    definition_sha256: str
    committed_at: datetime
    seed: str | None  # hex; only once the window has closed
    outcome: str  # how an outcome follows from the seed (README: the lottery)


class DrawResultOut(msgspec.Struct):
    seq: int
    draw_id: str
    pick: int
    prize: str
    points: int
    fallback: bool


class DrawResultsOut(msgspec.Struct):
    draw: str
    seed: str
    results: list[DrawResultOut]
    next_cursor: str | None


class RulesOut(msgspec.Struct):
    version: str
    files: list[str]
    rules: int
    last_reload_ok: bool
    last_reload_at: datetime
    problems: list[str]
    worker_pid: int  # the worker process that answered (each holds its own rule set)


# Decoders are built once; decoding and validating is one pass in C.
event_decoder = msgspec.json.Decoder(Event)
batch_decoder = msgspec.json.Decoder(BatchIn | list[msgspec.Raw])
redemption_decoder = msgspec.json.Decoder(RedemptionIn)
reversal_decoder = msgspec.json.Decoder(ReversalIn)
draw_decoder = msgspec.json.Decoder(DrawIn)


# --- profiles and leaderboards --------------------------------------------------------

profile_decoder = msgspec.json.Decoder(Profile)


class ProfileOut(msgspec.Struct):
    informant_id: str
    name: str | None
    province: str | None
    city: str | None
    county: str | None
    unit_name: str | None
    type: str | None
    institution_id: str | None
    certified: bool
    registered_at: datetime | None
    status: str
    level: LevelStanding | None = None  # on GET


class PeriodOut(msgspec.Struct):
    """Times in the programme time zone; `all` has none. `end` is exclusive, and the
    board starts again (a new period) at `next_reset`."""

    key: str
    start: datetime | None
    end: datetime | None
    next_reset: datetime | None


class EntryOut(msgspec.Struct, omit_defaults=True, gc=False):  # strings and numbers only
    rank: int
    informant_id: str
    score: int
    name: str | None = None
    unit_name: str | None = None
    province: str | None = None
    city: str | None = None
    county: str | None = None
    institution_id: str | None = None


class BoardOut(msgspec.Struct):
    metric: str
    scope: str
    period: PeriodOut
    members: int
    entries: list[EntryOut]
    next_cursor: str | None
    final: bool  # a closed period: its final standings (the top 1,000)


class StandingOut(msgspec.Struct):
    metric: str
    scope: str
    period: PeriodOut
    informant_id: str
    rank: int | None  # null: nothing in this period (unranked)
    score: int
    percentile: float | None  # share of members at or below this score, in percent
    members: int
    neighbours: list[EntryOut]


class RankOut(msgspec.Struct):
    informant_id: str
    rank: int | None
    score: int


class RanksOut(msgspec.Struct):
    metric: str
    scope: str
    period: PeriodOut
    members: int
    ranks: list[RankOut]


# --- institutions ---------------------------------------------------------------------

institution_decoder = msgspec.json.Decoder(Institution)


class InstitutionOut(msgspec.Struct):
    institution_id: str
    name: str
    province: str | None
    city: str | None
    county: str | None
    contact: str | None


class MemberOut(msgspec.Struct):
    informant_id: str
    name: str | None  # 姓名
    shares: int  # 分享文章数
    posts: int  # 发布动态总数
    points: int
    share_views: int
    last_activity: date | None  # the last programme day with a counted action


class MemberTotalsOut(msgspec.Struct):
    members: int
    active: int  # members with a counted action in the period
    shares: int
    posts: int
    points: int
    share_views: int


class MembersOut(msgspec.Struct):
    institution_id: str
    name: str
    period: PeriodOut
    sort: str
    order: str
    members: list[MemberOut]
    totals: MemberTotalsOut
    next_cursor: str | None


# --- awards ---------------------------------------------------------------------------


class AwardOut(msgspec.Struct):
    id: str
    title: str
    title_zh: str
    rank_by: str
    tie_breaks: list[str]
    thresholds: dict[str, int]
    limit: int | None
    national_quota: int


class NominationOut(msgspec.Struct):
    position: int
    informant_id: str
    name: str | None
    province: str | None
    metrics: dict[str, int]
    thresholds_met: dict[str, int]
    placed_by: str | None  # the tie-break that placed it below the row above
    reasons: list[str]


class NominationsOut(msgspec.Struct):
    award: AwardOut
    year: int
    scope: str
    nominations: list[NominationOut]


# --- reports --------------------------------------------------------------------------


class FiguresOut(msgspec.Struct):
    new_registrations: int
    registrations: int
    active: int
    sharing: int
    shares: int
    share_views: int
    posts: int
    dormant: int
    reactivated: int


class ChildOut(msgspec.Struct):
    region: str
    figures: FiguresOut
    population: int | None  # from rules/population.toml
    registrations_per_10k: float | None
    ranks: dict[str, int]  # measure -> rank among the children (1 = most)


class ProgressOut(msgspec.Struct):
    """Year to date, against the yearly targets of rules/targets.toml."""

    registrations: int
    shares: int
    informants_at_share_target: int
    targets: dict[str, int]


class MonthlyReportOut(msgspec.Struct):
    month: PeriodOut
    kind: str  # region | institution
    code: str
    level: str  # province | city | county | institution
    dormant_days: int
    figures: FiguresOut
    population: int | None
    registrations_per_10k: float | None
    progress: ProgressOut | None
    children: list[ChildOut]


class RebuildOut(msgspec.Struct):
    boards: int
    members: int
    removed: int  # boards in Redis that the ledger no longer supports
    day_rows: int  # ledger day totals read
    seconds: float


class DifferenceOut(msgspec.Struct):
    metric: str
    scope: str
    period: str
    informant_id: str
    redis: int | None
    ledger: int | None


class ReconcileOut(msgspec.Struct):
    differences: int
    boards: int  # boards with at least one difference
    shown: list[DifferenceOut]  # the first ones, at most `show`
    seconds: float


# --- how to earn: GET /v1/rules and GET /v1/informants/{id}/today ----------------------


class MilestoneOut(msgspec.Struct):
    days: int
    bonus: int


class CatalogueRule(msgspec.Struct):
    """One rule as the app shows it. Limits are per informant per programme day."""

    id: str
    action: str
    title: str
    title_zh: str
    points: int
    once_per_day: bool
    daily_points_cap: int | None
    daily_count_cap: int | None
    distinct_by: list[str]  # only the first event with these values pays…
    distinct_within: str | None  # …per "day" or for "ever"
    today_only: bool  # an event dated another day pays nothing
    excludes_self: bool  # e.g. viewing one's own share pays nothing
    streak_milestones: list[MilestoneOut]
    counts: list[str]  # the leaderboard counters it feeds
    starts: datetime | None  # a campaign's window (null: always)
    ends: datetime | None
    campaign: bool  # a rule with a window
    active: bool  # running now (else it is still to come)


class FeaturedOut(msgspec.Struct):
    """Listed content whose actions pay `factor` times while the window is open."""

    name: str
    title: str
    title_zh: str
    actions: list[str]
    factor: int
    content_ids: list[str]
    starts: datetime
    ends: datetime
    active: bool


class DrawSummary(msgspec.Struct):
    """A lottery draw open or still to come (GET /v1/draws/{id} has its prizes)."""

    id: str
    title: str
    title_zh: str
    cost: int
    daily_limit: int
    starts: datetime
    ends: datetime
    status: str  # open | upcoming


class RulesCatalogue(msgspec.Struct):
    """The live rule set for the app's "how to earn" page: rules and featured lists
    running or still to come (ended ones are left out), the levels, and the lottery
    draws open or to come (where points are spent)."""

    version: str
    day: date
    timezone: str
    rules: list[CatalogueRule]
    featured: list[FeaturedOut]
    levels: list[LevelOut]
    draws: list[DrawSummary] = msgspec.field(default_factory=list)


class RuleTodayOut(msgspec.Struct):
    rule: str
    title: str
    title_zh: str
    count: int  # events it counted today (duplicates are not counted)
    points: int  # points it paid today
    daily_points_cap: int | None
    points_left: int | None  # null: no cap
    daily_count_cap: int | None
    count_left: int | None  # null: no limit (1 or 0 for a once-a-day rule)


class ActionProgressOut(msgspec.Struct):
    action: str
    count: int
    points: int
    points_left: int | None  # what the action can still pay today (null: no cap)
    rules: list[RuleTodayOut]


class NextMilestoneOut(msgspec.Struct):
    rule: str
    days: int
    bonus: int
    days_left: int  # sign-in days still needed, today's included when not yet done


class StreakOut(msgspec.Struct):
    days: int
    done_today: bool
    next_milestone: NextMilestoneOut | None


class CampaignsOut(msgspec.Struct):
    rules: list[CatalogueRule]
    featured: list[FeaturedOut]


class TodayOut(msgspec.Struct):
    informant_id: str
    day: date
    balance: int
    rule_version: str
    actions: list[ActionProgressOut]
    streak: StreakOut
    campaigns: CampaignsOut
    level: LevelStanding
