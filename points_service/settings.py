"""Settings, read once and explicitly from an environment mapping: `load_settings(os.environ)`.

Nothing reads the environment at import time, so tests build their own settings.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path


class SettingsError(ValueError):
    pass


MAX_BATCH_CEILING = 10_000


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    data_dir: Path = Path("var")
    redis_url: str | None = None  # None: start the embedded Redis in data_dir
    redis_prefix: str = "ps"
    redis_cluster: bool = False  # REDIS_URL names one node of a Redis Cluster
    database_url: str | None = None  # None: SQLite file in data_dir
    rules_dir: Path = Path("rules")
    leaderboards_dir: Path = Path("leaderboards")
    timezone: str = "Asia/Shanghai"
    grace: timedelta = timedelta(hours=72)
    log_level: str = "INFO"
    log_format: str = "auto"  # auto (console on a terminal, JSON otherwise) | json | console
    access_log: bool = True
    log_informants: str = "hash"  # hash (a keyed hash on log lines) | omit
    log_salt: str | None = None  # the hash's key; None: one made in data_dir
    db_pool_size: int = 10
    # Seconds a PostgreSQL credit write may wait for its answer; past it a 503, and the
    # write, which may have committed, is made again when the database answers.
    db_command_timeout: float = 10.0
    # Seconds a worker serves an encoded top-of-board page again (0: never). Every reader
    # of a county's top 100 sees the same page; it may lag the board by this much.
    board_page_ttl: float = 1.0
    sqlite_synchronous: str = "NORMAL"  # NORMAL survives a killed process; FULL power loss
    # Where SQLite credit transactions run: "process" (a child of each worker, off the
    # event loop) or "loop" (on the worker's event loop).
    sqlite_writer: str = "process"
    # When Redis turns out to have lost its data (its marker key is gone), rebuild the
    # leaderboards and the profiles' copy from the ledger by themselves. Informants'
    # state is put back as it is used, whatever this says.
    rebuild_on_redis_loss: bool = True
    api_keys_file: Path | None = None  # None: api-keys.toml in data_dir
    api_keys: str | None = None  # the same entries as JSON (POINTS_API_KEYS)
    # Requests per second one API key may make (every worker and pod together, counted
    # in Redis); past it, 429 with Retry-After. 0: no limit.
    rate_per_key: int = 10_000
    # New events one informant may send per minute (retries of an event do not count;
    # history imports are not limited); past it, 429 with Retry-After. 0: no limit.
    rate_per_informant: int = 120
    max_body_bytes: int = 4 * 1024 * 1024  # any request body
    max_event_bytes: int = 64 * 1024  # one event's body on POST /v1/events
    # Seconds a signed request's timestamp may differ from the service's clock.
    signature_window: int = 300
    max_batch: int = 1000  # events in one POST /v1/events/batch (at most MAX_BATCH_CEILING)
    console_session_seconds: int = 8 * 3600  # a staff console sign-in lasts this long
    # The console's cookies are `Secure` (sent over HTTPS only; browsers also keep them
    # for http://localhost and 127.0.0.1). Off only behind a plain-HTTP proxy on a LAN.
    console_secure_cookie: bool = True

    @property
    def keys_file(self) -> Path:
        return self.api_keys_file or self.data_dir / "api-keys.toml"

    @property
    def idempotency_ttl(self) -> timedelta:
        """How long Redis keeps an event's decision; the SQL ledger keeps it for ever."""
        return self.grace + timedelta(days=1)

    @property
    def day_ttl(self) -> timedelta:
        """Day counters outlive the last day on which an event may still count."""
        return self.grace + timedelta(days=2)


def _int(environ: Mapping[str, str], name: str, default: int, low: int = 0) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if value < low:
        raise SettingsError(f"{name} must be at least {low}, got {value}")
    return value


