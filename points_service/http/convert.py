"""From use-case results to wire shapes."""

from collections.abc import Iterable
from datetime import datetime

from points_service.domain.catalogue import featured_active, has_window, listed, once_per_day
from points_service.domain.draws import Draw
from points_service.domain.institutions import Institution
from points_service.domain.ledger import LedgerEntry
from points_service.domain.levels import Level
from points_service.domain.levels import Standing as Experience
from points_service.domain.profiles import Profile
from points_service.domain.reports import DORMANT_DAYS, MEASURES, Figures
from points_service.domain.rules import Featured, Rule
from points_service.http.schemas import (
    ActionProgressOut,
    ActionTodayOut,
    AwardOut,
    BoardOut,
    CampaignsOut,
    CatalogueRule,
    ChildOut,
    DrawSummary,
    EntryOut,
    EventResult,
    FeaturedOut,
    FiguresOut,
    InstitutionOut,
    LedgerEntryOut,
    LevelOut,
    LevelStanding,
    LineOut,
    MemberOut,
    MembersOut,
    MemberTotalsOut,
    MilestoneOut,
    MonthlyReportOut,
    NextMilestoneOut,
    NominationOut,
    NominationsOut,
    PeriodOut,
    PointsOut,
    ProfileOut,
    ProgressOut,
    RankOut,
    RanksOut,
    RulesCatalogue,
    RuleTodayOut,
    StandingOut,
    StreakOut,
    TodayOut,
)
from points_service.services.account import CatalogueView, PointsView, TodayView
from points_service.services.awards import Nominations
from points_service.services.credit import Credited
from points_service.services.institutions import MemberTable
from points_service.services.leaderboards import Entries, Page, PeriodView, Ranks, Standing
from points_service.services.reports import MonthlyReport


def level_out(x: Level) -> LevelOut:
    return LevelOut(x.level, x.title, x.title_zh, x.at)


def level_standing(s: Experience) -> LevelStanding:
    return LevelStanding(
        level=s.level.level,
        title=s.level.title,
        title_zh=s.level.title_zh,
        experience=s.experience,
        next_level=level_out(s.next) if s.next else None,
        to_next=s.to_next,
        progress=s.progress,
    )


def event_result(c: Credited) -> EventResult:
    return EventResult(
        event_id=c.event_id,
        informant_id=c.informant_id,
        action=c.action,
        points=c.points,
        balance=c.balance,
        lines=[LineOut(x.rule, x.points, x.reason, x.requested) for x in c.lines],
        replayed=c.replayed,
        dry_run=c.dry_run,
        late=c.late,
        day=c.day,
        streak=c.streak,
        counters=c.counters,
        rule_version=c.rule_version,
        level=level_standing(standing) if (standing := c.level) else None,
        levels_reached=[level_out(x) for x in c.levels_reached],
    )


def points_out(v: PointsView) -> PointsOut:
    return PointsOut(
        informant_id=v.informant_id,
        balance=v.balance,
        earned=v.earned,
        day=v.day,
        today={a: ActionTodayOut(t.count, t.points) for a, t in v.today.items()},
        streak=v.streak,
        last_sign_in=v.last_sign_in,
        level=level_standing(v.level),
    )


def ledger_entry_out(e: LedgerEntry) -> LedgerEntryOut:
    return LedgerEntryOut(
        id=e.id,
        kind=e.kind,
        ref_id=e.ref_id,
        points=e.points,
        day=e.day,
        created_at=e.created_at,
        rule_version=e.rule_version,
        detail=e.detail,
    )


def profile_out(informant_id: str, p: Profile, level: Experience | None = None) -> ProfileOut:
    return ProfileOut(
        informant_id=informant_id,
        name=p.name,
        province=p.province,
        city=p.city,
        county=p.county,
        unit_name=p.unit_name,
        type=p.type,
        institution_id=p.institution_id,
        certified=p.certified,
        registered_at=p.registered_at,
        status=p.status,
        level=level_standing(level) if level else None,
    )


def period_out(v: PeriodView) -> PeriodOut:
    return PeriodOut(v.key, v.start, v.end, v.next_reset)


def entries_out(entries: Entries) -> list[EntryOut]:
    """One comprehension over the columns, no Entry made: a page has a hundred rows."""
    return [
        EntryOut(r, i, score, d.name, d.unit_name, d.province, d.city, d.county, d.institution_id)
        for r, i, score, d in zip(
            entries.ranks, entries.ids, entries.scores, entries.shown, strict=True
        )
    ]  # fmt: skip


def board_out(page: Page) -> BoardOut:
    return BoardOut(
        page.metric,
        page.scope,
        period_out(page.period),
        page.members,
        entries_out(page.entries),
        page.next_cursor,
        page.final,
    )


def standing_out(s: Standing) -> StandingOut:
    return StandingOut(
        s.metric,
        s.scope,
        period_out(s.period),
        s.informant_id,
        s.rank,
        s.score,
        s.percentile,
        s.members,
        entries_out(s.neighbours),
    )


def ranks_out(r: Ranks) -> RanksOut:
    return RanksOut(
        r.metric,
        r.scope,
        period_out(r.period),
        r.members,
        [RankOut(x.informant_id, x.rank, x.score) for x in r.ranks],
    )


def institution_out(institution_id: str, i: Institution) -> InstitutionOut:
    return InstitutionOut(institution_id, i.name, i.province, i.city, i.county, i.contact)


