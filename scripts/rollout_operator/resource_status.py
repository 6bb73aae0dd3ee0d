"""The schema of a ModelRollout's ``status``, as pydantic models (for the CRD only).

The operator reads and writes the status through :class:`rollout_operator.status.Status`; these
models only state its shape for :mod:`rollout_operator.crd`, so the API server keeps every field
the operator writes (``tests/scripts/rollout_operator/test_crd.py`` runs the operator and checks
each status against this schema). Nothing has a default: the operator writes every field. Pure.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import Field, WithJsonSchema

from rollout_operator.phases import Phase, plain
from rollout_operator.schema_types import FreeObject, Int64, ResourceModel

PhaseName = Annotated[str, WithJsonSchema({"type": "string", "enum": ["", *(plain(p) for p in Phase)]})]
Generation = Annotated[int, Int64()]


class AnalysisStatusDoc(ResourceModel):
    measurements: int | None = None
    successes: int | None = None
    failures: int | None = None
    inconclusives: int | None = None
    errors: int | None = None
    consecutive_errors: int | None = None
    summary: str | None = None
    last_measured_at: dt.datetime | None = None
    history: list[str] | None = None
    baseline: FreeObject | None = None
    last: FreeObject | None = None


class ConditionDoc(ResourceModel):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str | None = None
    message: str | None = None
    last_transition_time: dt.datetime | None = None
    observed_generation: Generation | None = None


class StatusDoc(ResourceModel):
    phase: PhaseName | None = None
    message: str | None = None
    observed_generation: Generation | None = None
    revision: str | None = None
    attempt: int | None = None
    stable_version: str | None = None
    stable_revision: str | None = None
    stable_source: FreeObject | None = None
    canary_version: str | None = None
    canary_source: FreeObject | None = None
    current_step: int | None = None
    steps: int | None = None
    progress: str | None = None
    step_started_at: dt.datetime | None = None
    pause_reason: str | None = None
    desired_weight: int | None = None
    canary_weight: int | None = None
    canary_replicas: int | None = None
    promotion_started_at: dt.datetime | None = None
    rollback_reason: str | None = None
    traffic_prepared: bool | None = None
    traffic_generation: str | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    handled: dict[str, str] | None = None
    analysis: AnalysisStatusDoc | None = None
    conditions: list[ConditionDoc] | None = Field(
        None, json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}
    )
