"""Programme time: calendar days in the programme time zone (Asia/Shanghai by default)."""

from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class Calendar:
    tz: tzinfo

    @classmethod
    def named(cls, name: str) -> "Calendar":
        return cls(ZoneInfo(name))

    def day_of(self, moment: datetime) -> date:
        return moment.astimezone(self.tz).date()

    def day_number(self, moment: datetime) -> int:
        """The programme day as a proleptic ordinal: consecutive days differ by one."""
        return _day_number(self.tz, moment)

    def day_start(self, day: date) -> datetime:
        return datetime(day.year, day.month, day.day, tzinfo=self.tz)

    def day_end(self, day: date) -> datetime:
        return self.day_start(day + timedelta(days=1))


# Events of one burst share their timestamps; the zone conversion is the costly part.
@lru_cache(maxsize=8192)
def _day_number(tz: tzinfo, moment: datetime) -> int:
    return moment.astimezone(tz).date().toordinal()


def day_from_number(number: int) -> date:
    return date.fromordinal(number)
