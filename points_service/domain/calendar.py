"""Programme time: calendar days in the programme time zone (Asia/Shanghai by default)."""

from datetime import date, datetime, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

QUARTER_HOUR = 900  # seconds
MAX_QUARTERS = 200_000  # about five years of them


class Calendar:
    """Days are numbered as proleptic ordinals, so consecutive days differ by one."""

    __slots__ = ("_quarters", "_window", "tz")

    def __init__(self, tz: tzinfo) -> None:
        self.tz = tz
        # The last day asked about, as (start, end) POSIX seconds and its number: nearly
        # every event of a day falls in it, and a float comparison is cheaper than a
        # zone conversion.
        self._window = (0.0, 0.0, 0)
        # Day numbers by quarter hour of POSIX time, for moments out of that window (an
        # import goes through one informant's days, then the next one's). Zone offsets
        # and their changes fall on quarter hours (since the local mean times of the 1900s),
        # so no quarter holds a midnight.
        self._quarters: dict[int, int] = {}

    @classmethod
    def named(cls, name: str) -> "Calendar":
        return cls(ZoneInfo(name))

    def day_of(self, moment: datetime) -> date:
        return moment.astimezone(self.tz).date()

    def day_start(self, day: date) -> datetime:
        return datetime(day.year, day.month, day.day, tzinfo=self.tz)

    def day_number(self, moment: datetime) -> int:
        seconds = moment.timestamp()
        start, end, number = self._window
        if start <= seconds < end:
            return number
        quarter = int(seconds // QUARTER_HOUR)
        known = self._quarters.get(quarter)
        if known is not None:
            return known
        if len(self._quarters) >= MAX_QUARTERS:
            self._quarters.clear()
        day = self.day_of(moment)
        self._quarters[quarter] = day.toordinal()
        # Midnight to midnight on the wall clock, whatever the zone's offsets do between.
        self._window = (
            self.day_start(day).timestamp(),
            self.day_start(day + timedelta(days=1)).timestamp(),
            day.toordinal(),
        )
        return day.toordinal()


@lru_cache(maxsize=8192)  # a batch's rows name a few days, over and over
def day_from_number(number: int) -> date:
    return date.fromordinal(number)
