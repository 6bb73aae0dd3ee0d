"""Bad input over REST never gets a 500: one test per case found, each named after it."""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from service.dataplane import DataPlane
from tests.service.rest.conftest import make_client


def _error(r: object, status: int) -> str:
    assert r.status_code == status, r.text  # type: ignore[attr-defined]
    body = r.json()  # type: ignore[attr-defined]
    assert set(body) == {"error"}
    return str(body["error"])


@pytest.mark.parametrize("verb", ["regress", "classify"])
def test_examples_with_invalid_base64_are_400_not_500(client: TestClient, verb: str) -> None:
    model = "linear" if verb == "regress" else "multi"
    r = client.post(f"/v1/models/{model}:{verb}", json={"examples": [{"x": {"b64": "a"}}]})
    assert "example 0: feature 'x': invalid base64" in _error(r, 400)
    r = client.post(
        f"/v1/models/{model}:{verb}", json={"examples": [{"f": 1.0}], "context": {"c": {"b64": "!"}}}
    )
    assert "context: feature 'c': invalid base64" in _error(r, 400)


def test_regress_with_a_feature_of_the_wrong_length_names_the_feature(client: TestClient) -> None:
    r = client.post(
        "/v1/models/linear:regress", json={"examples": [{"x0": [1.0, 2.0], "x1": 1.0, "x2": 1.0}]}
    )
    message = _error(r, 400)
    assert "Key: x0" in message
    assert "Graph execution error" not in message
    r = client.post("/v1/models/linear:regress", json={"examples": [{"x": [1.0, 2.0, 3.0]}]})
    assert "Feature: x0 (data type: float) is required but could not be found" in _error(r, 400)


