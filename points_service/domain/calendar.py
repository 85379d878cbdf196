"""Programme time: calendar days in the programme time zone (Asia/Shanghai by default)."""

from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
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
        return self.day_of(moment).toordinal()

    def day_start(self, day: date) -> datetime:
        return datetime(day.year, day.month, day.day, tzinfo=self.tz)

    def day_end(self, day: date) -> datetime:
        return self.day_start(day + timedelta(days=1))


def day_from_number(number: int) -> date:
    return date.fromordinal(number)
