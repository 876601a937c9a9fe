"""CPU time of each edge cache hit (server/edge.py), the slowest ones in particular.

    .venv/bin/python bench/edge_stalls.py [--entries 100000] [--rounds 3]

Fills an :class:`~certstatus.server.edge.EdgeCache` with ``--entries`` answers
(~760-byte DER, 70-byte keys, as in bench/precomputed.py) and looks every key
up ``--rounds`` times in rotation, as wrk's rotating requests do, timing each
:meth:`EdgeCache.lookup` in CPU time of this thread (``thread_time_ns``: time
taken by other processes on a shared machine is not counted, so the figures
are the code's own). Prints the median, the slowest hits and how many took
over 1 ms: a hit that takes milliseconds is a pause of the whole worker,
every connection waiting behind it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from certstatus.clock import SystemClock
from certstatus.pipeline.cache import ByteBudget
from certstatus.server.edge import EdgeCache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    edge = EdgeCache(ByteBudget(1 << 40), SystemClock(), {})
    edge._stats.append(("bench", ("good",)))  # one metrics slot that every entry counts to
    edge._hits.append(0)
    now = time.time()
    keys = [os.urandom(70) for _ in range(args.entries)]
    for key in keys:
        edge._entries[key] = (now + 3600, now + 7200, now - 60, b", public\r\ndate: ", b"\r\ncontent-length: 760\r\n\r\n",
                              b"", os.urandom(760), 1, 0, 1400)  # fmt: skip
    clock = time.thread_time_ns
    lookup = edge.lookup
    costs = []
    for _ in range(args.rounds):
        for key in keys:
            started = clock()
            lookup(key, False)
            costs.append(clock() - started)
    costs.sort()
    slow = [c for c in costs if c > 1_000_000]
    print(f"{len(costs)} hits over {args.entries} entries: median {statistics.median(costs) / 1000:.1f} µs "
          f"(timer included), slowest {', '.join(f'{c / 1e6:.2f}' for c in costs[-3:])} ms, "
          f"{len(slow)} over 1 ms ({sum(slow) / 1e6:.1f} ms in all)")


if __name__ == "__main__":
    main()
