"""The ledger's tables. Alembic migrations (migrations/versions) create them; keep both
in step. Amounts are integers; timestamps are stored with their zone.
"""

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect

metadata = MetaData()


class UtcDateTime(TypeDecorator[datetime]):
    """Aware datetimes in and out; SQLite keeps no zone, so its values are read as UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


# The predicate of uq_ledger_kind_ref; an ON CONFLICT on it names it to use the index.
NOT_CREDIT = "kind <> 'credit'"

# SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid alias).
BigId = BigInteger().with_variant(Integer(), "sqlite")

events = Table(
    "events",
    metadata,
    Column("event_id", String(128), primary_key=True),
    Column("informant_id", String(64), nullable=False),
    Column("action", String(16), nullable=False),
    Column("occurred_at", UtcDateTime(), nullable=False),
    Column("received_at", UtcDateTime(), nullable=False),
    Column("day", Date, nullable=False),
    Column("content_id", String(128)),
    Column("share_id", String(128)),
    Column("viewer_id", String(128)),
    Column("attributes", JSON),
    Column("body_hash", String(32), nullable=False),
    Column("points", Integer, nullable=False),
    Column("shares", Integer, nullable=False),
    Column("share_views", Integer, nullable=False),
    Column("posts", Integer, nullable=False),
    Column("late", Boolean, nullable=False),
    Column("imported", Boolean, nullable=False),
    Column("rule_version", String(16), nullable=False),
    Column("decision", LargeBinary, nullable=False),
    # Where the informant belonged when the event was credited (the boards it counted on).
    Column("province", String(6)),
    Column("city", String(6)),
    Column("county", String(6)),
    Column("institution_id", String(64)),
    Index("ix_events_informant_day", "informant_id", "day"),
    Index("ix_events_day", "day"),
    Index("ix_events_received", "received_at"),  # the anti-abuse scan
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("informant_id", String(64), nullable=False),
    Column("kind", String(16), nullable=False),  # credit | reversal | redemption
    Column("ref_id", String(128), nullable=False),  # event id or redemption id
    Column("points", Integer, nullable=False),  # signed: credits up, the rest down
    Column("day", Date),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("rule_version", String(16)),
    Column("detail", String(256)),
    Column("body_hash", String(32)),  # redemptions: what makes a retry the same request
    # One entry per kind and reference, except credits: a credit is written only with
    # its event, in the same transaction, so the events key makes it one per event
    # already, and a second index over every credit's random key cost each commit a
    # B-tree of its own (migration 0007).
    Index(
        "uq_ledger_kind_ref",
        "kind",
        "ref_id",
        unique=True,
        sqlite_where=text(NOT_CREDIT),
        postgresql_where=text(NOT_CREDIT),
    ),
    Index("ix_ledger_informant_id", "informant_id", "id"),
)

balances = Table(
    "balances",
    metadata,
    Column("informant_id", String(64), primary_key=True),
    Column("balance", BigInteger, nullable=False),
    Column("earned", BigInteger, nullable=False),
    Column("spent", BigInteger, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

# Per informant, day and placement ('' for none): what on-time, unreversed events added.
# Kept in the commit that records the events (and the one that reverses them).
informant_days = Table(
    "informant_days",
    metadata,
    Column("informant_id", String(64), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("province", String(6), primary_key=True),
    Column("city", String(6), primary_key=True),
    Column("county", String(6), primary_key=True),
    Column("institution_id", String(64), primary_key=True),
    Column("events", Integer, nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("shares", Integer, nullable=False),
    Column("share_views", Integer, nullable=False),
    Column("posts", Integer, nullable=False),
    Index("ix_informant_days_day", "day"),
)

informants = Table(
    "informants",
    metadata,
    Column("informant_id", String(64), primary_key=True),
    Column("name", String(64)),
    Column("province", String(6)),
    Column("city", String(6)),
    Column("county", String(6)),
    Column("unit_name", String(128)),
    Column("type", String(16)),
    Column("institution_id", String(64)),
    Column("certified", Boolean, nullable=False),
    Column("registered_at", UtcDateTime()),
    Column("status", String(8), nullable=False),  # active | hidden | banned
    Column("updated_at", UtcDateTime(), nullable=False),
    Index("ix_informants_institution", "institution_id"),
    Index("ix_informants_county", "county"),
)

institutions = Table(
    "institutions",
    metadata,
    Column("institution_id", String(64), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("province", String(6)),
    Column("city", String(6)),
    Column("county", String(6)),
    Column("contact", String(128)),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

closed_boards = Table(
    "closed_boards",
    metadata,
    Column("metric", String(16), primary_key=True),
    Column("scope", String(80), primary_key=True),
    Column("period", String(24), primary_key=True),
    Column("members", Integer, nullable=False),
    Column("closed_at", UtcDateTime(), nullable=False),
)

board_standings = Table(
    "board_standings",
    metadata,
    Column("metric", String(16), primary_key=True),
    Column("scope", String(80), primary_key=True),
    Column("period", String(24), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("rank", Integer, nullable=False),
    Column("informant_id", String(64), nullable=False),
    Column("score", BigInteger, nullable=False),
)

abuse_flags = Table(
    "abuse_flags",
    metadata,
    Column("flag_id", BigId, primary_key=True, autoincrement=True),
    Column("informant_id", String(64), nullable=False),
    Column("kind", String(24), nullable=False),
    Column("subject", String(128), nullable=False),  # a share id, a viewer id, or ""
    Column("window_start", UtcDateTime(), nullable=False),
    Column("window_end", UtcDateTime(), nullable=False),
    Column("evidence", JSON, nullable=False),
    Column("status", String(8), nullable=False),  # open | cleared | reversed
    Column("detected_at", UtcDateTime(), nullable=False),
    Column("resolved_at", UtcDateTime()),
    Column("resolved_by", String(64)),
    Column("note", String(512)),
    Index("ix_abuse_flags_informant", "informant_id", "kind", "subject"),
    Index("ix_abuse_flags_status", "status", "flag_id"),
)

# The lottery: each draw's seed and the definition committed with it, and every outcome
# in the order it was given (seq), beside its ledger entries (kind draw and prize).
draw_seeds = Table(
    "draw_seeds",
    metadata,
    Column("draw", String(64), primary_key=True),
    Column("seed", String(64), nullable=False),  # hex; revealed once the window closes
    Column("seed_sha256", String(64), nullable=False),  # the published commitment
    Column("definition", LargeBinary, nullable=False),  # the draw's JSON, as committed
    Column("definition_sha256", String(64), nullable=False),
    Column("committed_at", UtcDateTime(), nullable=False),
)

draws = Table(
    "draws",
    metadata,
    Column("draw_id", String(128), primary_key=True),
    Column("draw", String(64), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("informant_id", String(64), nullable=False),
    Column("pick", BigInteger, nullable=False),
    Column("prize", String(64), nullable=False),
    Column("points", Integer, nullable=False),  # credited by a points prize
    Column("fallback", Boolean, nullable=False),
    Column("cost", Integer, nullable=False),
    Column("balance", BigInteger, nullable=False),  # after the draw, as first answered
    Column("body_hash", String(32), nullable=False),
    Column("day", Date, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    UniqueConstraint("draw", "seq", name="uq_draws_draw_seq"),
)
