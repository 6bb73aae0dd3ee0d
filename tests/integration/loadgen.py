"""A bounded, steady prediction load against a Service, run INSIDE the cluster.

The integration suite runs this file as ``python -c <source>`` in a pod made from the server
image (Python, grpcio and the tensorflow-serving-api stubs are there), pointed at the Service's
ClusterIP, so the traffic goes through kube-proxy to whatever endpoints are Ready, the path real
clients take. (A ``kubectl port-forward`` to a Service pins one pod and breaks when that pod goes
away, so it cannot measure a rollout.)

REST threads open a NEW connection per request, so every request is routed by kube-proxy on its
own; gRPC threads each keep ONE channel open for the whole run, as gRPC clients do, and rely on
the server's GOAWAY at shutdown to move to another pod. A request counts as failed on any
transport error, timeout, non-200 status or malformed answer: no retries. Every answer's version
(REST ``x-modelship-model-version``, gRPC ``model_spec.version``) is counted per protocol, so a
traffic split can be checked per client type.

Configuration by environment: LOAD_REST (host:port or empty), LOAD_GRPC (host:port or empty),
LOAD_MODEL, LOAD_REST_THREADS, LOAD_GRPC_THREADS, LOAD_INTERVAL (seconds each thread waits
between requests), LOAD_MAX_SECONDS, LOAD_MAX_REQUESTS, LOAD_TIMEOUT (per request),
LOAD_STOP_FILE (the run ends once it exists). Prints ``READY`` once the threads run,
``PROGRESS <json>`` every LOAD_REPORT_SECONDS and ``SUMMARY <json>`` at the end; exits 0 only
when nothing failed and something was served.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import threading
import time
from collections import Counter
from typing import Any

REST = os.environ.get("LOAD_REST", "")
GRPC = os.environ.get("LOAD_GRPC", "")
MODEL = os.environ.get("LOAD_MODEL", "linear")
REST_THREADS = int(os.environ.get("LOAD_REST_THREADS", "4"))
GRPC_THREADS = int(os.environ.get("LOAD_GRPC_THREADS", "2"))
INTERVAL = float(os.environ.get("LOAD_INTERVAL", "0.02"))
MAX_SECONDS = float(os.environ.get("LOAD_MAX_SECONDS", "300"))
MAX_REQUESTS = int(os.environ.get("LOAD_MAX_REQUESTS", "200000"))
TIMEOUT = float(os.environ.get("LOAD_TIMEOUT", "10"))
STOP_FILE = os.environ.get("LOAD_STOP_FILE", "/tmp/stop")
REPORT_SECONDS = float(os.environ.get("LOAD_REPORT_SECONDS", "2"))
BODY = json.dumps({"instances": [[1.0, 2.0, 3.0]]}).encode()


class Stats:
    """Thread-safe counters of served and failed requests per protocol."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ok: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.versions: dict[str, Counter[str]] = {}
        self.max_latency = 0.0
        self.first_error = ""

    def record(self, proto: str, latency: float, error: str | None, version: str = "") -> None:
        with self.lock:
            self.max_latency = max(self.max_latency, latency)
            if error is None:
                self.ok[proto] += 1
                self.versions.setdefault(proto, Counter())[version or "?"] += 1
            else:
                self.failed[proto] += 1
                self.errors[f"{proto}: {error[:120]}"] += 1
                self.first_error = self.first_error or f"t={time.monotonic() - START:.1f}s {proto}: {error}"

    def total(self) -> int:
        with self.lock:
            return sum(self.ok.values()) + sum(self.failed.values())

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "t": round(time.monotonic() - START, 1),
                "ok": dict(self.ok),
                "failed": dict(self.failed),
                "served": sum(self.ok.values()),
                "failures": sum(self.failed.values()),
                "versions": {proto: dict(counts) for proto, counts in self.versions.items()},
                "max_latency_s": round(self.max_latency, 3),
            }


START = time.monotonic()
STATS = Stats()
STOP = threading.Event()


def rest_once() -> tuple[str | None, str]:
    """One POST :predict on a fresh connection: (None when it succeeded, else the error; the
    version that answered)."""
    host, _, port = REST.rpartition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=TIMEOUT)
    try:
        conn.request(
            "POST",
            f"/v1/models/{MODEL}:predict",
            body=BODY,
            headers={"Content-Type": "application/json", "Connection": "close"},
        )
        resp = conn.getresponse()
        data = resp.read()
        version = resp.getheader("x-modelship-model-version") or ""
        if resp.status != 200:
            return f"HTTP {resp.status} {data[:80]!r}", version
        predictions = json.loads(data)["predictions"]
        return (None if len(predictions) == 1 else f"bad answer {data[:80]!r}"), version
    except (OSError, http.client.HTTPException, ValueError, KeyError) as err:
        return f"{type(err).__name__}: {err}", ""
    finally:
        conn.close()


def rest_worker() -> None:
    while not STOP.is_set():
        t0 = time.monotonic()
        error, version = rest_once()
        STATS.record("rest", time.monotonic() - t0, error, version)
        STOP.wait(INTERVAL)


def grpc_worker() -> None:
    import grpc
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.inputs["x"].CopyFrom(
        tensor_pb2.TensorProto(
            dtype=types_pb2.DT_FLOAT,
            float_val=[1.0, 2.0, 3.0],
            tensor_shape=tensor_shape_pb2.TensorShapeProto(
                dim=[
                    tensor_shape_pb2.TensorShapeProto.Dim(size=1),
                    tensor_shape_pb2.TensorShapeProto.Dim(size=3),
                ]
            ),
        )
    )
    with grpc.insecure_channel(GRPC) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        while not STOP.is_set():
            t0 = time.monotonic()
            error: str | None = None
            version = ""
            try:
                reply = stub.Predict(request, timeout=TIMEOUT)
                version = str(reply.model_spec.version.value) if reply.model_spec.HasField("version") else ""
                if len(reply.outputs["y"].float_val) != 1:
                    error = f"bad answer {reply}"
            except grpc.RpcError as err:
                error = f"{err.code()}: {err.details()}"
            STATS.record("grpc", time.monotonic() - t0, error, version)
            STOP.wait(INTERVAL)


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main() -> int:
    if GRPC and GRPC_THREADS:
        # Import the stubs (and TensorFlow's protos) once, before the clock matters.
        from tensorflow_serving.apis import predict_pb2  # noqa: F401
    threads = [threading.Thread(target=rest_worker, daemon=True) for _ in range(REST_THREADS if REST else 0)]
    threads += [threading.Thread(target=grpc_worker, daemon=True) for _ in range(GRPC_THREADS if GRPC else 0)]
    global START
    START = time.monotonic()
    for thread in threads:
        thread.start()
    say(f"READY rest={REST} grpc={GRPC} threads={len(threads)}")
    next_report = START + REPORT_SECONDS
    while True:
        now = time.monotonic()
        if os.path.exists(STOP_FILE) or now - START >= MAX_SECONDS or STATS.total() >= MAX_REQUESTS:
            break
        if now >= next_report:
            say("PROGRESS " + json.dumps(STATS.snapshot()))
            next_report += REPORT_SECONDS
        time.sleep(0.1)
    STOP.set()
    for thread in threads:
        thread.join(TIMEOUT + 5)
    summary = STATS.snapshot()
    summary["errors"] = dict(STATS.errors.most_common(10))
    summary["first_error"] = STATS.first_error
    summary["stopped_by"] = "stop-file" if os.path.exists(STOP_FILE) else "limit"
    say("SUMMARY " + json.dumps(summary))
    return 0 if summary["failures"] == 0 and summary["served"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