@pytest.mark.parametrize("body", [b'{"instances": [[1e400, 1, 1]]}', b'{"instances": [[1, -2E+999, 1]]}'])
def test_a_number_too_big_for_a_double_is_a_parse_error_not_infinity(client: TestClient, body: bytes) -> None:
    r = client.post("/v1/models/linear:predict", content=body)
    assert _error(r, 400).startswith("JSON Parse error: Number too big to be stored in double")


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"parameters": [1]}, "parameters: must be an object"),
        ({"parameters": {"p": [1]}}, "parameters.p: must be a string, number or boolean"),
        ({"id": 42}, "'id' must be a string"),
        ({"inputs": {"name": "x"}}, "'inputs' must be a non-empty list"),
        ({"inputs": ["x"]}, "inputs[0] must be an object"),
        (
            {"inputs": [{"name": 3, "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]},
            "inputs[0] needs 'name'",
        ),
        (
            {"inputs": [{"name": "x", "shape": "1,3", "datatype": "FP32", "data": [1, 2, 3]}]},
            "inputs[0].shape",
        ),
        (
            {"inputs": [{"name": "x", "shape": [1, "3"], "datatype": "FP32", "data": [1, 2, 3]}]},
            "inputs[0].shape[1]",
        ),
        (
            {"inputs": [{"name": "x", "shape": [1, True], "datatype": "FP32", "data": [1]}]},
            "inputs[0].shape[1]",
        ),
        (
            {"inputs": [{"name": "x", "shape": [1, 3], "datatype": 32, "data": [1, 2, 3]}]},
            "inputs[0].datatype",
        ),
        (
            {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FLOAT32", "data": [1, 2, 3]}]},
            "inputs[0].datatype",
        ),
        (
            {
                "inputs": [
                    {"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3], "parameters": 7}
                ]
            },
            "inputs[0].parameters",
        ),
        ({"outputs": {"name": "y"}}, "'outputs' must be a list"),
        ({"outputs": [{"name": "y", "parameters": ["binary_data"]}]}, "outputs[0].parameters"),
    ],
)
def test_v2_fields_of_the_wrong_json_type_are_400_naming_the_field(
    client: TestClient, doc: dict[str, object], field: str
) -> None:
    body = {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}], **doc}
    assert field in _error(client.post("/v2/models/linear/infer", json=body), 400)


@pytest.mark.parametrize("shape", [[2**62, 4], [0, 2**63 - 1], [0, 2**40, 2**40], [1] * 40, [2**63]])
def test_v2_shapes_numpy_cannot_hold_are_400(client: TestClient, shape: list[int]) -> None:
    body = json.dumps({"inputs": [{"name": "x", "shape": shape, "datatype": "FP32", "data": []}]})
    message = _error(client.post("/v2/models/linear/infer", content=body), 400)
    assert "input 'x'" in message or "inputs[0].shape[1]" in message or "inputs[0].shape[0]" in message


def test_lone_surrogates_in_strings_and_feature_names_are_400(client: TestClient) -> None:
    r = client.post(
        "/v1/models/multi:predict", content=b'{"instances": [{"a": [1, 2], "b": 1, "s": "\\ud83d"}]}'
    )
    assert "lone surrogate" in _error(r, 400)
    r = client.post("/v1/models/multi:classify", content=b'{"examples": [{"\\udc00": 1.0}]}')
    assert "feature name: string is not valid Unicode" in _error(r, 400)
    r = client.post("/v1/models/multi:classify", content=b'{"examples": [{"f": "\\ud800"}]}')
    assert "feature 'f'" in _error(r, 400)


def test_one_long_string_among_numbers_is_refused_before_numpy_expands_it(client: TestClient) -> None:
    # numpy would turn 20,000 numbers and one 10,000-letter string into an 800 MB text array.
    body = json.dumps({"instances": [[1.0, 2.0, 3.0]] * 20_000 + [["x" * 10_000, 1.0, 2.0]]})
    r = client.post("/v1/models/linear:predict", content=body)
    assert "JSON value of type string is not of expected type DT_FLOAT" in _error(r, 400)


def test_a_truncated_gzip_body_is_400(client: TestClient) -> None:
    packed = gzip.compress(b'{"instances": [[1.0, 2.0, 3.0]]}')
    r = client.post("/v1/models/linear:predict", content=packed[:-12], headers={"Content-Encoding": "gzip"})
    assert "invalid gzip request body" in _error(r, 400)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/models/linear:predict", {"instances": [[1.0, 2.0, 3.0]]}),
        (
            "POST",
            "/v2/models/linear/infer",
            {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]},
        ),
    ],
)
def test_an_unexpected_error_is_a_json_500_logged_and_counted(
    model_base: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    method: str,
    path: str,
    body: object,
) -> None:
    async def broken(*_: object, **__: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(DataPlane, "predict", broken)
    with make_client(model_base, raise_server_exceptions=False) as c, caplog.at_level(logging.ERROR):
        r = c.request(method, path, json=body)
        assert _error(r, 500) == "internal error"
        assert "secret internals" not in r.text
        assert "RuntimeError: secret internals" in caplog.text  # the traceback is in the log
        assert "1.0, 2.0" not in caplog.text  # the payload is not
        assert 'modelship_internal_errors_total{transport="rest"} 1.0' in c.get("/metrics").text


def test_client_chosen_model_names_cannot_grow_the_metrics_without_bound(model_base: Path) -> None:
    with make_client(model_base) as c:
        for i in range(40):
            assert c.post(f"/v1/models/m{i}:predict", json={"instances": [[1.0]]}).status_code == 404
        text = c.get("/metrics").text
        names = {
            line.split('model="', 1)[1].split('"', 1)[0]
            for line in text.splitlines()
            if line.startswith("modelship_requests_total{")
        }
        assert len(names) == 17, names  # the first 16 unknown names, then "(other)"
        assert "(other)" in names


# "²" and "١" are digits to str.isdigit; int() refuses the first and reads the second as 1
@pytest.mark.parametrize("version", ["%C2%B2", "%D9%A1", "abc", "-1"])
def test_a_v2_version_that_is_not_ascii_digits_is_400(client: TestClient, version: str) -> None:
    body = {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}
    r = client.post(f"/v2/models/linear/versions/{version}/infer", json=body)
    assert _error(r, 400).startswith("version must be an integer, got ")
    assert _error(client.get(f"/v2/models/linear/versions/{version}"), 400).startswith("version must be")
    assert _error(client.get(f"/v2/models/linear/versions/{version}/ready"), 400).startswith("version must")


@pytest.mark.parametrize("version", ["%C2%B2", "%D9%A1"])
def test_a_v1_version_that_is_not_ascii_digits_is_malformed(client: TestClient, version: str) -> None:
    """``\\d`` would take "١" (Arabic-Indic one) and serve version 1; TF Serving's routes take [0-9]."""
    r = client.post(f"/v1/models/linear/versions/{version}:predict", json={"instances": [[1, 2, 3]]})
    assert _error(r, 400).startswith("Malformed request")
    assert _error(client.get(f"/v1/models/linear/versions/{version}"), 400).startswith("Malformed request")
