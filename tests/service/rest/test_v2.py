"""KServe V2 / Open Inference Protocol endpoints on the real app."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient


def test_health_and_server_metadata(client: TestClient) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2").json()["name"] == "modelship"
    assert client.get("/v2/models").json() == {"models": ["linear", "multi"]}


def test_model_ready_and_metadata(client: TestClient) -> None:
    assert client.get("/v2/models/linear/ready").json() == {"name": "linear", "version": "1", "ready": True}
    assert client.get("/v2/models/linear/versions/1/ready").status_code == 200
    assert client.get("/v2/models/nope/ready").status_code == 503
    meta = client.get("/v2/models/linear").json()
    assert meta["platform"] == "tensorflow_savedmodel"
    assert meta["versions"] == ["1"]
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 3]}]
    assert meta["outputs"] == [{"name": "y", "datatype": "FP32", "shape": [-1]}]


def test_infer_flat_and_nested_with_id(client: TestClient) -> None:
    v1 = client.post("/v1/models/linear:predict", json={"instances": [[1, 2, 3], [4, 5, 6]]}).json()
    for data in ([1, 2, 3, 4, 5, 6], [[1, 2, 3], [4, 5, 6]]):
        r = client.post(
            "/v2/models/linear/versions/1/infer",
            json={
                "id": "req-1",
                "inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": data}],
            },
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["id"] == "req-1"
        assert body["model_name"] == "linear"
        assert body["model_version"] == "1"
        assert body["outputs"][0]["shape"] == [2]
        assert body["outputs"][0]["datatype"] == "FP32"
        assert body["outputs"][0]["data"] == pytest.approx(v1["predictions"])


def test_infer_output_filter_on_multi(client: TestClient) -> None:
    r = client.post(
        "/v2/models/multi/infer",
        json={
            "inputs": [
                {"name": "a", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]},
                {"name": "b", "shape": [1], "datatype": "INT64", "data": [3]},
                {"name": "s", "shape": [1], "datatype": "BYTES", "data": ["abc"]},
            ],
            "outputs": [{"name": "length"}],
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["outputs"] == [{"name": "length", "shape": [1], "datatype": "INT32", "data": [3]}]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"inputs": []}, 400, "non-empty list"),
        (
            {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]},
            400,
            "expects 'FP32'",
        ),
        (
            {"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3]}]},
            400,
            "needs 6 values",
        ),
        (
            {"inputs": [{"name": "q", "shape": [1], "datatype": "FP32", "data": [1]}]},
            400,
            "unexpected input 'q'",
        ),
        (
            {
                "inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}],
                "outputs": [{"name": "zz"}],
            },
            400,
            "output tensor alias not found",
        ),
        (
            {"inputs": [{"name": "x", "shape": [-1, 3], "datatype": "FP32", "data": [1, 2, 3]}]},
            400,
            "non-negative",
        ),
    ],
)
def test_infer_errors(client: TestClient, body: object, status: int, message: str) -> None:
    r = client.post("/v2/models/linear/infer", json=body)
    assert r.status_code == status, r.text
    assert message in r.json()["error"]


def test_unknown_routes_and_models_have_the_error_shape(client: TestClient) -> None:
    r = client.get("/nothing-here")
    assert r.status_code == 404
    assert set(r.json()) == {"error"}
    r = client.post("/v2/models/nope/infer", json={})
    assert r.status_code == 404
    assert "nope" in r.json()["error"]
