"""A load with a fault in the middle of it, and the figures of what it did.

`FaultLoad` sends a fixed list of events to a server in a real process, each once, from
32 senders at once, while a fault runs beside it (a coroutine of the test's: cut a proxy
and restore it, kill the server and start it again). A sender that gets no 2xx notes
what it got and backs off a little before its next event, so that a fault of a second or
two meets a few hundred requests. Once the fault is over, every event not acknowledged
is sent again (honouring Retry-After) until all are. Then the ledger is read straight
from its SQL tables and compared with what the service acknowledged and with what the
pure engine says every informant should have.

The HTTP client is a small keep-alive HTTP/1.1 one of its own: httpx spent five times
the CPU of the service on each request, and the two share the test machine's cores.
"""

import asyncio
import random
import time
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import func, select

from points_service.adapters.sql.engine import create_engine, database_url
from points_service.adapters.sql.tables import balances, events, ledger_entries
from points_service.domain.engine import InformantState, decide, plan_event
from points_service.domain.events import Event
from points_service.settings import Settings
from tests.conftest import AUTH, FAULT_FIGURES
from tests.http.server import ServerProcess
from tests.unit.test_engine import GRACE, RULES, SHANGHAI

SENDERS = 32
NO_ANSWER = 0  # the status noted when the connection was refused or dropped, or timed out


def backend(settings: Settings) -> str:
    return "postgres" if settings.database_url else "sqlite"


def make_events(run: str, count: int = 3000) -> list[dict[str, Any]]:
    """`count` events of 150 informants, every action of the default rules, ids prefixed
    with `run` (the test's Redis prefix, which the ledger queries filter on)."""
    rng = random.Random(7)
    at = datetime.now(UTC).isoformat()
    out = []
    for n in range(count):
        who = f"{run}-u{rng.randrange(150)}"
        action = rng.choice(["browse", "share", "post", "like", "login", "share_view"])
        e: dict[str, Any] = {
            "event_id": f"{run}-e{n}",
            "informant_id": who,
            "action": action,
            "occurred_at": at,
        }
        if action == "share_view":
            e |= {"share_id": f"s{rng.randrange(5)}", "viewer_id": f"v{rng.randrange(40)}"}
        elif action != "login":
            e["content_id"] = f"c{rng.randrange(30)}"
        out.append(e)
    return out


async def ledger_view(settings: Settings) -> tuple[set[str], dict[str, int], dict[str, int]]:
    """The run's event ids in the ledger, each informant's sum of entries, and each
    informant's row in the balances table."""
    engine = create_engine(database_url(settings.database_url, settings.data_dir))
    prefix = settings.redis_prefix
    try:
        async with engine.connect() as conn:
            ids = {
                r[0]
                for r in await conn.execute(
                    select(events.c.event_id).where(events.c.event_id.like(f"{prefix}%"))
                )
            }
            sums = {
                r[0]: int(r[1])
                for r in await conn.execute(
                    select(ledger_entries.c.informant_id, func.sum(ledger_entries.c.points))
                    .where(ledger_entries.c.informant_id.like(f"{prefix}%"))
                    .group_by(ledger_entries.c.informant_id)
                )
            }
            held = {
                r[0]: int(r[1])
                for r in await conn.execute(
                    select(balances.c.informant_id, balances.c.balance).where(
                        balances.c.informant_id.like(f"{prefix}%")
                    )
                )
            }
    finally:
        await engine.dispose()
    return ids, sums, held


async def entries_twice(settings: Settings) -> int:
    """Events of the run with more than one credit entry in the ledger."""
    engine = create_engine(database_url(settings.database_url, settings.data_dir))
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(ledger_entries.c.ref_id)
                .where(
                    ledger_entries.c.kind == "credit",
                    ledger_entries.c.ref_id.like(f"{settings.redis_prefix}%"),
                )
                .group_by(ledger_entries.c.ref_id)
                .having(func.count() > 1)
            )
            return len(rows.all())
    finally:
        await engine.dispose()


def expected_balances(batch: list[dict[str, Any]]) -> dict[str, int]:
    """Each informant's balance by the pure engine, the events taken in list order (all
    on one day: under the default rules the order does not change the totals)."""
    states: dict[str, InformantState] = {}
    for raw in batch:
        e = msgspec.convert(raw, Event)
        plan = plan_event(e, RULES, SHANGHAI, e.occurred_at, GRACE)
        decide(plan, states.setdefault(e.informant_id, InformantState()))
    return {who: s.balance for who, s in states.items() if s.balance}


