"""Nominations and monthly reports at scale: timed on PostgreSQL with generated rollups.

    .venv/bin/python bench/report_load.py [--informants 100000] [--days 40]

Writes `--informants` profiles (certified, five cities and 25 counties of Ningxia, 200
institutions) and, for each, `--days` active days spread over one year into the daily
rollups (what the credit path keeps with every commit: one row per informant and
day), then times the `top_ten` and `outstanding` nominations for the year and the
province's monthly report (with its cities ranked) through the service's own objects.
Rewrites the "Nominations and reports" section of bench/RESULTS.md.
"""

import argparse
import asyncio
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from prometheus_client import CollectorRegistry

sys.path.insert(0, str(Path(__file__).resolve().parent))
import credit_load as cl

from points_service.runtime import Runtime
from points_service.settings import load_settings

TARGET_SECONDS = 10.0

_PROFILES = """
INSERT INTO informants (informant_id, name, province, city, county, unit_name, type,
                        institution_id, certified, registered_at, status, updated_at)
SELECT 'inf' || g, '信息员' || g, '640000', '6401' || lpad((g % 5 + 1)::text, 2, '0'),
       '6401' || lpad((g % 5 + 1)::text, 2, '0'), NULL, 'individual', 'i' || (g % 200),
       true, timestamptz '2025-01-01' - (g % 400) * interval '1 day', 'active', now()
FROM generate_series(1, $1) AS g
"""
# Each informant active on `days` days of 2025, a few shares and a post or two each day.
_ROLLUPS = """
INSERT INTO informant_days (informant_id, day, province, city, county, institution_id,
                            events, points, shares, share_views, posts)
SELECT 'inf' || g, date '2025-01-01' + ((g * 7 + d * 9) % 365), '640000',
       '6401' || lpad((g % 5 + 1)::text, 2, '0'), '6401' || lpad((g % 5 + 1)::text, 2, '0'),
       'i' || (g % 200), 5, 9 + (g + d) % 7, 2 + (g + d) % 4, (g * d) % 5, (g + d) % 2
FROM generate_series(1, $1) AS g, generate_series(1, $2) AS d
ON CONFLICT DO NOTHING
"""


async def _timed(label: str, run: object) -> tuple[str, float, int]:
    started = time.perf_counter()
    rows = await run  # type: ignore[misc]
    return label, time.perf_counter() - started, rows


async def measure(env: dict[str, str]) -> list[tuple[str, float, int]]:
    runtime = await Runtime.start(load_settings(env), CollectorRegistry())
    try:

        async def nominations(award: str) -> int:
            return len((await runtime.awards.nominations(award, 2025, "all")).rows)

        async def report() -> int:
            return len((await runtime.reports.monthly("2025-06", "640000", None)).children)

        return [
            await _timed("top_ten nominations, 2025", nominations("top_ten")),
            await _timed("outstanding nominations, 2025", nominations("outstanding")),
            await _timed("monthly report, province with its cities", report()),
        ]
    finally:
        await runtime.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--informants", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=40)
    args = parser.parse_args()
    started = datetime.now(UTC)
    with cl.postgres_database(f"bench_report_{os.getpid()}") as url:
        env = dict(os.environ) | {
            "DATABASE_URL": url,
            "REDIS_URL": f"redis://{cl.HOST}:{cl.REDIS_PORT}/0",
            "POINTS_REDIS_PREFIX": f"breport{os.getpid()}",
            "POINTS_DATA_DIR": "/tmp",
            "POINTS_LOG_LEVEL": "WARNING",
        }

        async def fill() -> int:
            await asyncio.to_thread(
                lambda: os.system(f"env DATABASE_URL={url} {cl.SERVICE} migrate")
            )
            conn = await asyncpg.connect(url)
            try:
                await conn.execute(_PROFILES, args.informants)
                await conn.execute(_ROLLUPS, args.informants, args.days)
                await conn.execute("ANALYZE")
                return int(await conn.fetchval("SELECT count(*) FROM informant_days"))
            finally:
                await conn.close()

        cl._step(f"writing {args.informants:,} profiles and their rollups")
        rows = asyncio.run(fill())
        cl._step("timing nominations and the monthly report")
        timings = asyncio.run(measure(env))
    lines = [
        "## Nominations and reports",
        "",
        f"- Date: {started:%Y-%m-%d %H:%M} UTC; command: "
        f"`bench/report_load.py {' '.join(sys.argv[1:])}`",
        f"- Machine: nproc {os.cpu_count()}, {cl._cpu_model()}; PostgreSQL 15 on the same machine",
        f"- {args.informants:,} informants, {rows:,} daily rollup rows (one per informant "
        f"and active day; {args.days} active days each over 2025; five events a row, so "
        f"{rows * 5:,} ledger events), written straight into PostgreSQL",
        "",
        "| measure | seconds | rows | target | met |",
        "|---|---|---|---|---|",
    ]
    for label, seconds, count in timings:
        met = "yes" if seconds < TARGET_SECONDS else "**no**"
        lines.append(f"| {label} | {seconds:.2f} | {count:,} | < {TARGET_SECONDS:.0f} s | {met} |")
    text = "\n".join(lines) + "\n"
    print(text)
    cl.write_results("## Nominations and reports", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
