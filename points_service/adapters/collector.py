"""How a long-running process of the service sets Python's cyclic garbage collector.

Measured under batch load (bench/RESULTS.md, 2026-12-06), Python's default thresholds
(700, 10, 10) made the web worker run about 4,000 young passes, 380 middle passes and 30
full passes in 13 s, a second of collector time in all, and the SQLite writer process
full passes of ~50 ms each, during which no commit could finish. Almost none of it found
garbage: a request's objects are freed by reference counting when it ends; the passes
only walk the ones still in flight, again and again.

The young threshold is counted in container objects allocated less those freed, so one
above the objects that the requests in flight hold at once (four batches of 1,000 events
are ~40,000) is crossed rarely: cycles are still collected, at a few passes a minute.
"""

import gc

YOUNG_THRESHOLD = 50_000


def settle_collector() -> None:
    """Once start-up is done: keep what start-up built (modules, rules, pools) out of
    every later pass, and raise the young threshold; the older generations keep their
    defaults relative to it."""
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
