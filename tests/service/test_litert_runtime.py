"""``--runtime=litert``: the server as the slim image runs it, in a real process with no TensorFlow.

The process runs ``python -S`` on a site directory holding every package of this environment except
TensorFlow and Keras, plus the generated protobuf modules ``service.protos`` copies (the slim
image's exact recipe): any TensorFlow import on the serving path fails the test. The same versions
are then served by the full runtime in another process to check that answers and metadata agree.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tests.fixtures import ServerProcess, expected_linear, export_linear, tensorflow_free_site

X = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [-1.5, 0.25, 4.0]], np.float32)


@pytest.fixture(scope="module")
def no_tf_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tensorflow_free_site(tmp_path_factory.mktemp("site") / "site-packages")


@pytest.fixture(scope="module")
def litert_base(tmp_path_factory: pytest.TempPathFactory, linear_run: Path) -> Path:
    """linear/1 exported with LiteRT artifacts, linear/2 without (``--no-litert``)."""
    base = tmp_path_factory.mktemp("litert-models")
    export_linear(linear_run, base, 1)
    export_linear(linear_run, base, 2, litert=False)
    return base


def _config(base: Path, tmp: Path) -> Path:
    path = tmp / "models.config"
    path.write_text(
        'model_config_list { config { name: "linear" base_path: "%s" model_platform: "tensorflow" '
        "model_version_policy { all {} } } }\n" % (base / "linear")
    )
    return path


@pytest.fixture(scope="module")
def slim_server(
    no_tf_site: Path, litert_base: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("slim-server")
    server = ServerProcess(
        ["--runtime=litert", f"--model_config_file={_config(litert_base, tmp)}"],
        env={"PYTHONPATH": str(no_tf_site)},
        log=tmp / "server.log",
        python=[sys.executable, "-S"],
    )
    try:
        server.wait_ready()
        yield server
    finally:
        assert server.terminate() == 0, server.logs()


@pytest.fixture(scope="module")
def full_server(litert_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("full-server")
    server = ServerProcess([f"--model_config_file={_config(litert_base, tmp)}"], log=tmp / "server.log")
    try:
        server.wait_ready()
        yield server
    finally:
        assert server.terminate() == 0, server.logs()


def test_the_site_really_has_no_tensorflow(no_tf_site: Path) -> None:
    assert not (no_tf_site / "tensorflow" / "__init__.py").exists()
    assert {p.suffix for p in (no_tf_site / "tensorflow").rglob("*") if p.is_file()} == {".py"}
    assert all(p.name.endswith("_pb2.py") for p in (no_tf_site / "tensorflow").rglob("*.py"))


def test_predict_over_rest_v2_and_grpc_equals_the_savedmodel(
    slim_server: ServerProcess, litert_base: Path
) -> None:
    want = expected_linear(litert_base / "linear" / "1", X)
    resp = httpx.post(
        f"{slim_server.url}/v1/models/linear/versions/1:predict", json={"instances": X.tolist()}, timeout=10
    )
    assert resp.status_code == 200, resp.text
    np.testing.assert_allclose(resp.json()["predictions"], want, rtol=1e-5, atol=1e-5)

    v2 = httpx.post(
        f"{slim_server.url}/v2/models/linear/versions/1/infer",
        json={"inputs": [{"name": "x", "shape": [3, 3], "datatype": "FP32", "data": X.ravel().tolist()}]},
        timeout=10,
    )
    assert v2.status_code == 200, v2.text
    np.testing.assert_allclose(v2.json()["outputs"][0]["data"], want, rtol=1e-5, atol=1e-5)

    with grpc.insecure_channel(f"127.0.0.1:{slim_server.grpc_port}") as channel:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "linear"
        request.model_spec.version.value = 1
        request.inputs["x"].CopyFrom(tf.make_tensor_proto(X))
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=10)
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["y"]), want, rtol=1e-5, atol=1e-5)


def test_large_requests_run_on_the_model_threads_interpreter(
    slim_server: ServerProcess, litert_base: Path
) -> None:
    rows = np.random.default_rng(3).normal(size=(500, 3)).astype(np.float32)  # > --inline_max_rows
    want = expected_linear(litert_base / "linear" / "1", rows)
    resp = httpx.post(
        f"{slim_server.url}/v1/models/linear/versions/1:predict",
        json={"instances": rows.tolist()},
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    np.testing.assert_allclose(resp.json()["predictions"], want, rtol=1e-5, atol=1e-5)


def test_a_version_without_artifacts_is_refused_with_its_reason(slim_server: ServerProcess) -> None:
    status = httpx.get(f"{slim_server.url}/v1/models/linear", timeout=5).json()["model_version_status"]
    by_version = {s["version"]: s for s in status}
    assert by_version["1"]["state"] == "AVAILABLE"
    assert by_version["2"]["state"] == "END"
    assert by_version["2"]["status"]["error_code"] == "FAILED_PRECONDITION"
    message = by_version["2"]["status"]["error_message"]
    assert "refusing version 2 of linear on the LiteRT-only runtime" in message
    assert "no verified LiteRT artifact" in message
    resp = httpx.post(
        f"{slim_server.url}/v1/models/linear/versions/2:predict", json={"instances": X.tolist()}, timeout=10
    )
    assert resp.status_code == 404, resp.text


def test_a_signature_without_an_artifact_answers_400_naming_why(slim_server: ServerProcess) -> None:
    resp = httpx.post(
        f"{slim_server.url}/v1/models/linear/versions/1:regress",
        json={"examples": [{"x0": 1.0, "x1": 2.0, "x2": 3.0}]},
        timeout=10,
    )
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert "signature regress of linear version 1 has no LiteRT artifact" in error
    assert "only predict signatures run on LiteRT" in error  # the reason export recorded


def test_metadata_is_the_same_as_the_full_runtime(
    slim_server: ServerProcess, full_server: ServerProcess
) -> None:
    path = "/v1/models/linear/versions/1/metadata"
    slim = httpx.get(f"{slim_server.url}{path}", timeout=10)
    full = httpx.get(f"{full_server.url}{path}", timeout=10)
    assert slim.status_code == full.status_code == 200
    assert slim.json() == full.json()
    v2 = "/v2/models/linear/versions/1"
    slim_v2 = httpx.get(f"{slim_server.url}{v2}", timeout=10).json()
    full_v2 = httpx.get(f"{full_server.url}{v2}", timeout=10).json()
    assert slim_v2.pop("versions") == ["1"]  # the slim server refused version 2
    assert full_v2.pop("versions") == ["2", "1"]
    assert slim_v2 == full_v2


def test_the_full_runtime_uses_the_exported_artifact_and_converts_the_rest(
    full_server: ServerProcess,
) -> None:
    log = full_server.logs()
    assert "version 1 of linear is AVAILABLE" in log
    line1 = next(line for line in log.splitlines() if "version 1 of linear is AVAILABLE" in line)
    line2 = next(line for line in log.splitlines() if "version 2 of linear is AVAILABLE" in line)
    assert "litert (exported)" in line1
    assert "litert (converted at load)" in line2
    assert "LiteRT for serving_default" in line1
    assert "LiteRT for serving_default" in line2
    # Both versions answer the same (version 2 was exported from the same run).
    for version in (1, 2):
        resp = httpx.post(
            f"{full_server.url}/v1/models/linear/versions/{version}:regress",
            json={"examples": [{"x0": 1.0, "x1": 2.0, "x2": 3.0}]},
            timeout=10,
        )
        assert resp.status_code == 200, resp.text


def test_runtime_auto_without_tensorflow_exits_2_with_a_clear_error(no_tf_site: Path, tmp_path: Path) -> None:
    server = ServerProcess(
        ["--model_name=linear", f"--model_base_path={tmp_path}"],
        env={"PYTHONPATH": str(no_tf_site)},
        log=tmp_path / "server.log",
        python=[sys.executable, "-S"],
    )
    assert server.wait(60) == 2
    assert "--runtime=auto needs TensorFlow, which is not installed here" in server.logs()
    assert "use --runtime=litert" in server.logs()
