"""The traffic ConfigMap the driver applies (other models kept, generation set) and the Helm refusal."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rollout_operator.names import LABEL_MANAGED_BY
from rollout_operator.traffic_driver import helm_owned, traffic_configmap
from rollout_operator.traffic_target import TrafficMount

MOUNT = TrafficMount(configmap="linear-traffic", key="traffic.json")
ENTRY = {"versions": [1, 2], "weights": {"1": 90, "2": 10}}


def configmap(text: str | None, labels: dict[str, str] | None = None) -> dict[str, Any]:
    data = {} if text is None else {"traffic.json": text}
    return {"metadata": {"name": "linear-traffic", "labels": labels or {}}, "data": data}


def file_of(body: dict[str, Any]) -> dict[str, Any]:
    assert list(body["data"]) == ["traffic.json"]
    doc: dict[str, Any] = json.loads(body["data"]["traffic.json"])
    return doc


def test_the_apply_body() -> None:
    body = traffic_configmap("ml", MOUNT, None, "linear", "linear-1-prep", ENTRY)
    assert body["apiVersion"] == "v1"
    assert body["kind"] == "ConfigMap"
    assert body["metadata"] == {"name": "linear-traffic", "namespace": "ml"}  # no labels: not Helm's
    assert file_of(body) == {"generation": "linear-1-prep", "models": {"linear": ENTRY}}


def test_other_models_and_fields_are_kept_and_the_generation_set() -> None:
    found = {
        "generation": "someone-else",
        "models": {
            "other": {"weights": {"3": 100}, "sticky_header": "x-user"},
            "linear": {"versions": [1]},
        },
    }
    body = traffic_configmap("ml", MOUNT, configmap(json.dumps(found)), "linear", "linear-2-0", ENTRY)
    doc = file_of(body)
    assert doc["generation"] == "linear-2-0"
    assert doc["models"] == {"other": found["models"]["other"], "linear": ENTRY}


def test_the_same_inputs_write_the_same_text() -> None:
    """A restarted operator writes the same bytes: no needless update of the ConfigMap."""
    found = configmap(json.dumps({"models": {"b": {}, "a": {}}}))
    one = traffic_configmap("ml", MOUNT, found, "linear", "g", ENTRY)
    again = traffic_configmap("ml", MOUNT, found, "linear", "g", dict(reversed(list(ENTRY.items()))))
    assert one == again


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '"text"', "", "   ", None])
def test_an_unparsable_or_missing_file_is_rewritten(text: str | None) -> None:
    body = traffic_configmap("ml", MOUNT, configmap(text), "linear", "linear-1-prep", ENTRY)
    assert file_of(body) == {"generation": "linear-1-prep", "models": {"linear": ENTRY}}


def test_models_that_are_not_a_mapping_are_replaced() -> None:
    found = configmap(json.dumps({"generation": "x", "models": ["linear"]}))
    assert file_of(traffic_configmap("ml", MOUNT, found, "linear", "g", ENTRY))["models"] == {"linear": ENTRY}


def test_another_key_of_the_configmap_is_read() -> None:
    mount = TrafficMount(configmap="cm", key="routes.json")
    found = {"data": {"routes.json": json.dumps({"models": {"other": {}}}), "traffic.json": "{}"}}
    body = traffic_configmap("ml", mount, found, "linear", "g", ENTRY)
    assert body["metadata"]["name"] == "cm"
    assert list(body["data"]) == ["routes.json"]  # only the key the server reads is applied
    assert set(json.loads(body["data"]["routes.json"])["models"]) == {"other", "linear"}


def test_a_helm_configmap_is_refused() -> None:
    message = helm_owned(configmap("{}", {LABEL_MANAGED_BY: "Helm"}), "linear-traffic")
    assert message is not None
    assert "linear-traffic" in message
    assert "traffic.existingConfigMap" in message


@pytest.mark.parametrize(
    "cm",
    [None, {}, {"metadata": {}}, configmap("{}"), configmap("{}", {LABEL_MANAGED_BY: "modelship-rollout"})],
)
def test_other_configmaps_are_not_refused(cm: dict[str, Any] | None) -> None:
    assert helm_owned(cm, "linear-traffic") is None
