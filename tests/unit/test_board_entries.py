"""A page's rows as columns (`Entries`): read as rows by the console, encoded from the
columns by the API, the same either way."""

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from points_service.domain.boards import NOT_SHOWN, Shown
from points_service.http.convert import entries_out
from points_service.http.schemas import EntryOut
from points_service.services.leaderboards import NO_ENTRIES, Entries

texts = st.none() | st.text(max_size=8) | st.sampled_from(['张"三', "a\\b", "😀"])
shown = st.builds(Shown, texts, texts, texts, texts, texts, texts) | st.just(NOT_SHOWN)


def test_entries_read_as_rows() -> None:
    rows = Entries([1, 1, 3], ["x", "y", "z"], [5, 5, 2], [NOT_SHOWN, Shown("Y"), NOT_SHOWN])
    assert len(rows) == 3 and bool(rows) and not NO_ENTRIES
    assert [(e.rank, e.informant_id, e.score, e.display.name) for e in rows] == [
        (1, "x", 5, None),
        (1, "y", 5, "Y"),
        (3, "z", 2, None),
    ]
    assert rows[1].display == Shown("Y") and rows[-1].informant_id == "z"
    assert [e.informant_id for e in rows[1:]] == ["y", "z"]
    assert "'y'" in repr(rows)


@given(
    st.lists(st.tuples(st.integers(1, 10**9), st.text(min_size=1), st.integers(0, 2**62), shown))
)
def test_the_api_encodes_each_row_with_its_display_fields(
    rows: list[tuple[int, str, int, Shown]],
) -> None:
    entries = Entries(
        [r for r, _, _, _ in rows], [i for _, i, _, _ in rows], [s for _, _, s, _ in rows],
        [d for _, _, _, d in rows],
    )  # fmt: skip
    by_row = [EntryOut(r, i, s, *msgspec.structs.astuple(d)) for r, i, s, d in rows]
    assert msgspec.json.encode(entries_out(entries)) == msgspec.json.encode(by_row)
    decoded = msgspec.json.decode(msgspec.json.encode(entries_out(entries)))
    assert [e["informant_id"] for e in decoded] == [i for _, i, _, _ in rows]
