"""The leaderboard reads parse their query themselves (http/hot.py `_query`): the same
parameters as `urllib.parse.parse_qsl` finds, for any query string."""

from urllib.parse import parse_qsl

from hypothesis import given
from hypothesis import strategies as st

from points_service.http.hot import _query

# Plain characters and the ones that change parsing: separators, escapes, '+'.
_TEXT = st.text(alphabet="ab=&;%2B+0x", max_size=30)


@given(_TEXT)
def test_the_query_is_read_as_parse_qsl_reads_it(text: str) -> None:
    assert _query(text) == dict(parse_qsl(text, keep_blank_values=True))


def test_a_plain_query() -> None:
    assert _query("scope=all&period=&around=5&around=7&flag") == {
        "scope": "all",
        "period": "",
        "around": "7",
        "flag": "",
    }