def members_out(t: MemberTable) -> MembersOut:
    return MembersOut(
        institution_id=t.institution_id,
        name=t.name,
        period=period_out(t.period),
        sort=t.sort,
        order=t.order,
        members=[
            MemberOut(
                r.informant_id,
                r.name,
                r.shares,
                r.posts,
                r.points,
                r.share_views,
                r.last_activity,
            )
            for r in t.rows
        ],
        totals=MemberTotalsOut(
            t.totals.members,
            t.totals.active,
            t.totals.shares,
            t.totals.posts,
            t.totals.points,
            t.totals.share_views,
        ),
        next_cursor=t.next_cursor,
    )


def nominations_out(n: Nominations) -> NominationsOut:
    a = n.award
    return NominationsOut(
        award=AwardOut(
            a.id,
            a.title,
            a.title_zh,
            a.rank_by,
            list(a.tie_breaks),
            {str(k): v for k, v in a.thresholds.items()},
            a.limit,
            a.national_quota,
        ),
        year=n.year,
        scope=n.scope,
        nominations=[
            NominationOut(
                r.position,
                r.informant_id,
                r.name,
                r.province,
                dict(r.metrics),
                dict(r.thresholds_met),
                r.placed_by,
                list(r.reasons),
            )
            for r in n.rows
        ],
    )


def _figures(f: Figures) -> FiguresOut:
    return FiguresOut(**{m: f.get(m) for m in MEASURES})


def report_out(r: MonthlyReport) -> MonthlyReportOut:
    return MonthlyReportOut(
        month=period_out(r.month),
        kind=r.kind,
        code=r.code,
        level=r.level,
        dormant_days=DORMANT_DAYS,
        figures=_figures(r.figures),
        population=r.population,
        registrations_per_10k=r.registrations_per_10k,
        progress=(
            ProgressOut(
                r.progress.registrations,
                r.progress.shares,
                r.progress.informants_at_share_target,
                dict(r.progress.targets),
            )
            if r.progress
            else None
        ),
        children=[
            ChildOut(
                c.region, _figures(c.figures), c.population, c.registrations_per_10k, dict(c.ranks)
            )
            for c in r.children
        ],
    )


# --- how to earn ------------------------------------------------------------------------


def catalogue_rule(r: Rule, now: datetime) -> CatalogueRule:
    return CatalogueRule(
        id=r.id,
        action=r.action,
        title=r.title,
        title_zh=r.title_zh,
        points=r.points,
        once_per_day=once_per_day(r),
        daily_points_cap=r.daily_points_cap,
        daily_count_cap=r.daily_count_cap,
        distinct_by=list(r.distinct.by) if r.distinct else [],
        distinct_within=r.distinct.within if r.distinct else None,
        today_only=r.today_only,
        excludes_self=r.exclude_self is not None,
        streak_milestones=[MilestoneOut(m.days, m.bonus) for m in r.streak.milestones]
        if r.streak
        else [],
        counts=list(r.counts),
        starts=r.starts,
        ends=r.ends,
        campaign=has_window(r),
        active=r.active_at(now),
    )


def featured_out(f: Featured, now: datetime) -> FeaturedOut:
    return FeaturedOut(
        name=f.name,
        title=f.title,
        title_zh=f.title_zh,
        actions=list(f.actions),
        factor=f.factor,
        content_ids=list(f.content_ids),
        starts=f.starts,
        ends=f.ends,
        active=featured_active(f, now),
    )


def draw_summaries(draws: Iterable[Draw], now: datetime) -> list[DrawSummary]:
    return [
        DrawSummary(d.id, d.title, d.title_zh, d.cost, d.daily_limit, d.starts, d.ends, status)
        for d in sorted(draws, key=lambda d: (d.starts, d.id))
        if (status := d.status(now)) != "closed"
    ]


def rules_catalogue(v: CatalogueView, timezone: str, draws: Iterable[Draw] = ()) -> RulesCatalogue:
    shown = listed(v.rules, v.now)
    return RulesCatalogue(
        version=v.rules.version,
        day=v.day,
        timezone=timezone,
        rules=[catalogue_rule(r, v.now) for r in shown.rules],
        featured=[featured_out(f, v.now) for f in shown.featured],
        levels=[level_out(x) for x in v.levels.levels],
        draws=draw_summaries(draws, v.now),
    )


def today_out(v: TodayView, now: datetime) -> TodayOut:
    nxt = v.streak.next
    return TodayOut(
        informant_id=v.informant_id,
        day=v.day,
        balance=v.balance,
        rule_version=v.rule_version,
        actions=[
            ActionProgressOut(
                action=a.action,
                count=a.count,
                points=a.points,
                points_left=a.points_left,
                rules=[
                    RuleTodayOut(
                        rule=r.rule.id,
                        title=r.rule.title,
                        title_zh=r.rule.title_zh,
                        count=r.count,
                        points=r.points,
                        daily_points_cap=r.rule.daily_points_cap,
                        points_left=r.points_left,
                        daily_count_cap=r.rule.daily_count_cap,
                        count_left=r.count_left,
                    )
                    for r in a.rules
                ],
            )
            for a in v.actions
        ],
        streak=StreakOut(
            days=v.streak.days,
            done_today=v.streak.done_today,
            next_milestone=NextMilestoneOut(nxt.rule_id, nxt.days, nxt.bonus, nxt.days_left)
            if nxt
            else None,
        ),
        campaigns=CampaignsOut(
            rules=[catalogue_rule(r, now) for r in v.campaigns.rules],
            featured=[featured_out(f, now) for f in v.campaigns.featured],
        ),
        level=level_standing(v.level),
    )
