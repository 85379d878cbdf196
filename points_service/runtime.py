"""The one provider of adapters and services, shared by the HTTP app, the CLI and tests."""

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from prometheus_client import CollectorRegistry

from points_service.adapters.embedded_redis import EmbeddedRedis
from points_service.adapters.metrics import Metrics
from points_service.adapters.redis_boards import RedisBoards
from points_service.adapters.redis_client import RedisClient, connect, map_cluster
from points_service.adapters.redis_draws import RedisDraws
from points_service.adapters.redis_limits import RedisLimits
from points_service.adapters.redis_sessions import ConsoleSessions
from points_service.adapters.redis_state import RedisState
from points_service.adapters.rule_files import (
    RuleFiles,
    load_abuse_file,
    load_award_file,
    load_board_dir,
    load_draw_file,
    load_level_file,
    load_population_file,
    load_target_file,
)
from points_service.adapters.script_pipeline import ScriptPipeline
from points_service.adapters.sql.abuse import SqlAbuse
from points_service.adapters.sql.draws import SqlDraws
from points_service.adapters.sql.engine import database_url
from points_service.adapters.sql.history import SqlStateHistory
from points_service.adapters.sql.institutions import SqlAwardTotals, SqlInstitutions
from points_service.adapters.sql.ledger import SqlLedger, open_ledger
from points_service.adapters.sql.profiles import SqlLedgerTotals, SqlProfiles, SqlStandings
from points_service.adapters.sql.reports import SqlReports
from points_service.domain.calendar import Calendar
from points_service.services.abuse import Abuse, Scan
from points_service.services.account import Accounts
from points_service.services.awards import Awards
from points_service.services.credit import Credits
from points_service.services.draws import DrawCatalogue, Lottery
from points_service.services.institutions import Institutions
from points_service.services.leaderboards import BoardFilter, Leaderboards
from points_service.services.profiles import Profiles
from points_service.services.recovery import StateRecovery
from points_service.services.reports import Reports
from points_service.services.rulebook import RuleBook
from points_service.settings import Settings

