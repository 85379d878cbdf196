"""The display fields a worker shows on board pages, kept for a while.

The same top entries are shown again and again, so each informant's display fields
(name, unit, region) are kept for `ttl` seconds after they were read: a renamed
informant may show under the old name for that long (in another worker; a PUT in this
one forgets the old fields at once).

A top page asks for a hundred at a time, so the common case, all kept and fresh, takes
two C-level passes over the ids and one look at the oldest entry. Every entry is kept
for the same `ttl`, so the entries expire in the order they were kept: the fields are in
one dict, their expiry times in another kept in that order, oldest first. When the
oldest is fresh, all are; stale entries are dropped from the front a few hundred at a
time (dropping a big cache at once stalled the loop), and an id among more stale ones
than that is checked on its own.

A PUT forgets the informant's fields while a page in this worker may be reading them:
that read may bring back the old fields, and must not keep them. So a read takes a
`mark` before it starts, and `keep` leaves out the fields of every informant forgotten
since that mark (the last FORGOTTEN_LISTED forgotten ids are listed; a read older than
the oldest of those keeps nothing).
"""

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import cast

from points_service.domain.boards import Shown

DROP_AT_ONCE = 500  # stale entries dropped per read, at most
FORGOTTEN_LISTED = 10_000  # the forgotten ids a read in flight is checked against


class DisplayCache:
    def __init__(
        self, ttl: float, size: int, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self._size = size
        self._monotonic = monotonic
        self._shown: dict[str, Shown] = {}
        self._expires: OrderedDict[str, float] = OrderedDict()  # oldest first
        self._forgets = 0  # forgets so far: a mark
        self._forgotten: OrderedDict[str, int] = OrderedDict()  # id: its last forget's mark
        self._listed_from = 0  # forgets up to this mark are no longer listed

    def __len__(self) -> int:
        return len(self._shown)

    def fresh(self, ids: Sequence[str]) -> list[Shown] | None:
        """Each id's fields when all are kept and fresh, else None (`split` tells which
        to read)."""
        if not self._drop_stale():
            return None
        found = list(map(self._shown.get, ids))
        # a Shown is always true (a struct without a length), None is not
        return cast("list[Shown]", found) if all(found) else None

    def split(self, ids: Iterable[str]) -> tuple[list[Shown | None], list[str]]:
        """Each id's fields where kept and fresh (None where not), and the ids to read."""
        now = self._monotonic()
        expires, shown = self._expires, self._shown
        kept: list[Shown | None] = []
        missing = []
        for informant_id in ids:
            if expires.get(informant_id, now) > now:
                kept.append(shown[informant_id])
            else:
                kept.append(None)
                missing.append(informant_id)
        return kept, missing

    def mark(self) -> int:
        """Taken before reading fields, for `keep`."""
        return self._forgets

    def keep(self, shown: Mapping[str, Shown], read_since: int) -> None:
        """Keep these fields, read since the mark `read_since`, for `ttl` from now, but
        not those of informants forgotten since that mark; then drop the oldest beyond
        `size`."""
        if read_since < self._forgets:
            if read_since < self._listed_from:
                return
            forgotten = self._forgotten
            shown = {i: s for i, s in shown.items() if forgotten.get(i, 0) <= read_since}
        expires_at = self._monotonic() + self.ttl
        expires = self._expires
        for informant_id, fields in shown.items():
            self._shown[informant_id] = fields
            expires[informant_id] = expires_at
            expires.move_to_end(informant_id)
        while len(expires) > self._size:
            self._shown.pop(expires.popitem(last=False)[0], None)

    def forget(self, informant_id: str) -> None:
        self._shown.pop(informant_id, None)
        self._expires.pop(informant_id, None)
        self._forgets += 1
        forgotten = self._forgotten
        forgotten[informant_id] = self._forgets
        forgotten.move_to_end(informant_id)
        if len(forgotten) > FORGOTTEN_LISTED:
            self._listed_from = forgotten.popitem(last=False)[1]

    def _drop_stale(self) -> bool:
        """Drop stale entries from the front, DROP_AT_ONCE at most; whether every entry
        left is fresh."""
        expires = self._expires
        if not expires:
            return True
        now = self._monotonic()
        for _ in range(DROP_AT_ONCE):
            oldest, expires_at = next(iter(expires.items()))
            if expires_at > now:
                return True
            del expires[oldest]
            del self._shown[oldest]
            if not expires:
                return True
        return next(iter(expires.values())) > now
