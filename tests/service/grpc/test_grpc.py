"""gRPC with the official tensorflow-serving-api stubs against the real server process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
import tensorflow as tf
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from tests.fixtures import ServerProcess, expected_linear

pytestmark = pytest.mark.slow
X = np.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 0.0]], dtype=np.float32)


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, model_base: Path, grpc_server_flag: str
) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("grpc")
    cfg = tmp / "models.config"
    cfg.write_text(f"""model_config_list {{
        config {{ name: 'linear' base_path: '{model_base / "linear"}' version_labels {{ key: 'stable' value: 1 }} }}
        config {{ name: 'multi' base_path: '{model_base / "multi"}' }} }}""")
    with ServerProcess.running([f"--model_config_file={cfg}", grpc_server_flag], tmp / "server.log") as proc:
        yield proc


def _predict_request(name: str = "linear", **spec: object) -> predict_pb2.PredictRequest:
    req = predict_pb2.PredictRequest()
    req.model_spec.name = name
    for key, value in spec.items():
        if key == "version":
            req.model_spec.version.value = value  # type: ignore[assignment]
        else:
            setattr(req.model_spec, key, value)
    req.inputs["x"].CopyFrom(tf.make_tensor_proto(X))
    return req


@pytest.mark.parametrize(
    "spec", [{}, {"version": 1}, {"version_label": "stable"}, {"signature_name": "serving_default"}]
)
def test_predict_by_name_version_label(
    channel: grpc.Channel, model_base: Path, spec: dict[str, object]
) -> None:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    response = stub.Predict(_predict_request(**spec), timeout=10)
    y = response.outputs["y"]
    assert y.dtype == tf.float32.as_datatype_enum
    assert not y.tensor_content, "outputs use typed fields, as TF Serving's"
    np.testing.assert_allclose(list(y.float_val), expected_linear(model_base / "linear" / "1", X), rtol=1e-6)
    assert tf.make_ndarray(y).shape == (2,)
    assert response.model_spec.name == "linear"
    assert response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "serving_default"


def test_typed_field_inputs_and_output_filter(channel: grpc.Channel) -> None:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    req = predict_pb2.PredictRequest()
    req.model_spec.name = "multi"
    a = req.inputs["a"]
    a.dtype = tf.float32.as_datatype_enum
    a.tensor_shape.dim.add(size=1)
    a.tensor_shape.dim.add(size=2)
    a.float_val.extend([1.0, 2.0])
    req.inputs["b"].CopyFrom(tf.make_tensor_proto(np.array([3], np.int64)))
    req.inputs["s"].CopyFrom(tf.make_tensor_proto([b"abcd"]))
    req.output_filter.append("length")
    response = stub.Predict(req, timeout=10)
    assert list(response.outputs) == ["length"]
    assert list(response.outputs["length"].int_val) == [4]


def test_classify_regress_multiinference(channel: grpc.Channel) -> None:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    req = classification_pb2.ClassificationRequest()
    req.model_spec.name = "multi"
    req.model_spec.signature_name = "classify"
    ex = req.input.example_list.examples.add()
    ex.features.feature["f"].float_list.value.append(10.0)
    result = stub.Classify(req, timeout=10).result.classifications[0].classes
    assert [c.label for c in result] == ["neg", "pos"]
    assert result[1].score > 0.99
    reg = regression_pb2.RegressionRequest()
    reg.model_spec.name = "linear"
    reg.model_spec.signature_name = "regress"
    ctx = reg.input.example_list_with_context
    ctx.context.features.feature["x0"].float_list.value.append(1.0)
    e = ctx.examples.add()
    e.features.feature["x1"].float_list.value.append(2.0)
    e.features.feature["x2"].float_list.value.append(3.0)
    value = stub.Regress(reg, timeout=10).result.regressions[0].value
    predicted = stub.Predict(_predict_request(), timeout=10).outputs["y"].float_val[0]
    assert value == pytest.approx(predicted, rel=1e-6)
    multi = inference_pb2.MultiInferenceRequest()
    task = multi.tasks.add()
    task.model_spec.name = "linear"
    task.model_spec.signature_name = "regress"
    task.method_name = "tensorflow/serving/regress"
    multi.input.CopyFrom(reg.input)
    out = stub.MultiInference(multi, timeout=10)
    assert out.results[0].regression_result.regressions[0].value == pytest.approx(value)


def test_metadata_and_status(channel: grpc.Channel) -> None:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    req = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    req.model_spec.name = "linear"
    meta = stub.GetModelMetadata(req, timeout=10)
    defs = get_model_metadata_pb2.SignatureDefMap()
    meta.metadata["signature_def"].Unpack(defs)
    assert set(defs.signature_def) == {"serving_default", "regress"}
    assert defs.signature_def["regress"].method_name == "tensorflow/serving/regress"
    status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
        get_model_status_pb2.GetModelStatusRequest(model_spec={"name": "linear"}), timeout=10
    )
    assert [(s.version, s.state) for s in status.model_version_status] == [(1, 30)]
    assert status.model_version_status[0].status.error_code == 0


@pytest.mark.parametrize(
    ("request_", "code", "message"),
    [
        (_predict_request("nope"), grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(nope)"),
        (_predict_request(version=7), grpc.StatusCode.NOT_FOUND, "Specific(linear, 7)"),
        (
            _predict_request(version_label="zzz"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "Unrecognized servable version label",
        ),
        (
            _predict_request(signature_name="nope"),
            grpc.StatusCode.FAILED_PRECONDITION,
            'Serving signature key "nope" not found.',
        ),
    ],
)
def test_errors_as_tf_serving_codes(
    channel: grpc.Channel, request_: predict_pb2.PredictRequest, code: grpc.StatusCode, message: str
) -> None:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    with pytest.raises(grpc.RpcError) as info:
        stub.Predict(request_, timeout=10)
    assert info.value.code() == code
    assert message in info.value.details()


def test_bad_input_is_invalid_argument(channel: grpc.Channel) -> None:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    cases = []
    req = _predict_request()
    req.inputs["x"].CopyFrom(tf.make_tensor_proto(np.zeros((1, 2), np.float32)))
    cases.append((req, "input 'x' expects shape [-1,3], got [1,2]"))
    req = _predict_request()
    req.inputs["x"].CopyFrom(tf.make_tensor_proto(np.zeros((1, 3), np.float64)))
    cases.append((req, "input 'x' expects DT_FLOAT"))
    req = _predict_request()
    req.inputs["x"].tensor_content = b"\0" * 5
    cases.append((req, "tensor_content has 5 bytes"))
    req = _predict_request()
    req.inputs["extra"].CopyFrom(tf.make_tensor_proto([1.0]))
    cases.append((req, "Sent extra: {extra}"))
    req = _predict_request()
    req.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([[np.nan, 1, 2]], np.float32)))
    cases.append((req, "contains NaN or Infinity"))
    for request_, message in cases:
        with pytest.raises(grpc.RpcError) as info:
            stub.Predict(request_, timeout=10)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, message
        assert message in info.value.details()
    metadata_req = get_model_metadata_pb2.GetModelMetadataRequest()
    metadata_req.model_spec.name = "linear"
    with pytest.raises(grpc.RpcError) as info:
        stub.GetModelMetadata(metadata_req, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_health_reflection_and_metrics(channel: grpc.Channel, server: ServerProcess) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "tensorflow.serving.PredictionService"):
        status = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status
        assert status == health_pb2.HealthCheckResponse.SERVING
    refl = reflection_pb2_grpc.ServerReflectionStub(channel)
    answer = next(
        iter(refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
    )
    names = {s.name for s in answer.list_services_response.service}
    assert {
        "tensorflow.serving.PredictionService",
        "tensorflow.serving.ModelService",
        "grpc.health.v1.Health",
    } <= names
    text = httpx.get(f"{server.url}/metrics").text
    assert 'api="Predict",code="OK",model="linear",transport="grpc",version="1"' in text
    assert 'api="Predict",code="NOT_FOUND",model="nope",transport="grpc"' in text
