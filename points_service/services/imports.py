"""History import: informant profiles, and past events replayed through the rules in
`occurred_at` order as if each had arrived on time (the grace window does not apply),
idempotent on `event_id`.

This is how a region's existing records come in. Events are judged by the live rules
and applied through the same credit path as the API (Redis state, the SQL ledger, the
leaderboards), in batches; an event id already recorded is a duplicate and credits
nothing again.
"""

import asyncio
import contextlib
import csv
import gc
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from typing import Any

import msgspec

from points_service.domain.events import Event, InformantId, error_field
from points_service.domain.profiles import Profile
from points_service.services.credit import Credited, Credits, Rejected
from points_service.services.errors import InvalidInput
from points_service.services.profiles import Profiles


class _When(msgspec.Struct):
    occurred_at: datetime
    informant_id: str = ""


_when = msgspec.json.Decoder(_When)
_event = msgspec.json.Decoder(Event)


@dataclass(frozen=True, slots=True)
class Refused:
    line: int
    status: int
    field: str | None
    message: str


@dataclass
class ImportReport:
    read: int = 0
    credited: int = 0  # recorded now (whatever they earned)
    points: int = 0
    duplicates: int = 0  # already recorded: nothing credited again
    dry_runs: int = 0  # lines with `dry_run: true`: judged, not recorded
    refused: list[Refused] = field(default_factory=list)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic collection meanwhile: reading a file makes millions of tuples, none in
    a cycle, and the collector's passes over them were a fifth of ordering 10,000,000
    lines."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def in_time_order(
    lines: Iterable[tuple[int, bytes]], report: ImportReport
) -> list[tuple[int, bytes, str]]:
    """(line number, line, informant id) of the readable lines in `occurred_at` order
    (ties keep file order); a line that is not even an event with a time is refused."""
    with collector_paused():
        keyed = _sorted(lines, report)
        return [(number, raw, informant_id) for _, number, raw, informant_id in keyed]


def by_informant(
    lines: Iterable[tuple[int, bytes]], report: ImportReport
) -> dict[str, list[tuple[int, bytes]]]:
    """What `in_time_order` gives, dealt by informant: each one's (line number, line) in
    time order, informants in the order of their first line."""
    people: dict[str, list[tuple[int, bytes]]] = {}
    with collector_paused():
        for _, number, raw, informant_id in _sorted(lines, report):
            person = people.get(informant_id)
            if person is None:
                people[informant_id] = person = []
            person.append((number, raw))
    return people


def _sorted(
    lines: Iterable[tuple[int, bytes]], report: ImportReport
) -> list[tuple[float, int, bytes, str]]:
    """(time, line number, line, informant id) of the readable lines, in time order;
    the others refused."""
    keyed = []
    for number, raw in lines:
        if not raw.strip():
            continue
        report.read += 1
        try:
            head = _when.decode(raw)
            when = head.occurred_at
        except msgspec.DecodeError as exc:
            field_ = "occurred_at" if isinstance(exc, msgspec.ValidationError) else None
            report.refused.append(Refused(number, 422 if field_ else 400, field_, str(exc)))
            continue
        if when.tzinfo is None:
            report.refused.append(
                Refused(number, 422, "occurred_at", "occurred_at needs a UTC offset")
            )
            continue
        keyed.append((when.timestamp(), number, raw, head.informant_id))
    # Stable, and `keyed` is in file order: ties keep it. A float key sorts several
    # times faster than a (time, line number) tuple.
    keyed.sort(key=itemgetter(0))
    return keyed


def decode_line(raw: bytes) -> Event | Rejected:
    """One line's event, or why it is none."""
    try:
        return _event.decode(raw)
    except msgspec.DecodeError as exc:
        fld = error_field(exc) if isinstance(exc, msgspec.ValidationError) else None
        return Rejected(422 if fld else 400, "invalid", fld, str(exc))


class Advance:
    """Lines done so far, told to a progress callback."""

    def __init__(self, total: int, progress: Callable[[int, int], None] | None) -> None:
        self.total = total
        self.done = 0
        self._progress = progress

    def __call__(self, count: int) -> None:
        self.done += count
        if self._progress is not None:
            self._progress(self.done, self.total)


