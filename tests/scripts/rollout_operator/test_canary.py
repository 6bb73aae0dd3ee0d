"""The canary phases as an ordered list of steps."""

from __future__ import annotations

from rollout_operator.canary import STEPS


def test_the_steps_run_in_the_documented_order() -> None:
    assert [s.__name__ for s in STEPS] == [
        "_abort",
        "_failed_verification",
        "_measurement",
        "_full_promotion",
        "_stale_canary",
        "_resume",
        "_open_gates",
        "_run_steps",
        "_scale_canary",
        "_completion",
    ]
