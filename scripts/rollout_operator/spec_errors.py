"""Pydantic's validation errors in the operator's words: ``spec.<field path>: <what is wrong>``.

The ``Invalid`` status and its event name the field at fault the way the resource spells it
(``spec.strategy.canary.steps[1].pause.duration``), whatever the model's attribute is called.
Pure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from rollout_operator.schema_types import FieldProblem


class SpecError(ValueError):
    """The spec cannot be acted on; the message says which field and why."""


def _bound(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _got(value: Any) -> str:
    return _bound(value) if isinstance(value, int | float) and not isinstance(value, bool) else repr(value)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# Error type -> wording, from the error's ``input`` and ``ctx``.
_WORDS: dict[str, Callable[[Any, dict[str, Any]], str]] = {
    "missing": lambda value, ctx: "required",
    "extra_forbidden": lambda value, ctx: "unknown field",
    "model_type": lambda value, ctx: "expected an object",
    "model_attributes_type": lambda value, ctx: "expected an object",
    "dict_type": lambda value, ctx: "expected an object",
    "int_type": lambda value, ctx: f"expected an integer, got {value!r}",
    "float_type": lambda value, ctx: f"expected a finite number, got {value!r}",
    "finite_number": lambda value, ctx: f"expected a finite number, got {value!r}",
    "bool_type": lambda value, ctx: f"expected true or false, got {value!r}",
    "string_type": lambda value, ctx: f"expected a string, got {value!r}",
    "list_type": lambda value, ctx: "expected a list",
    "tuple_type": lambda value, ctx: "expected a list",
    "literal_error": lambda value, ctx: f"{ctx['expected'].replace(chr(39), '')}, got {value!r}",
    "greater_than_equal": lambda value, ctx: f"must be >= {_bound(ctx['ge'])}, got {_got(value)}",
    "less_than_equal": lambda value, ctx: f"must be <= {_bound(ctx['le'])}, got {_got(value)}",
    "string_too_short": lambda value, ctx: f"at least {_plural(ctx['min_length'], 'character')}",
    "string_too_long": lambda value, ctx: f"at most {_plural(ctx['max_length'], 'character')}",
    "too_short": lambda value, ctx: (
        "expected a non-empty list"
        if ctx["min_length"] == 1
        else f"at least {_plural(ctx['min_length'], 'item')}"
    ),
    "too_long": lambda value, ctx: f"at most {_plural(ctx['max_length'], 'item')}",
}


def field_path(loc: tuple[int | str, ...], root: str = "spec") -> str:
    """``("strategy", "canary", "steps", 1, "pause")`` -> ``spec.strategy.canary.steps[1].pause``."""
    path = root
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def describe(error: ErrorDetails, root: str = "spec") -> str:
    """One error as ``<field path>: <what is wrong>``."""
    loc = tuple(error["loc"])
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    cause = ctx.get("error")
    if isinstance(cause, FieldProblem):
        loc += tuple(cause.field.split("."))
    if isinstance(cause, ValueError):
        words = str(cause)
    elif error["type"] in _WORDS:
        words = _WORDS[error["type"]](error.get("input"), ctx)
    else:
        words = error["msg"]
    return f"{field_path(loc, root)}: {words}"


def spec_error(exc: ValidationError, root: str = "spec") -> SpecError:
    """A :class:`SpecError` for the first problem (the others follow, after ``;``)."""
    return SpecError("; ".join(describe(error, root) for error in exc.errors(include_url=False)))