def _bool(environ: Mapping[str, str], name: str, default: bool) -> bool:
    raw = environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def load_settings(environ: Mapping[str, str]) -> Settings:
    log_format = environ.get("POINTS_LOG_FORMAT", "auto")
    if log_format not in {"auto", "json", "console"}:
        raise SettingsError(f"POINTS_LOG_FORMAT must be auto, json or console, got {log_format!r}")
    sqlite_synchronous = environ.get("POINTS_SQLITE_SYNCHRONOUS", "NORMAL").upper()
    if sqlite_synchronous not in {"NORMAL", "FULL"}:
        raise SettingsError(
            f"POINTS_SQLITE_SYNCHRONOUS must be NORMAL or FULL, got {sqlite_synchronous!r}"
        )
    log_informants = environ.get("POINTS_LOG_INFORMANTS", "hash").lower()
    if log_informants not in {"hash", "omit"}:
        raise SettingsError(f"POINTS_LOG_INFORMANTS must be hash or omit, got {log_informants!r}")
    sqlite_writer = environ.get("POINTS_SQLITE_WRITER", "process").lower()
    if sqlite_writer not in {"process", "loop"}:
        raise SettingsError(f"POINTS_SQLITE_WRITER must be process or loop, got {sqlite_writer!r}")
    return Settings(
        host=environ.get("POINTS_HOST", "127.0.0.1"),
        port=_int(environ, "POINTS_PORT", 8000),
        workers=_int(environ, "POINTS_WORKERS", 1, low=1),
        data_dir=Path(environ.get("POINTS_DATA_DIR", "var")),
        redis_url=environ.get("REDIS_URL") or None,
        redis_prefix=environ.get("POINTS_REDIS_PREFIX", "ps"),
        redis_cluster=_bool(environ, "POINTS_REDIS_CLUSTER", False),
        database_url=environ.get("DATABASE_URL") or None,
        rules_dir=Path(environ.get("POINTS_RULES_DIR", "rules")),
        leaderboards_dir=Path(environ.get("POINTS_LEADERBOARDS_DIR", "leaderboards")),
        timezone=environ.get("POINTS_TIMEZONE", "Asia/Shanghai"),
        grace=timedelta(hours=_int(environ, "POINTS_GRACE_HOURS", 72)),
        log_level=environ.get("POINTS_LOG_LEVEL", "INFO").upper(),
        log_format=log_format,
        access_log=_bool(environ, "POINTS_ACCESS_LOG", True),
        log_informants=log_informants,
        log_salt=environ.get("POINTS_LOG_SALT") or None,
        db_pool_size=_int(environ, "POINTS_DB_POOL_SIZE", 10, low=1),
        db_command_timeout=_int(environ, "POINTS_DB_COMMAND_TIMEOUT_MS", 10_000, low=100) / 1000,
        board_page_ttl=_int(environ, "POINTS_BOARD_PAGE_TTL_MS", 1000) / 1000,
        sqlite_synchronous=sqlite_synchronous,
        sqlite_writer=sqlite_writer,
        rebuild_on_redis_loss=_bool(environ, "POINTS_REBUILD_ON_REDIS_LOSS", True),
        api_keys_file=Path(environ["POINTS_API_KEYS_FILE"])
        if environ.get("POINTS_API_KEYS_FILE")
        else None,
        api_keys=environ.get("POINTS_API_KEYS") or None,
        rate_per_key=_int(environ, "POINTS_RATE_PER_KEY", 10_000),
        rate_per_informant=_int(environ, "POINTS_RATE_PER_INFORMANT", 120),
        max_body_bytes=_int(environ, "POINTS_MAX_BODY_BYTES", 4 * 1024 * 1024, low=1024),
        max_event_bytes=_int(environ, "POINTS_MAX_EVENT_BYTES", 64 * 1024, low=1024),
        max_batch=_max_batch(environ),
        signature_window=_int(environ, "POINTS_SIGNATURE_WINDOW_SECONDS", 300, low=1),
        console_session_seconds=60 * _int(environ, "POINTS_CONSOLE_SESSION_MINUTES", 480, low=1),
        console_secure_cookie=_bool(environ, "POINTS_CONSOLE_SECURE_COOKIE", True),
    )


def _max_batch(environ: Mapping[str, str]) -> int:
    value = _int(environ, "POINTS_MAX_BATCH", 1000, low=1)
    if value > MAX_BATCH_CEILING:
        raise SettingsError(f"POINTS_MAX_BATCH must be at most {MAX_BATCH_CEILING}, got {value}")
    return value
