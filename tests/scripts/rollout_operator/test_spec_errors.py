"""The operator's validation (the resource models) in its own words, for rules beyond test_spec's."""

from __future__ import annotations

from typing import Any

import pytest

from rollout_operator.spec import SpecError, parse_source, parse_spec
from rollout_operator.spec_errors import field_path
from tests.scripts.rollout_operator.sim import SHA_A, spec_dict


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"unknownField": True}, "spec.unknownField: unknown field"),
        ({"targetRef": {"name": "x", "extra": 1}}, "spec.targetRef.extra: unknown field"),
        (
            {"model": {"version": 2**63, "source": {"image": "img"}}},
            "spec.model.version: must be <= 9223372036854775807",
        ),
        (
            {"model": {"version": 2, "source": {"url": "http://a/b", "sha256": SHA_A, "path": "/m"}}},
            "spec.model.source.path: path goes with the image source",
        ),
        ({"analysis": {"interval": 30}}, "spec.analysis.interval: expected a duration string"),
        (
            {"analysis": {"errorRatio": {"nonErrorCodes": ["OK", 1]}}},
            r"spec.analysis.errorRatio.nonErrorCodes\[1\]: expected a string",
        ),
        (
            {"targetRef": {"name": "x", "container": "c" * 64}},
            "spec.targetRef.container: at most 63 characters",
        ),
        (
            {"analysis": {"disagreement": {"inputs": [[1]] * 257}}},
            "spec.analysis.disagreement.inputs: at most 256 items",
        ),
    ],
)
def test_rules_of_the_crd_are_the_operators_too(change: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_spec({**spec_dict(), **change})


def test_every_problem_is_reported() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec({**spec_dict(), "paused": "no", "abort": 1})
    assert (
        str(info.value)
        == "spec.paused: expected true or false, got 'no'; spec.abort: expected true or false, got 1"
    )


def test_a_status_source_is_read_with_the_same_rules() -> None:
    assert parse_source({"image": "img:2"}).as_dict() == {"image": "img:2"}
    with pytest.raises(SpecError, match=r"spec\.model\.source: set exactly one of url or image"):
        parse_source({})


def test_field_path() -> None:
    assert field_path(("strategy", "canary", "steps", 1, "pause")) == "spec.strategy.canary.steps[1].pause"
    assert field_path(()) == "spec"
