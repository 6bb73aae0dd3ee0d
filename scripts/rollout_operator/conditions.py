"""The status conditions, derived from the final phase of a reconcile.

``Progressing`` (an active phase), ``Paused``, ``Completed`` (``kubectl wait
--for=condition=Completed``) and ``Degraded`` (Invalid, Failed, Aborted). Pure.
"""

from __future__ import annotations

from rollout_operator.phases import ACTIVE_PHASES, ConditionType, FailureReason, PauseReason, Phase
from rollout_operator.status import Status, set_condition

DEGRADED_PHASES = (Phase.INVALID, Phase.FAILED, Phase.ABORTED)


def update_conditions(st: Status, now: float) -> None:
    """Set the four conditions of ``st`` in place from its phase, reasons and message."""
    gen, phase = st.observed_generation, st.phase or Phase.PENDING
    paused = st.phase == Phase.PAUSED
    completed = st.phase == Phase.SUCCEEDED
    degraded = st.phase in DEGRADED_PHASES
    set_condition(
        st.conditions, ConditionType.PROGRESSING, st.phase in ACTIVE_PHASES, phase, st.message, now, gen
    )
    set_condition(
        st.conditions,
        ConditionType.PAUSED,
        paused,
        (st.pause_reason or PauseReason.USER) if paused else PauseReason.NOT_PAUSED,
        st.message if paused else "",
        now,
        gen,
    )
    set_condition(
        st.conditions, ConditionType.COMPLETED, completed, phase, st.message if completed else "", now, gen
    )
    set_condition(
        st.conditions,
        ConditionType.DEGRADED,
        degraded,
        (st.rollback_reason or st.phase) if degraded else FailureReason.NOT_DEGRADED,
        st.message if degraded else "",
        now,
        gen,
    )
