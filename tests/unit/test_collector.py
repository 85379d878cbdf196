"""The collector settings a server process takes once it has started (in a child
process, so that this one keeps its own)."""

import json
import subprocess
import sys

from points_service.adapters.collector import YOUNG_THRESHOLD

_PROBE = """
import gc, json, weakref
from points_service.adapters.collector import YOUNG_THRESHOLD, settle_collector
before = gc.get_threshold()
kept = [[n] for n in range(1000)]  # built at start-up, alive for good
settle_collector()
frozen = gc.get_freeze_count()
# A cycle made after start-up: unreachable, only the collector can free it.
class Node:
    pass
node = Node()
node.self = node
gone = weakref.ref(node)
del node
alive_after_few = gone() is not None
held = [[n] for n in range(YOUNG_THRESHOLD + 1000)]  # past the young threshold
print(json.dumps({"before": before, "after": gc.get_threshold(), "frozen": frozen,
                  "alive_after_few": alive_after_few, "collected": gone() is None}))
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
    # A later cycle outlives a few allocations, and is collected, unasked, once the
    # young threshold is passed.
    assert seen["alive_after_few"]
    assert seen["collected"]
