"""The calendar's cached day window never disagrees with a plain zone conversion."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from points_service.domain.calendar import Calendar

# Lord Howe moves its clock by half an hour, Kathmandu is 5:45 ahead: the quarter-hour
# cache of day numbers holds for them too.
ZONES = [
    "Asia/Shanghai", "America/New_York", "Europe/London", "Australia/Lord_Howe",
    "Asia/Kathmandu", "Asia/Kolkata",
]  # fmt: skip


@given(
    st.sampled_from(ZONES),
    st.lists(
        st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)),
        min_size=1,
        max_size=50,
    ),
    st.integers(min_value=0, max_value=3600),
)
@settings(max_examples=200, deadline=None)
def test_day_number_matches_the_zone(zone: str, moments: list[datetime], step: int) -> None:
    calendar = Calendar.named(zone)
    tz = ZoneInfo(zone)
    for naive in moments:
        moment = naive.replace(tzinfo=UTC)
        # the same moment and its neighbours, so the cached window is used and left
        for m in (moment, moment + timedelta(seconds=step), moment - timedelta(seconds=step)):
            assert calendar.day_number(m) == m.astimezone(tz).date().toordinal()
    for naive in moments:  # again, now from the cache of quarter hours
        moment = naive.replace(tzinfo=UTC)
        assert calendar.day_number(moment) == moment.astimezone(tz).date().toordinal()


def test_shanghai_midnight_is_1600_utc() -> None:
    calendar = Calendar.named("Asia/Shanghai")
    before = calendar.day_number(datetime(2026, 11, 28, 15, 59, 59, tzinfo=UTC))
    after = calendar.day_number(datetime(2026, 11, 28, 16, 0, 0, tzinfo=UTC))
    assert after == before + 1
