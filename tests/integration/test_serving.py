"""helm install of the chart with the local image; predictions over REST and gRPC through
``kubectl port-forward`` on 127.0.0.1; ``helm test`` passes."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from tests.integration.release import Release
from tests.k8s import port_forward

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]
ROW = [1.0, 2.0, 3.0]


def _rest(base: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200
        return json.loads(resp.read())


def _predict_request() -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "linear"
    request.model_spec.signature_name = "serving_default"
    shape = tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=1), tensor_shape_pb2.TensorShapeProto.Dim(size=3)]
    )
    request.inputs["x"].CopyFrom(
        tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_shape=shape, float_val=ROW)
    )
    return request


def test_install_predict_over_rest_and_grpc_and_helm_test(release: Release, report: Any) -> None:
    release.helm("replicaCount=2")
    pods = release.wait_available(2)
    repository, tag = release.image
    for pod in pods:
        (container,) = pod["spec"]["containers"]
        assert container["image"] == f"{repository}:{tag}"
        assert container["imagePullPolicy"] == "IfNotPresent"

    with port_forward(release.kube, release.namespace, f"service/{release.fullname}", 8501, 8500) as ports:
        base = f"http://127.0.0.1:{ports[8501]}"
        assert _rest(base, "/v2/health/ready") == {"ready": True}
        status = _rest(base, "/v1/models/linear")["model_version_status"]
        assert [s["state"] for s in status] == ["AVAILABLE"]
        rest_y = _rest(base, "/v1/models/linear:predict", {"instances": [ROW]})["predictions"]
        assert len(rest_y) == 1
        assert isinstance(rest_y[0], float)

        with grpc.insecure_channel(f"127.0.0.1:{ports[8500]}") as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=30
            )
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            model_status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
                get_model_status_pb2.GetModelStatusRequest(model_spec={"name": "linear"}), timeout=30
            )
            assert [s.state for s in model_status.model_version_status] == [
                get_model_status_pb2.ModelVersionStatus.AVAILABLE
            ]
            reply = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
                _predict_request(), timeout=30
            )
            grpc_y = list(reply.outputs["y"].float_val)
            assert [d.size for d in reply.outputs["y"].tensor_shape.dim] == [1]
            assert reply.model_spec.name == "linear"
            assert reply.model_spec.version.value >= 1
    # Same model behind both protocols: the same answer (REST prints the float32 as a float).
    assert grpc_y == pytest.approx(rest_y, rel=1e-6)
    report(
        f"predict {ROW} -> REST {rest_y[0]:.6f}, gRPC {grpc_y[0]:.6f} (version {reply.model_spec.version.value})"
    )

    logs = release.helm_test()
    assert "PASS POST /v1/models/linear:predict -> 200" in logs
    assert "helm test: all checks passed" in logs
    report("helm test: all checks passed")
