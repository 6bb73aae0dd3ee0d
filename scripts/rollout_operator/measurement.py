"""Recording one analysis measurement in ``status.analysis``: counters, history, and what it triggers.

A failure beyond ``failureLimit`` or errors in a row beyond ``consecutiveErrorLimit`` roll back;
inconclusive results beyond ``inconclusiveLimit`` pause the canary for a human. Pure.
"""

from __future__ import annotations

from rollout_operator.context import Context
from rollout_operator.phases import (
    CANARY_PHASES,
    EventReason,
    EventType,
    FailureReason,
    PauseReason,
    Verdict,
    plain,
)
from rollout_operator.rollback import begin_rollback
from rollout_operator.status import HISTORY, to_rfc3339
from rollout_operator.verdict import history_line


def record_measurement(ctx: Context) -> bool:
    """Record the observed measurement, if any; True when it started a rollback."""
    m, analysis, st = ctx.obs.measurement, ctx.spec.analysis, ctx.st
    if m is None or analysis is None:
        return False
    a = st.analysis
    a.last_measured_at, a.baseline = ctx.now, m.baseline
    if m.kind == "baseline":
        return False
    a.measurements += 1
    a.last = {
        "at": to_rfc3339(ctx.now),
        "phase": plain(m.phase),
        "message": m.message,
        "metrics": list(m.metrics),
    }
    a.history = [*a.history, history_line(m, to_rfc3339(ctx.now))][-HISTORY:]
    if m.phase == Verdict.SUCCESSFUL:
        a.successes += 1
        a.consecutive_errors = 0
    elif m.phase == Verdict.FAILED:
        a.failures += 1
        a.consecutive_errors = 0
        ctx.event(
            EventType.WARNING,
            EventReason.ANALYSIS_FAILED,
            f"measurement {a.measurements} failed ({a.failures}/{analysis.failure_limit + 1} "
            f"failures abort): {m.message}",
        )
        if a.failures > analysis.failure_limit:
            begin_rollback(
                ctx, FailureReason.ANALYSIS_FAILED, f"analysis failed {a.failures} time(s): {m.message}"
            )
            return True
    elif m.phase == Verdict.INCONCLUSIVE:
        a.inconclusives += 1
        a.consecutive_errors = 0
        ctx.event(
            EventType.WARNING,
            EventReason.ANALYSIS_INCONCLUSIVE,
            f"measurement {a.measurements} inconclusive: {m.message}",
        )
        if (
            a.inconclusives > analysis.inconclusive_limit
            and st.phase in CANARY_PHASES
            and st.pause_reason != PauseReason.INCONCLUSIVE
        ):
            st.pause_reason = PauseReason.INCONCLUSIVE
            ctx.event(
                EventType.WARNING,
                EventReason.PAUSED,
                f"analysis inconclusive {a.inconclusives} times "
                f"(limit {analysis.inconclusive_limit}); waiting for a human to promote or abort",
            )
    else:
        a.errors += 1
        a.consecutive_errors += 1
        ctx.event(
            EventType.WARNING,
            EventReason.ANALYSIS_ERROR,
            f"measurement {a.measurements} could not be taken: {m.message}",
        )
        if a.consecutive_errors > analysis.consecutive_error_limit:
            begin_rollback(
                ctx,
                FailureReason.ANALYSIS_ERROR,
                f"analysis errored {a.consecutive_errors} times in a row: {m.message}",
            )
            return True
    return False
