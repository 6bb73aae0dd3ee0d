"""Completion of one canary step, by kind: setWeight waits for verified serving pods, pause for time or a promote."""

from __future__ import annotations

from rollout_operator.canary_steps import STEP_KINDS, Canary, Done, Expired, Waiting
from rollout_operator.context import Context
from rollout_operator.observations import CanaryView, Observations, TargetView
from rollout_operator.spec import Step
from rollout_operator.status import Status
from tests.scripts.rollout_operator.sim import NOW, mk_spec


def ctx(**obs: object) -> Context:
    spec = mk_spec()
    c = Context(
        Status(current_step=0, steps=4, step_started_at=NOW, revision=spec.model.revision()),
        Observations(target=TargetView(name="prod-modelship", replicas=2), **obs),
        NOW,
    )  # type: ignore[arg-type]
    c.spec, c.rev, c.target = spec, spec.model.revision(), c.obs.target  # type: ignore[assignment]
    return c


def test_every_step_kind_has_a_completion_function() -> None:
    assert set(STEP_KINDS) == {"setWeight", "pause"}


def test_set_weight_waits_for_the_canary_then_is_done_then_expires() -> None:
    c = ctx()
    step = Step("setWeight", weight=25)
    waiting = STEP_KINDS["setWeight"](Canary(c), step)
    assert isinstance(waiting, Waiting)
    assert "waiting for 1 canary pod(s)" in waiting.message
    assert c.st.desired_weight == 25
    late = ctx()
    late.now = NOW + late.spec.progress_deadline + 1
    assert isinstance(STEP_KINDS["setWeight"](Canary(late), step), Expired)
    ready = ctx(canary=CanaryView(replicas=1, revision=mk_spec().model.revision()))
    not_serving = STEP_KINDS["setWeight"](Canary(ready), step)
    assert isinstance(not_serving, Waiting)  # the Deployment is there, its pod does not serve yet


def test_pause_steps() -> None:
    c = ctx()
    timed = Step("pause", duration=60.0)
    assert STEP_KINDS["pause"](Canary(c), timed) == Waiting("step 1/4: pausing 1m more", 60.0)
    c.now = NOW + 60
    assert STEP_KINDS["pause"](Canary(c), timed) == Done("paused 1m")
    manual = ctx()
    assert STEP_KINDS["pause"](Canary(manual), Step("pause")) == Waiting("")
    assert manual.st.pause_reason == "ManualPause"
    assert [e.reason for e in manual.events] == ["Paused"]
    promoted = ctx()
    promoted.commands = {"promote"}
    assert STEP_KINDS["pause"](Canary(promoted), Step("pause")) == Done("promoted")
    assert not promoted.commands  # consumed
