"""One writer process of the many-writers test: ``python _worker.py URL CALLS INDEX``.

It makes CALLS real escalating calls (every fourth escalates) through the real engine and
the real store, and prints its store's stats as JSON. The tiers are escalate's in-process
fake tiers (``FunctionTier``): real receipts, no HTTP, so 8 x 1,000 calls take seconds
and what is measured is the store, not a local HTTP server.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import escalate
from tests.store.test_store import make_solver


def main(url: str, calls: int, index: int) -> None:
    solve = make_solver(tags={"worker": str(index)})
    escalate.configure(store=url)
    for i in range(calls):
        solve("hard" if i % 4 == 0 else "easy")
    escalate.flush(timeout=120)
    (stats,) = escalate.store_stats()
    print(json.dumps(dataclasses.asdict(stats)))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
