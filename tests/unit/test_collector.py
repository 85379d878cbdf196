"""The collector settings a server process takes once it has started (in a child
process, so that this one keeps its own)."""

import json
import subprocess
import sys

from points_service.adapters.collector import YOUNG_THRESHOLD

_PROBE = """
import gc, json
from points_service.adapters.collector import settle_collector
before = gc.get_threshold()
kept = [[n] for n in range(1000)]  # built at start-up, alive for good
settle_collector()
# A cycle made after start-up is still collected.
cycle = []
cycle.append(cycle)
del cycle
print(json.dumps({"before": before, "after": gc.get_threshold(),
                  "frozen": gc.get_freeze_count(), "found": gc.collect(0)}))
"""


def test_settle_collector_freezes_start_up_and_raises_the_young_threshold() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    seen = json.loads(out.stdout)
    before, after = seen["before"], seen["after"]
    assert after == [YOUNG_THRESHOLD, before[1], before[2]]
    assert before[0] < YOUNG_THRESHOLD
    assert seen["frozen"] >= 1000  # start-up's objects are out of every later pass
    assert seen["found"] == 1  # and a later cycle is still found
