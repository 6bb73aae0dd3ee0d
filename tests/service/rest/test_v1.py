"""TF Serving REST v1 on the real app: shapes, formats, codes and messages as TF Serving gives them."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from starlette.testclient import TestClient

from tests.fixtures import expected_linear
from tests.service.rest.conftest import make_client

ROWS = [[1.0, 2.0, 3.0], [-1.0, 0.5, 0.0]]


def test_predict_row_format_matches_tensorflow(client: TestClient, model_base: Path) -> None:
    r = client.post("/v1/models/linear:predict", json={"instances": ROWS})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    want = expected_linear(model_base / "linear" / "1", np.array(ROWS, dtype=np.float32))
    np.testing.assert_allclose(r.json()["predictions"], want, rtol=1e-6)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/models/linear/versions/1:predict",
        "/v1/models/linear/labels/stable:predict",
        "/V1/MODELS/linear:PREDICT",
    ],
)
def test_predict_by_version_label_and_case(client: TestClient, path: str) -> None:
    r = client.post(path, json={"instances": ROWS})
    assert r.status_code == 200, r.text
    assert len(r.json()["predictions"]) == 2


def test_predict_columnar_format(client: TestClient) -> None:
    r = client.post("/v1/models/linear:predict", json={"inputs": ROWS, "signature_name": "serving_default"})
    assert r.status_code == 200
    assert len(r.json()["outputs"]) == 2


def test_multi_input_row_and_columnar(client: TestClient) -> None:
    rows = [
        {"a": [1.0, 2.0], "b": 3, "s": "hé"},
        {"a": [0.0, 0.5], "b": -1, "s": {"b64": base64.b64encode(b"\x00\x01").decode()}},
    ]
    r = client.post("/v1/models/multi:predict", json={"instances": rows})
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    assert preds[0]["total"] == 6.0
    assert preds[0]["length"] == 3
    assert preds[0]["echo_bytes"] == {"b64": base64.b64encode("hé".encode()).decode()}
    assert preds[1]["total"] == -0.5
    r = client.post(
        "/v1/models/multi:predict", json={"inputs": {"a": [[1, 1]], "b": [1], "s": ["x"], "extra": 1}}
    )
    assert r.status_code == 200, r.text
    assert r.json()["outputs"]["total"] == [3.0]


def test_classify_and_regress(client: TestClient) -> None:
    r = client.post("/v1/models/multi:classify", json={"examples": [{"f": 0.0}, {"f": 10.0}]})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert results[0] == [["neg", 0.5], ["pos", 0.5]]
    assert results[1][1][0] == "pos"
    assert results[1][1][1] > 0.99
    r = client.post("/v1/models/linear:regress", json={"examples": [{"x0": 1.0, "x1": 2.0, "x2": 3.0}]})
    assert r.status_code == 200, r.text
    p = client.post("/v1/models/linear:predict", json={"instances": [[1.0, 2.0, 3.0]]}).json()
    assert r.json()["results"][0] == pytest.approx(p["predictions"][0], rel=1e-6)
    r = client.post(
        "/v1/models/linear:regress", json={"context": {"x0": 1.0, "x1": 2.0}, "examples": [{"x2": 3.0}]}
    )
    assert r.json()["results"][0] == pytest.approx(p["predictions"][0], rel=1e-6)


def test_status_and_metadata_shapes(client: TestClient) -> None:
    r = client.get("/v1/models/linear")
    assert r.json() == {
        "model_version_status": [
            {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        ]
    }
    assert client.get("/v1/models/linear/versions/1").status_code == 200
    meta = client.get("/v1/models/linear/metadata").json()
    assert meta["model_spec"] == {"name": "linear", "signature_name": "", "version": "1"}
    sigs = meta["metadata"]["signature_def"]["signature_def"]
    x = sigs["serving_default"]["inputs"]["x"]
    assert x["dtype"] == "DT_FLOAT"
    assert x["tensor_shape"]["dim"] == [{"size": "-1", "name": ""}, {"size": "3", "name": ""}]
    assert sigs["serving_default"]["method_name"] == "tensorflow/serving/predict"
    assert sigs["regress"]["method_name"] == "tensorflow/serving/regress"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        (
            "POST",
            "/v1/models/nope:predict",
            {"instances": ROWS},
            404,
            "Servable not found for request: Latest(nope)",
        ),
        ("POST", "/v1/models/linear/versions/9:predict", {"instances": ROWS}, 404, "Specific(linear, 9)"),
        (
            "POST",
            "/v1/models/linear/labels/zzz:predict",
            {"instances": ROWS},
            400,
            "Unrecognized servable version label: zzz",
        ),
        (
            "POST",
            "/v1/models/linear/labels/canary:predict",
            {"instances": ROWS},
            503,
            "not currently available",
        ),
        ("GET", "/v1/models/nope", None, 404, "Could not find any versions of model nope"),
        ("GET", "/v1/models/linear/versions/7", None, 404, "Could not find version 7 of model linear"),
        ("GET", "/v1/models", None, 400, "Missing model name in request."),
        ("GET", "/v1/models/linear:predict", None, 400, "Malformed request: GET /v1/models/linear:predict"),
        ("POST", "/v1/models/linear/metadata", {}, 400, "Malformed request"),
        ("PUT", "/v1/models/linear:predict", {}, 400, "Malformed request: PUT"),
        ("POST", "/v1/models/linear:predict", {}, 400, "Missing 'inputs' or 'instances' key"),
        (
            "POST",
            "/v1/models/linear:predict",
            {"inputs": 1, "instances": 1},
            400,
            "only one of 'inputs' or 'instances'",
        ),
        ("POST", "/v1/models/linear:predict", {"instances": []}, 400, "No values in 'instances' array"),
        (
            "POST",
            "/v1/models/linear:predict",
            {"instances": 5},
            400,
            "Expecting 'instances' to be an list/array",
        ),
        (
            "POST",
            "/v1/models/linear:predict",
            {"instances": [[1, 2]]},
            400,
            "input 'x' expects shape [-1,3], got [1,2]",
        ),
        (
            "POST",
            "/v1/models/linear:predict",
            {"instances": [[1, 2, 3], [1, 2]]},
            400,
            "input 'x': Encountered list at unexpected size",
        ),
        (
            "POST",
            "/v1/models/linear:predict",
            {"instances": [["a", "b", "c"]]},
            400,
            "input 'x': JSON value of type string is not of expected type DT_FLOAT",
        ),
        (
            "POST",
            "/v1/models/linear:predict",
            {"instances": ROWS, "signature_name": 3},
            400,
            "'signature_name' key must be a string value.",
        ),
        (
            "POST",
            "/v1/models/linear:predict",
            {"instances": ROWS, "signature_name": "nope"},
            400,
            'signature key "nope" not found',
        ),
        (
            "POST",
            "/v1/models/multi:predict",
            {"instances": [{"a": [1, 2], "b": 1.5, "s": "x"}]},
            400,
            "input 'b': JSON value of type number is not of expected type DT_INT64",
        ),
        (
            "POST",
            "/v1/models/multi:predict",
            {"instances": [{"a": [1, 2], "b": 1}]},
            400,
            "keys ['a', 'b'] do not match",
        ),
        (
            "POST",
            "/v1/models/multi:predict",
            {"inputs": {"a": [[1, 2]], "b": [1]}},
            400,
            "Missing named input: s in 'inputs' object.",
        ),
        (
            "POST",
            "/v1/models/multi:predict",
            {"instances": [{"a": [1, 2], "b": 1, "s": {"b64": "!!"}}]},
            400,
            "invalid base64",
        ),
        ("POST", "/v1/models/linear:regress", {"instances": ROWS}, 400, "key 'examples' is expected"),
        (
            "POST",
            "/v1/models/linear:classify",
            {"examples": [{"x0": 1.0}]},
            400,
            "Expected classify signature method_name",
        ),
        ("POST", "/v1/models/linear:regress", {"examples": [{"x0": [[1.0]]}]}, 400, "no nesting"),
    ],
)
def test_errors_have_tf_serving_codes_and_messages(
    client: TestClient, method: str, path: str, body: object, status: int, message: str
) -> None:
    r = client.request(method, path, content=json.dumps(body) if body is not None else None)
    assert r.status_code == status, r.text
    assert message in r.json()["error"]
    assert set(r.json()) == {"error"}


@pytest.mark.parametrize(
    ("body", "message"),
    [(b"", "The document is empty"), (b"{", "JSON Parse error"), (b"[1,2]", "Is not object")],
)
def test_malformed_json(client: TestClient, body: bytes, message: str) -> None:
    r = client.post("/v1/models/linear:predict", content=body)
    assert r.status_code == 400
    assert message in r.json()["error"]


def test_nan_and_infinity_are_parsed_and_written_as_tf_serving_does(client: TestClient) -> None:
    r = client.post(
        "/v1/models/multi:predict",
        content=b'{"instances": [{"a": [NaN, 1], "b": 1, "s": ""}, {"a": [Infinity, 1], "b": 1, "s": ""}]}',
    )
    assert r.status_code == 200, r.text
    assert b"NaN" in r.content
    assert b"Infinity" in r.content
    # the Modelship linear model declares allow_non_finite: false in its manifest
    r = client.post("/v1/models/linear:predict", content=b'{"instances": [[NaN, 1, 2]]}')
    assert r.status_code == 400
    assert "input 'x' contains NaN or Infinity" in r.json()["error"]


def test_gzip_body_and_size_limit(model_base: Path) -> None:
    with make_client(model_base, max_body=2000) as c:
        body = json.dumps({"instances": ROWS}).encode()
        r = c.post(
            "/v1/models/linear:predict", content=gzip.compress(body), headers={"Content-Encoding": "gzip"}
        )
        assert r.status_code == 200, r.text
        big = json.dumps({"instances": [[1.0, 2.0, 3.0]] * 500}).encode()
        assert c.post("/v1/models/linear:predict", content=big).status_code == 413
        bomb = gzip.compress(b" " * 100_000)
        r = c.post("/v1/models/linear:predict", content=bomb, headers={"Content-Encoding": "gzip"})
        assert r.status_code == 413
        assert "decompressed" in r.json()["error"]


def test_bearer_token_guards_inference_and_metadata_not_health(model_base: Path) -> None:
    with make_client(model_base, token="s3cret") as c:
        assert c.post("/v1/models/linear:predict", json={"instances": ROWS}).status_code == 401
        assert (
            c.get("/v1/models/linear/metadata", headers={"Authorization": "Bearer wrong"}).status_code == 401
        )
        assert c.post("/v2/models/linear/infer", json={}).status_code == 401
        ok = c.post(
            "/v1/models/linear:predict", json={"instances": ROWS}, headers={"Authorization": "Bearer s3cret"}
        )
        assert ok.status_code == 200
        assert c.get("/v2/health/ready").status_code == 200
        assert c.get("/v2/health/live").status_code == 200
        assert c.get("/metrics").status_code == 200


def test_cors_preflight(client: TestClient) -> None:
    assert client.options("/v1/models/linear:predict").status_code == 400
    assert (
        client.options("/v1/models/linear:predict", headers={"Origin": "https://x.example"}).status_code
        == 200
    )


def test_metrics_count_requests_by_model_version_api_code(client: TestClient) -> None:
    client.post("/v1/models/linear:predict", json={"instances": ROWS})
    client.post("/v1/models/linear:predict", json={"instances": [[1]]})
    text = client.get("/metrics").text
    assert (
        'modelship_requests_total{api="predict",code="OK",model="linear",transport="rest",version="1"}'
        in text
    )
    assert 'code="INVALID_ARGUMENT",model="linear"' in text
    assert 'modelship_model_version_state{model="linear",state="AVAILABLE",version="1"} 1.0' in text
    assert "modelship_request_duration_seconds_bucket" in text
    tf_text = client.get("/monitoring/prometheus/metrics").text
    assert ':tensorflow:serving:request_count{model_name="linear",status="OK"}' in tf_text
