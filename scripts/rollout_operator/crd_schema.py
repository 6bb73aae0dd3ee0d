"""Pydantic's JSON schema of a model, rewritten as a Kubernetes *structural* schema.

The API server accepts only structural schemas for a CRD: every node typed (or marked
``x-kubernetes-preserve-unknown-fields``), no ``$ref``, no ``additionalProperties`` beside
``properties``, and ``anyOf`` only as a pure validation beside a typed node. Pydantic's schema of
the resource models differs in a few mechanical ways, undone here:

* nested models are ``$ref``\\ s into ``$defs``: inlined (the model's docstring and title stay in
  the code; a field's own ``description`` is the one the CRD shows);
* an optional field is ``anyOf: [<schema>, {type: null}]`` with ``default: null``: the schema
  itself (leaving a field out is how a resource says "none");
* ``title`` everywhere and ``additionalProperties: false`` (``extra="forbid"``): dropped; the API
  server prunes unknown fields of a structural schema instead.

:func:`structural` checks the result and raises on anything it does not know how to express.
Pure.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

# The keywords a node of the generated schema may carry, in the order they are written; anything
# else is a bug in the models.
KEYWORDS = (
    "type",
    "format",
    "description",
    "enum",
    "default",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "required",
    "items",
    "properties",
    "additionalProperties",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-validations",
)


class SchemaError(ValueError):
    """The models produced something a structural schema cannot hold."""


def structural(model: type[BaseModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of ``model`` as written in the resource (camelCase)."""
    # Serialization mode: defaults as the resource writes them (a Duration's default is "30s").
    raw = model.model_json_schema(by_alias=True, mode="serialization")
    defs = raw.pop("$defs", {})
    out = _node(_definition(raw), defs, "")
    _check(out, "")
    return out


def _definition(schema: dict[str, Any]) -> dict[str, Any]:
    """A model's own schema without what belongs to the code (title, docstring)."""
    return {k: v for k, v in schema.items() if k not in ("title", "description")}


def _node(schema: dict[str, Any], defs: dict[str, Any], path: str) -> dict[str, Any]:
    schema = dict(schema)
    if "anyOf" in schema:
        options = [o for o in schema.pop("anyOf") if o != {"type": "null"}]
        if len(options) != 1:
            raise SchemaError(f"{path or '<root>'}: a union of {len(options)} types has no structural schema")
        if schema.get("default", ...) is None:
            del schema["default"]
        schema = {**options[0], **schema}
    if "$ref" in schema:
        name = schema.pop("$ref").removeprefix("#/$defs/")
        schema = {**_definition(defs[name]), **schema}
    schema.pop("title", None)
    if schema.get("additionalProperties") is False:
        del schema["additionalProperties"]
    unknown = set(schema) - set(KEYWORDS)
    if unknown:
        raise SchemaError(
            f"{path or '<root>'}: keywords a structural schema cannot have here: {sorted(unknown)}"
        )
    out: dict[str, Any] = {}
    for key in sorted(schema, key=KEYWORDS.index):
        value = schema[key]
        if key == "properties":
            out[key] = {name: _node(sub, defs, f"{path}.{name}") for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _node(value, defs, f"{path}[]")
        elif key == "x-kubernetes-validations":
            out[key] = [{"rule": v["rule"], "message": v["message"]} for v in value]
        else:
            out[key] = value
    return out


def _check(node: dict[str, Any], path: str) -> None:
    where = path or "<root>"
    if "type" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        raise SchemaError(f"{where}: every node of a structural schema needs a type")
    if "properties" in node and "additionalProperties" in node:
        raise SchemaError(f"{where}: properties and additionalProperties exclude each other")
    for name, sub in node.get("properties", {}).items():
        _check(sub, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            _check(node[key], f"{path}[]")