class Imports:
    def __init__(self, credits: Credits, batch: int = 1000, lanes: int = 16) -> None:
        self._credits = credits
        self._batch = batch
        self._lanes = lanes

    def order(
        self, lines: Iterable[tuple[int, bytes]], report: ImportReport
    ) -> list[list[tuple[int, bytes]]]:
        """The readable lines in `occurred_at` order (ties keep file order), dealt into
        lanes by informant; a line that is not even an event with a time is refused here."""
        lanes: list[list[tuple[int, bytes]]] = [[] for _ in range(self._lanes)]
        for number, raw, informant_id in in_time_order(lines, report):
            lanes[zlib.crc32(informant_id.encode()) % self._lanes].append((number, raw))
        return lanes

    async def run(
        self,
        lines: Iterable[tuple[int, bytes]],
        progress: Callable[[int, int], None] | None = None,
    ) -> ImportReport:
        report = ImportReport()
        lanes = self.order(lines, report)
        total = sum(len(lane) for lane in lanes)
        await self.replay(lanes, report, Advance(total, progress))
        report.refused.sort(key=lambda r: r.line)
        return report

    async def replay(
        self, lanes: list[list[tuple[int, bytes]]], report: ImportReport, advanced: "Advance"
    ) -> None:
        """Lanes of lines, each in time order, through the credit path."""
        await asyncio.gather(*(self._lane(lane, report, advanced) for lane in lanes))

    async def _lane(
        self,
        ordered: list[tuple[int, bytes]],
        report: ImportReport,
        advanced: Advance,
    ) -> None:
        """One lane's events in order, a batch at a time. An informant's events are all in
        one lane, so each informant's state sees them in time order; lanes run side by
        side, so one lane's Redis calls, commits and board writes overlap another's."""
        for start in range(0, len(ordered), self._batch):
            chunk = ordered[start : start + self._batch]
            items = [decode_line(raw) for _, raw in chunk]
            results = await self._credits.record_batch(items, replaying=True)
            for (number, _), result in zip(chunk, results, strict=True):
                if isinstance(result, Credited):
                    if result.replayed:
                        report.duplicates += 1
                    elif result.dry_run:
                        report.dry_runs += 1
                    else:
                        report.credited += 1
                        report.points += result.points
                else:
                    report.refused.append(
                        Refused(number, result.status, result.field, result.message)
                    )
            advanced(len(chunk))


class _ProfileLine(Profile, forbid_unknown_fields=True, frozen=True, kw_only=True):
    informant_id: InformantId


@dataclass
class ProfileReport:
    read: int = 0
    created: int = 0
    updated: int = 0
    refused: list[Refused] = field(default_factory=list)


def _csv_records(lines: Iterable[tuple[int, bytes]]) -> Iterator[tuple[int, dict[str, str]]]:
    numbered = list(lines)
    text = [raw.decode("utf-8-sig") for _, raw in numbered]
    reader = csv.reader(text)
    header = next(reader, None)
    if header is None:
        return
    for (number, _), row in zip(numbered[1:], reader, strict=False):
        if any(cell.strip() for cell in row):
            yield (
                number,
                {k.strip(): v.strip() for k, v in zip(header, row, strict=False) if v.strip()},
            )


class ProfileImport:
    """Informant profiles from JSON Lines or CSV (a header row naming the fields of
    `PUT /v1/informants/{id}` plus `informant_id`), each stored as that PUT would."""

    def __init__(self, profiles: Profiles) -> None:
        self._profiles = profiles

    async def run(
        self,
        lines: Iterable[tuple[int, bytes]],
        *,
        csv: bool,
        progress: Callable[[int, int], None] | None = None,
    ) -> ProfileReport:
        report = ProfileReport()
        records: list[tuple[int, Any]] = []
        if csv:
            records = list(_csv_records(lines))
        else:
            for number, raw in lines:
                if raw.strip():
                    try:
                        records.append((number, msgspec.json.decode(raw)))
                    except msgspec.DecodeError as exc:
                        report.refused.append(Refused(number, 400, None, str(exc)))
                        report.read += 1
        for done, (number, record) in enumerate(records, start=1):
            report.read += 1
            try:
                line = msgspec.convert(record, _ProfileLine, strict=not csv)
                fields = {f: getattr(line, f) for f in Profile.__struct_fields__}
                _, created = await self._profiles.put(line.informant_id, Profile(**fields))
            except msgspec.ValidationError as exc:
                report.refused.append(Refused(number, 422, error_field(exc), str(exc)))
                continue
            except InvalidInput as exc:
                report.refused.append(Refused(number, 422, exc.field, exc.message))
                continue
            if created:
                report.created += 1
            else:
                report.updated += 1
            if progress is not None and (done % 1000 == 0 or done == len(records)):
                progress(done, len(records))
        report.refused.sort(key=lambda r: r.line)
        return report
