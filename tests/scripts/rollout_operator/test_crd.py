"""The CRD: names, defaults that agree with the code, the example, and a status schema that prunes nothing."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from rollout_operator import names
from rollout_operator.phases import PHASES
from rollout_operator.spec import parse_spec
from rollout_operator.status import Status
from tests.scripts.rollout_operator.sim import World, result, spec_dict

REPO = Path(__file__).resolve().parents[3]
CRD_PATH = REPO / "k8s" / "crds" / "modelship.io_modelrollouts.yaml"
EXAMPLE = REPO / "k8s" / "operator" / "example-modelrollout.yaml"


def crd() -> dict[str, Any]:
    return yaml.safe_load(CRD_PATH.read_text())


def schema() -> dict[str, Any]:
    (version,) = crd()["spec"]["versions"]
    return version["schema"]["openAPIV3Schema"]


def closed(node: Any) -> Any:
    """A JSON-schema copy where objects with listed properties reject anything else (as pruning would)."""
    node = copy.deepcopy(node)

    def walk(n: Any) -> None:
        if isinstance(n, dict):
            if (
                "properties" in n
                and "additionalProperties" not in n
                and not n.get("x-kubernetes-preserve-unknown-fields")
            ):
                n["additionalProperties"] = False
            for value in n.values():
                walk(value)
        elif isinstance(n, list):
            for value in n:
                walk(value)

    walk(node)
    return node


def apply_defaults(node: dict[str, Any], value: Any) -> Any:
    """Structural-schema defaulting, as the API server does it on write."""
    if isinstance(value, dict) and "properties" in node:
        for key, sub in node["properties"].items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                value[key] = apply_defaults(sub, value[key])
    elif isinstance(value, list) and "items" in node:
        return [apply_defaults(node["items"], v) for v in value]
    return value


def test_names_match_the_code() -> None:
    c = crd()
    assert c["metadata"]["name"] == f"{names.PLURAL}.{names.GROUP}"
    assert c["spec"]["group"] == names.GROUP
    assert c["spec"]["names"]["kind"] == names.KIND
    assert c["spec"]["scope"] == "Namespaced"
    (version,) = c["spec"]["versions"]
    assert version["name"] == names.VERSION
    assert version["subresources"] == {"status": {}}


def test_printer_columns_point_at_status_fields_the_operator_writes() -> None:
    w = World(spec_dict(), measure=lambda world: result("Successful"))
    for _ in range(8):
        w.tick()
    obj = {"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"}, "status": w.status}
    (version,) = crd()["spec"]["versions"]
    for column in version["additionalPrinterColumns"]:
        node: Any = obj
        for part in column["jsonPath"].lstrip(".").split("."):
            node = node[part]
        assert node is not None, column
    assert w.status["progress"] == f"{w.status['currentStep']}/4"


def test_status_schema_keeps_every_field_the_operator_writes() -> None:
    status_schema = closed(schema()["properties"]["status"])
    phases = set()
    for spec_overrides, measure in [
        ({}, "Successful"),
        ({}, "Failed"),
        ({"strategy": {"type": "rolling"}}, "Successful"),
    ]:
        w = World(spec_dict(**spec_overrides), measure=lambda world, m=measure: result(m))  # type: ignore[misc]
        for _ in range(40):
            w.tick()
            jsonschema.validate(w.status, status_schema)
            phases.add(w.status["phase"])
        w.command("promote", "x")
        w.tick()
        jsonschema.validate(w.status, status_schema)
    assert {"Progressing", "Paused", "Promoting", "Succeeded", "Failed"} <= phases
    assert set(schema()["properties"]["status"]["properties"]["phase"]["enum"]) == {"", *PHASES}


def test_crd_defaults_agree_with_the_code() -> None:
    bare = yaml.safe_load(EXAMPLE.read_text())["spec"]
    bare["analysis"] = {
        "errorRatio": {},
        "disagreement": {"inputs": [[1, 2, 3]]},
        "prometheus": {"url": "http://p"},
    }
    bare["strategy"] = {"canary": {"steps": [{"setWeight": 10}]}}
    for key in ("progressDeadlineSeconds",):
        bare.pop(key, None)
    defaulted = apply_defaults(schema()["properties"]["spec"], copy.deepcopy(bare))
    assert defaulted != bare  # the CRD did fill things in
    assert parse_spec(defaulted) == parse_spec(bare)


@pytest.mark.parametrize(
    ("example", "strategy"),
    [(EXAMPLE, "canary"), (EXAMPLE.with_name("example-modelrollout-traffic.yaml"), "traffic")],
)
def test_examples_are_valid(example: Path, strategy: str) -> None:
    doc = yaml.safe_load(example.read_text())
    assert (doc["apiVersion"], doc["kind"]) == (names.API_VERSION, names.KIND)
    jsonschema.validate(doc["spec"], closed(schema()["properties"]["spec"]))
    spec = parse_spec(doc["spec"])
    assert spec.strategy.type == strategy
    assert spec.analysis is not None
    assert spec.analysis.disagreement is not None


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("model.version", 0),
        ("model.source.sha256", "nothex"),
        ("strategy.type", "blue"),
        ("strategy.canary.steps", [{"setWeight": 100}]),
        ("analysis.interval", "soon"),
        ("analysis.errorRatio", {"max": 1.5}),
        ("progressDeadlineSeconds", 1),
        ("targetRef.name", "Bad"),
        ("unknownField", True),
    ],
)
def test_schema_rejects(path: str, value: Any) -> None:
    doc = yaml.safe_load(EXAMPLE.read_text())["spec"]
    node = doc
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, closed(schema()["properties"]["spec"]))


def test_status_round_trip_of_an_empty_status() -> None:
    assert Status.from_dict(None).to_dict() == Status().to_dict()