class Connection:
    """One keep-alive HTTP/1.1 connection to the service (which always answers with a
    Content-Length)."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def request(
        self, method: str, path: str, body: bytes = b""
    ) -> tuple[int, dict[str, str], bytes]:
        if self._streams is None:
            self._streams = await asyncio.open_connection("127.0.0.1", self._port)
        reader, writer = self._streams
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: {AUTH['Authorization']}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        try:
            writer.write(head.encode() + body)
            lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            headers = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in lines[1:] if line)
            }
            payload = await reader.readexactly(int(headers["content-length"]))
        except BaseException:
            self.close()
            raise
        if headers.get("connection", "").lower() == "close":
            self.close()
        return int(lines[0].split()[1]), headers, payload

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


@dataclass
class Round:
    """One fault of several (a kill): what was acknowledged before it, and how it went."""

    acknowledged: int
    lost: int
    restarted_in: float
    recovered_in: float | None = None


@dataclass
class Figures:
    label: str
    sent: int = 0
    acknowledged: int = 0  # during the load with the fault, before the retries
    refused: int = 0  # 503s
    without_retry_after: int = 0  # 503s that did not say when to come back
    other: Counter[int] = field(default_factory=Counter)  # other non-2xx answers
    no_answer: int = 0  # refused or dropped connections, timeouts
    retried: int = 0  # events sent again after the fault
    retry_requests: int = 0
    lost: int = 0  # acknowledged, yet not in the ledger
    doubled: int = 0  # more than one entry for an event, or more than the engine's balance
    short: int = 0  # informants with less in the ledger than the engine says
    # From the restore to the first 2xx of a request sent after it (the worst of rounds).
    recovered_in: float | None = None
    took: float = 0.0
    rounds: list[Round] = field(default_factory=list)

    def line(self) -> str:
        recovered = "never" if self.recovered_in is None else f"in {self.recovered_in:.2f} s"
        text = (
            f"{self.label}: sent {self.sent}, acknowledged {self.acknowledged}, "
            f"503s {self.refused} ({self.without_retry_after} without Retry-After), "
            f"other non-2xx {sum(self.other.values())}, no answer {self.no_answer}, "
            f"retried {self.retried} ({self.retry_requests} requests), lost {self.lost}, "
            f"credited twice {self.doubled}, recovered {recovered}, took {self.took:.1f} s"
        )
        for n, r in enumerate(self.rounds, 1):
            after = "-" if r.recovered_in is None else f"{r.recovered_in:.2f} s"
            text += (
                f"\n    kill {n}: after {r.acknowledged} acknowledged, lost {r.lost}, "
                f"restarted in {r.restarted_in:.2f} s, first 2xx {after} after the restart"
            )
        return text


class FaultLoad:
    def __init__(
        self, port: int, batch: list[dict[str, Any]], label: str, pause: float = 0.1
    ) -> None:
        self._port = port
        self.batch = batch
        self.seen: dict[str, list[int]] = {e["event_id"]: [] for e in batch}
        self.acked: set[str] = set()
        self.figures = Figures(label, sent=len(batch))
        self._pause = pause
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._restored_at: float | None = None
        self._started = time.monotonic()

    async def acknowledged(self, count: int) -> None:
        """Returns once `count` events are acknowledged."""
        if len(self.acked) >= count:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append((count, waiter))
        await waiter

    def restored(self) -> None:
        """The fault is over: the time to recovery counts from now."""
        self._restored_at = time.monotonic()

    async def kill_and_restart(self, server: ServerProcess, ledger: Settings) -> None:
        """SIGKILL, a look at the ledger while the server is dead, and a restart."""
        await asyncio.to_thread(server.kill)
        acknowledged = len(self.acked)
        lost = await self.lost_now(ledger)
        started = time.monotonic()
        await asyncio.to_thread(server.start)
        self.figures.rounds.append(Round(acknowledged, lost, time.monotonic() - started))
        self.restored()

    async def run(self, fault: Coroutine[Any, Any, None]) -> None:
        """Every event once, with `fault` running beside the senders; returns when both
        are done (the fault must end with `restored()`)."""
        queue = list(reversed(self.batch))
        fault_task = asyncio.create_task(fault)
        await asyncio.gather(*(self._send(queue, retrying=False) for _ in range(SENDERS)))
        await asyncio.wait_for(fault_task, 60)  # a fault still waiting for its moment fails
        self.figures.acknowledged = len(self.acked)

    async def retry(self, deadline: float = 60) -> None:
        """Every event not acknowledged, again and again until all are."""
        until = time.monotonic() + deadline
        left = [e for e in self.batch if e["event_id"] not in self.acked]
        self.figures.retried = len(left)
        while left:
            assert time.monotonic() < until, f"{len(left)} events still refused"
            queue = list(reversed(left))
            await asyncio.gather(*(self._send(queue, retrying=True) for _ in range(SENDERS)))
            left = [e for e in left if e["event_id"] not in self.acked]
        self.figures.took = time.monotonic() - self._started

    async def _send(self, queue: list[dict[str, Any]], retrying: bool) -> None:
        conn = Connection(self._port)
        try:
            while queue:
                e = queue.pop()
                await self._one(conn, e, retrying)
        finally:
            conn.close()

    async def _one(self, conn: Connection, e: dict[str, Any], retrying: bool) -> None:
        figures = self.figures
        if retrying:
            figures.retry_requests += 1
        sent_at = time.monotonic()
        try:
            async with asyncio.timeout(10):
                status, headers, _ = await conn.request(
                    "POST", "/v1/events", msgspec.json.encode(e)
                )
        except (OSError, EOFError, TimeoutError):
            self.seen[e["event_id"]].append(NO_ANSWER)
            figures.no_answer += 1
            await asyncio.sleep(self._pause)
            return
        self.seen[e["event_id"]].append(status)
        if status == 200:
            self._acknowledge(e["event_id"], sent_at)
            return
        wait = self._pause
        if status == 503:
            figures.refused += 1
            after = headers.get("retry-after", "")
            if not after.isdigit():
                figures.without_retry_after += 1
            elif retrying:
                wait = int(after)
        else:
            figures.other[status] += 1
        await asyncio.sleep(wait)

    def _acknowledge(self, event_id: str, sent_at: float) -> None:
        self.acked.add(event_id)
        if self._restored_at is not None and sent_at >= self._restored_at:
            delay = time.monotonic() - self._restored_at
            self._restored_at = None
            figures = self.figures
            figures.recovered_in = max(figures.recovered_in or 0.0, delay)  # the worst
            if figures.rounds:
                figures.rounds[-1].recovered_in = delay
        for count, waiter in list(self._waiters):
            if len(self.acked) >= count and not waiter.done():
                waiter.set_result(None)
                self._waiters.remove((count, waiter))

    async def exercise(
        self, fault: Coroutine[Any, Any, None], server: ServerProcess, ledger: Settings
    ) -> None:
        """The whole of it: the load with `fault` beside it, the retries, the ledger
        (through `ledger`'s database) and the service's own balances, then the server
        stopped. Asserts what every fault must leave: nothing lost or credited twice,
        every balance the engine's, in the ledger and in Redis alike (no partial
        credit), a Retry-After on every 503 and no other refusal."""
        try:
            await self.run(fault)
            await self.retry()
            sums = await self.check(ledger)
            answered = await self.service_balances()
        finally:
            server.stop()
        figures = self.figures
        assert (figures.lost, figures.doubled, figures.short) == (0, 0, 0), figures.line()
        assert (figures.without_retry_after, figures.other) == (0, {}), figures.line()
        assert sums == expected_balances(self.batch)
        assert answered == {who: sums.get(who, 0) for who in answered}

    async def lost_now(self, ledger: Settings) -> int:
        """Acknowledged events the ledger does not hold (the server may be dead)."""
        ids, _, _ = await ledger_view(ledger)
        return len(self.acked - ids)

    async def check(self, ledger: Settings) -> dict[str, int]:
        """Fills in lost, credited twice and short from the ledger (read through
        `ledger`'s database); returns each informant's sum of ledger entries."""
        ids, sums, held = await ledger_view(ledger)
        expected = expected_balances(self.batch)
        figures = self.figures
        figures.lost = len(self.acked - ids)
        figures.doubled = await entries_twice(ledger) + sum(
            1 for who, points in sums.items() if points > expected.get(who, 0)
        )
        figures.short = sum(1 for who, points in expected.items() if sums.get(who, 0) < points)
        FAULT_FIGURES.append(figures.line())
        assert ids == set(self.seen), f"{len(set(self.seen) - ids)} events not in the ledger"
        assert sums == held, "the balances table disagrees with the ledger's entries"
        return sums

    async def service_balances(self) -> dict[str, int]:
        """Each informant's balance as the service answers it (from Redis)."""
        conn = Connection(self._port)
        out: dict[str, int] = {}
        try:
            for who in sorted({e["informant_id"] for e in self.batch}):
                status, _, body = await conn.request("GET", f"/v1/informants/{who}/points")
                assert status == 200, body
                out[who] = msgspec.json.decode(body)["balance"]
        finally:
            conn.close()
        return out
