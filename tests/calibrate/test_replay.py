"""Replaying the cascade: every row of the sweep equals the real cascade at its threshold,
with the gate moved there and with the function rebuilt at it."""

from __future__ import annotations

from escalate.calibrate import Observations, analyse, replay
from escalate.testing._server import ProviderServer

from .conftest import ITEMS, make_solver


def test_every_row_matches_a_replay_of_the_real_cascade(
    served: ProviderServer, observed: Observations
) -> None:
    result = analyse(observed)
    solve = make_solver(served)
    for row in result.rows:
        # The gate emulated at the row's threshold, through the engine ...
        emulated = replay(
            solve, ITEMS, expected_field="value", gate="confidence", threshold=row.threshold
        )
        assert emulated.mismatches(row) == [], row.label
        # ... and the function rebuilt with its own gate at that threshold.
        rebuilt = replay(make_solver(served, row.threshold), ITEMS, expected_field="value")
        assert rebuilt.mismatches(row) == [], row.label
        assert (rebuilt.accuracy, rebuilt.escalation_rate) == (row.accuracy, row.escalation_rate)
        assert rebuilt.cost_per_call_usd == row.cost_per_call_usd
