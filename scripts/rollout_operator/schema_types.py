"""Field types that validate in Python *and* describe themselves in the CRD's OpenAPI schema.

Each one is written once and used by the resource models (:mod:`rollout_operator.resource_spec`,
:mod:`rollout_operator.resource_status`): the check the operator runs and the keyword the API
server runs come from the same line. Python's own checks carry the operator's wording (the field
path is added by :mod:`rollout_operator.spec_errors`). Pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    PlainSerializer,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from rollout_operator import durations

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class FieldProblem(ValueError):
    """Raised by a model validator about one of the model's fields (``field``: its wire name)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class ResourceModel(BaseModel):
    """A part of the resource: camelCase on the wire, snake_case in code, immutable, closed.

    ``extra="forbid"``: the CRD lists every field and never preserves unknown ones (the API server
    prunes them, or rejects them under strict field validation), so an unknown field is an error.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=True,
        serialize_by_alias=True,
        extra="forbid",
        frozen=True,
    )


class Strict(ResourceModel):
    """Scalars exactly as JSON has them: no ``"2"`` for 2, no ``true`` for 1, no NaN or infinity."""

    model_config = ConfigDict(strict=True, allow_inf_nan=False)


@dataclass(frozen=True)
class Matching:
    """A string that must match ``pattern`` (the schema's ``pattern``), else ``wording``.

    ``wording`` may use ``{value!r}``. Python's :func:`re.search` runs the same (anchored) pattern
    as the API server does.
    """

    pattern: str
    wording: str

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        regex = re.compile(self.pattern)

        def check(value: str) -> str:
            if not regex.search(value):
                raise ValueError(self.wording.format(value=value))
            return value

        return core_schema.no_info_after_validator_function(check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {**handler(schema), "pattern": self.pattern}


@dataclass(frozen=True)
class Int64:
    """An integer the API server stores as int64 (``format: int64``); the range is checked here."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        def check(value: int) -> int:
            if value > INT64_MAX:
                raise ValueError(f"must be <= {INT64_MAX}, got {value}")
            if value < INT64_MIN:
                raise ValueError(f"must be >= {INT64_MIN}, got {value}")
            return value

        return core_schema.no_info_after_validator_function(check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {**handler(schema), "format": "int64"}


def _seconds(value: float) -> str:
    """Lossless ``<seconds>s``: how a default duration is written into the schema."""
    return format(value, "f").rstrip("0").rstrip(".") + "s"


def _duration(value: Any) -> float:
    if not isinstance(value, str):
        raise ValueError(f"expected a duration string (e.g. 30s, 5m, 1h30m), got {value!r}")
    return durations.parse_duration(value)


# Seconds in code, a string such as ``30s`` or ``1h30m`` in the resource (defaults included).
Duration = Annotated[
    float,
    BeforeValidator(_duration),
    PlainSerializer(_seconds, return_type=str),
    WithJsonSchema({"type": "string", "pattern": durations.PATTERN}),
]

# Any JSON value, kept as it is by the API server (no schema of its own).
JsonValue = Annotated[Any, WithJsonSchema({"x-kubernetes-preserve-unknown-fields": True})]

# A JSON object of any shape, kept as it is by the API server.
FreeObject = Annotated[
    dict[str, Any], WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True})
]


def cel(*rules: tuple[str, str]) -> dict[str, Any]:
    """``json_schema_extra`` of a model with CEL rules ``(rule, message)`` the API server checks."""
    return {"x-kubernetes-validations": [{"rule": rule, "message": message} for rule, message in rules]}
