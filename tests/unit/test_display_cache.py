"""The display fields a worker keeps for board pages (services/display.py), on a clock
the test moves."""

from points_service.domain.boards import Shown
from points_service.services.display import DROP_AT_ONCE, FORGOTTEN_LISTED, DisplayCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def shown(name: str) -> Shown:
    return Shown(name=name)


def test_fields_are_served_until_their_time_is_up_then_read_again() -> None:
    clock = Clock()
    cache = DisplayCache(ttl=10, size=100, monotonic=clock)
    assert cache.fresh(["a"]) is None
    assert cache.split(["a", "b"]) == ([None, None], ["a", "b"])
    cache.keep({"a": shown("甲"), "b": Shown()}, cache.mark())  # b has no profile: kept as empty
    assert cache.fresh(["b", "a"]) == [Shown(), shown("甲")]
    assert cache.fresh(["a", "c"]) is None  # one not kept
    assert cache.split(["a", "c"]) == ([shown("甲"), None], ["c"])
    clock.now += 5
    cache.keep({"c": shown("丙")}, cache.mark())
    clock.now += 4.9
    assert cache.fresh(["a", "b", "c"]) == [shown("甲"), Shown(), shown("丙")]
    clock.now += 0.1  # a and b: ten seconds old
    assert cache.fresh(["c"]) == [shown("丙")]  # the stale ones go, the fresh one stays
    assert len(cache) == 1
    assert cache.split(["a", "c"]) == ([None, shown("丙")], ["a"])
    # kept again: the clock starts again for it, and it goes behind c
    cache.keep({"a": shown("甲二")}, cache.mark())
    clock.now += 5
    assert cache.fresh(["a"]) == [shown("甲二")]
    assert cache.fresh(["c"]) is None
    assert cache.split(["a", "c"]) == ([shown("甲二"), None], ["c"])


def test_the_oldest_go_first_beyond_the_size() -> None:
    clock = Clock()
    cache = DisplayCache(ttl=10, size=3, monotonic=clock)
    for name in "abcd":
        cache.keep({name: shown(name)}, cache.mark())
        clock.now += 0.1
    assert len(cache) == 3
    assert cache.fresh(["a"]) is None
    assert cache.fresh(["b", "c", "d"]) == [shown("b"), shown("c"), shown("d")]
    cache.keep({"b": shown("b2")}, cache.mark())  # b moves behind d: c is the oldest now
    cache.keep({"e": shown("e")}, cache.mark())
    assert cache.split(["b", "c", "d", "e"]) == (
        [shown("b2"), None, shown("d"), shown("e")],
        ["c"],
    )


def test_many_stale_entries_are_dropped_a_few_at_a_time_and_never_served() -> None:
    clock = Clock()
    cache = DisplayCache(ttl=10, size=10_000, monotonic=clock)
    many = {f"m{n}": shown(f"m{n}") for n in range(2 * DROP_AT_ONCE + 10)}
    cache.keep(many, cache.mark())
    clock.now += 11
    cache.keep({"new": shown("new")}, cache.mark())
    # more stale entries than one read drops: even a fresh id is not served in bulk
    assert cache.fresh(["new"]) is None
    assert len(cache) == len(many) + 1 - DROP_AT_ONCE
    assert cache.split(["new", "m0", f"m{len(many) - 1}"]) == (
        [shown("new"), None, None],
        ["m0", f"m{len(many) - 1}"],
    )
    assert cache.fresh(["new"]) is None
    assert len(cache) == len(many) + 1 - 2 * DROP_AT_ONCE
    assert cache.fresh(["new"]) == [shown("new")]  # the last ten stale ones went
    assert len(cache) == 1


def test_a_forgotten_informant_is_read_again() -> None:
    clock = Clock()
    cache = DisplayCache(ttl=10, size=100, monotonic=clock)
    cache.keep({"a": shown("甲"), "b": shown("乙")}, cache.mark())
    cache.forget("a")
    cache.forget("nobody")
    assert cache.fresh(["a"]) is None
    assert cache.split(["a", "b"]) == ([None, shown("乙")], ["a"])
    assert len(cache) == 1


def test_fields_read_before_a_forget_are_not_kept_after_it() -> None:
    clock = Clock()
    cache = DisplayCache(ttl=10, size=100, monotonic=clock)
    mark = cache.mark()  # a page starts reading a's and b's fields
    cache.forget("a")  # a PUT renames a meanwhile
    cache.keep({"a": shown("old a"), "b": shown("b")}, mark)  # the page's read comes back
    assert cache.split(["a", "b"]) == ([None, shown("b")], ["a"])  # the old name is not kept
    cache.keep({"a": shown("new a")}, cache.mark())  # a read that began after the PUT
    assert cache.fresh(["a", "b"]) == [shown("new a"), shown("b")]


def test_a_read_older_than_the_listed_forgets_keeps_nothing() -> None:
    clock = Clock()
    cache = DisplayCache(ttl=10, size=100, monotonic=clock)
    cache.forget("early")
    mark = cache.mark()
    for n in range(FORGOTTEN_LISTED):
        cache.forget(f"f{n}")
    # every forget since the mark is still listed: only the forgotten ones are left out
    cache.keep({"f0": shown("old"), "early": shown("early")}, mark)
    assert cache.split(["f0", "early"]) == ([None, shown("early")], ["f0"])
    cache.forget("one more")  # f0's forget is no longer listed
    cache.keep({"x": shown("x")}, mark)
    assert cache.fresh(["x"]) is None
    cache.keep({"x": shown("x")}, cache.mark())
    assert cache.fresh(["x"]) == [shown("x")]
