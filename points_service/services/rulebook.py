"""The live rule set: swapped in whole, and only when the new set is valid."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from points_service.domain.rules import RuleSet, RuleSetInvalid
from points_service.services.ports import NullObserver, Observer


@dataclass(frozen=True, slots=True)
class ReloadResult:
    ok: bool
    version: str  # the version live after the attempt
    at: datetime
    problems: tuple[str, ...] = ()


class RuleBook:
    def __init__(
        self,
        load: Callable[[], RuleSet],
        observer: Observer | None = None,
        fallback: Callable[[], RuleSet] | None = None,
    ) -> None:
        """Load the rules; when they are invalid, start on `fallback` (the last good
        set) and report the failure, or raise when there is no fallback either."""
        self._load = load
        self._observer = observer or NullObserver()
        try:
            self.current = load()
        except RuleSetInvalid as exc:
            if fallback is None:
                raise
            try:
                self.current = fallback()
            except RuleSetInvalid:
                raise exc from None
            self.last = ReloadResult(False, self.current.version, datetime.now(UTC), _problems(exc))
            self._observer.rules_loaded(self.current.version, False)
            return
        self.last = ReloadResult(True, self.current.version, datetime.now(UTC))
        self._observer.rules_loaded(self.current.version, True)

    def reload(self) -> ReloadResult:
        """Validate the files again; swap the new set in, or keep the old one serving."""
        try:
            candidate = self._load()
        except RuleSetInvalid as exc:
            self.last = ReloadResult(False, self.current.version, datetime.now(UTC), _problems(exc))
            self._observer.rules_loaded(self.current.version, False)
            return self.last
        # One reference assignment: a request sees the old set or the new, never a mix.
        self.current = candidate
        self.last = ReloadResult(True, candidate.version, datetime.now(UTC))
        self._observer.rules_loaded(candidate.version, True)
        return self.last


def _problems(exc: RuleSetInvalid) -> tuple[str, ...]:
    return tuple(str(p) for p in exc.problems)