_log = structlog.get_logger("points_service.recovery")
HEALTH_TIMEOUT = 2.0  # seconds a health check waits for Redis or the database
RECOVERY_LOCK_SECONDS = 3600  # a recovery that died frees the others after this


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    settings: Settings
    redis: RedisClient
    ledger: SqlLedger
    state: RedisState
    rules: RuleBook
    credits: Credits
    accounts: Accounts
    metrics: Metrics
    leaderboards: Leaderboards
    profiles: Profiles
    institutions: Institutions
    awards: Awards
    abuse: Abuse
    reports: Reports
    recovery: StateRecovery
    limits: RedisLimits
    board_store: RedisBoards  # the boards in Redis, and the locks every process shares
    sessions: ConsoleSessions  # the staff console's sign-ins
    lottery: Lottery
    embedded: EmbeddedRedis | None = None
    # Whether Redis is the embedded server (started here, or by `serve` for its workers).
    redis_embedded: bool = False
    _reloads_seen: int | None = None  # the announced reload count this process last saw

    @classmethod
    async def start(
        cls, settings: Settings, registry: CollectorRegistry | None = None
    ) -> "Runtime":
        metrics = Metrics(registry or CollectorRegistry())
        boards = load_board_dir(settings.leaderboards_dir)
        files = RuleFiles(settings.rules_dir, settings.data_dir / "rules-last-good")
        rules = RuleBook(files.load, metrics, fallback=files.load_last_good)
        embedded = None
        redis_url = settings.redis_url
        if redis_url is None:
            embedded = EmbeddedRedis(settings.data_dir)
            redis_url = embedded.start()
        redis = connect(redis_url, cluster=settings.redis_cluster)
        if settings.redis_cluster:
            await map_cluster(redis)
        metrics.watch_redis(redis)
        ledger = await open_ledger(
            database_url(settings.database_url, settings.data_dir),
            pool_size=settings.db_pool_size,
            sqlite_synchronous=settings.sqlite_synchronous,
            sqlite_writer=settings.sqlite_writer,
            command_timeout=settings.db_command_timeout,
        )
        ledger.on_batch = metrics.commit_observed
        ledger.on_failure = metrics.commit_failed
        metrics.watch_engine(ledger.engine)
        scripts = ScriptPipeline(redis, cluster=settings.redis_cluster)
        scripts.on_roundtrip = metrics.scripts_observed
        state = RedisState(
            redis,
            scripts=scripts,
            cluster=settings.redis_cluster,
            prefix=settings.redis_prefix,
            day_ttl_seconds=int(settings.day_ttl.total_seconds()),
            idem_ttl_seconds=int(settings.idempotency_ttl.total_seconds()),
        )
        calendar = Calendar.named(settings.timezone)
        recovery = StateRecovery(
            SqlStateHistory(ledger.engine), state, rules, calendar, settings.day_ttl, utc_now
        )
        # A state Redis does not hold is put back from the ledger before it is used.
        state.heal_from(recovery.load, metrics.states_restored)
        board_store = RedisBoards(
            redis, prefix=settings.redis_prefix, scripts=scripts, cluster=settings.redis_cluster
        )
        leaderboards = Leaderboards(
            board_store,
            SqlLedgerTotals(ledger.engine),
            boards,
            calendar,
            settings.grace,
            utc_now,
            metrics,
            SqlStandings(ledger.engine),
        )
        levels = load_level_file(settings.rules_dir)
        credits = Credits(
            state,
            ledger,
            rules,
            calendar,
            settings.grace,
            utc_now,
            metrics,
            leaderboards,
            per_informant=settings.rate_per_informant,
            levels=levels,
        )
        accounts = Accounts(state, ledger, calendar, utc_now, rules, leaderboards, levels)
        profiles = Profiles(SqlProfiles(ledger.engine), state, leaderboards, utc_now)
        institutions = Institutions(SqlInstitutions(ledger.engine), leaderboards, utc_now)
        abuse_store = SqlAbuse(ledger.engine)
        abuse = Abuse(abuse_store, load_abuse_file(settings.rules_dir), accounts, utc_now)
        awards = Awards(
            load_award_file(settings.rules_dir), SqlAwardTotals(ledger.engine), abuse_store.barred
        )
        reports = Reports(
            SqlReports(ledger.engine),
            leaderboards,
            utc_now,
            load_population_file(settings.rules_dir),
            load_target_file(settings.rules_dir),
        )
        draw_store = SqlDraws(ledger.engine)
        draw_state = RedisDraws(
            redis,
            state,
            scripts,
            prefix=settings.redis_prefix,
            record_ttl_seconds=int(settings.idempotency_ttl.total_seconds()),
            day_ttl_seconds=int(settings.day_ttl.total_seconds()),
            load_stock=draw_store.stock,
        )
        lottery = Lottery(
            DrawCatalogue(lambda: load_draw_file(settings.rules_dir)),
            draw_state,
            draw_store,
            ledger,
            calendar,
            utc_now,
            metrics,
        )
        # Seeds are made (and their sha256 published) before the windows open.
        await lottery.commit_upcoming()
        return cls(
            settings,
            redis,
            ledger,
            state,
            rules,
            credits,
            accounts,
            metrics,
            leaderboards,
            profiles,
            institutions,
            awards,
            abuse,
            reports,
            recovery,
            RedisLimits(scripts, settings.redis_prefix, settings.rate_per_key),
            board_store,
            ConsoleSessions(scripts, settings.redis_prefix, settings.console_session_seconds),
            lottery,
            embedded,
            redis_embedded=redis_url == EmbeddedRedis(settings.data_dir).url,
        )

    async def announce_reload(self) -> None:
        """Tell the other processes that the rule files were reloaded here."""
        self._reloads_seen = await self.state.announce("rules-reload")

    async def follow_reloads(self) -> bool:
        """Reload the rule files when another process announced a reload since the last
        look (the first look only notes where the count stands). True when it reloaded."""
        count = await self.state.announced("rules-reload")
        seen, self._reloads_seen = self._reloads_seen, count
        if seen is None or count == seen:
            return False
        result = self.rules.reload()
        log = _log.info if result.ok else _log.error
        log("rules_reload", ok=result.ok, version=result.version, announced=True)
        self.reload_draws()
        return True

    def reload_draws(self) -> bool:
        """rules/draws.toml again, with the rules; a broken file keeps the draws in force."""
        catalogue = self.lottery.catalogue
        ok = catalogue.reload()
        if ok:
            _log.info("draws_reload", ok=True, version=catalogue.current.version)
        else:
            _log.error("draws_reload", ok=False, problems=list(catalogue.problems))
        return ok

    async def recover_if_redis_lost(self) -> bool:
        """When Redis holds no marker of the service (new, flushed, or restarted without
        its files): copy every profile into it again, put back every informant's state
        that is missing, rebuild every board from the ledger and reconcile, then leave
        the marker. One worker of all does it (a lock). Until the marker is there every
        missing state is looked up in the ledger as it is used; once it is, a missing
        state is a new informant's (on one Redis node: see apply.lua). True when it ran."""
        if not self.settings.rebuild_on_redis_loss or await self.state.marked():
            return False
        if not await self.board_store.try_lock("recover", RECOVERY_LOCK_SECONDS):
            return False
        started = time.perf_counter()
        try:
            profiles = await self.profiles.sync_mirror()
            states = await self.recovery.rebuild()
            report = await self.leaderboards.rebuild(BoardFilter())
            differences = await self.leaderboards.reconcile(BoardFilter())
            await self.state.mark(utc_now().isoformat())
        finally:
            await self.board_store.release("recover")
        _log.warning(
            "redis_marker_missing_rebuilt",
            profiles=profiles,
            states=states.written,
            boards=report.boards,
            members=report.members,
            differences=len(differences),
            seconds=round(time.perf_counter() - started, 3),
        )
        return True

    async def scan_abuse(self) -> Scan | None:
        """One anti-abuse scan, by one process of all at a time (None: another's turn)."""
        every = self.abuse.thresholds.scan_every_seconds
        if not await self.board_store.try_lock("abuse-scan", max(every - 1, 1)):
            return None
        scan = await self.abuse.scan()
        self.metrics.abuse_scanned(scan.new, scan.seconds)
        if scan.new:
            _log.warning("abuse_flagged", flags=scan.new, events=scan.events)
        return scan

    async def count_today(self) -> None:
        """The programme's figures for today, into the gauges (the dashboard's numbers)."""
        self.metrics.programme_today(await self.reports.today())

    async def check_health(self) -> tuple[bool, bool]:
        """Ping Redis and the database; the gauges say what was found."""
        timeout = HEALTH_TIMEOUT
        started = time.perf_counter()
        try:
            redis_ok = await asyncio.wait_for(self.state.ping(), timeout)
        except Exception:
            redis_ok = False
        self.metrics.redis_observed("ping", time.perf_counter() - started, redis_ok)
        try:
            await asyncio.wait_for(self.ledger.ping(), timeout)
            database_ok = True
        except Exception:
            database_ok = False
        embedded = None
        if self.redis_embedded:
            try:
                aof_ok = redis_ok and await asyncio.wait_for(self.state.append_only_ok(), timeout)
            except Exception:
                aof_ok = False
            embedded = (redis_ok, aof_ok)
        self.metrics.health(redis_ok, database_ok, embedded)
        return redis_ok, database_ok

    async def stop(self) -> None:
        await self.limits.close()
        await self.abuse.close()
        await self.ledger.stop()
        await self.leaderboards.drain()
        await self.state.close()
        await self.redis.aclose()
        if self.embedded is not None:
            self.embedded.stop()
