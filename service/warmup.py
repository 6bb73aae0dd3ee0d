"""Warm a freshly loaded version up before it serves, as TF Serving does.

With ``assets.extra/tf_serving_warmup_requests`` (a TFRecord file of ``PredictionLog`` records, at
most 1000) every record is replayed and any failure fails the load. Without it, each predict
signature with numeric inputs of known rank runs once on zeros, so the first real request does not
pay for graph tracing and allocation.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from pathlib import Path

from tensorflow_serving.apis import prediction_log_pb2

from service import signature as sig
from service.errors import InvalidArgument, ServingError, Unimplemented
from service.memory import MemoryBudget
from service.runtime import zero_inputs
from service.servable import Servable
from service.tensor_proto import to_numpy

log = logging.getLogger(__name__)

WARMUP_PATH = Path("assets.extra") / "tf_serving_warmup_requests"
MAX_RECORDS = 1000


def read_tfrecords(path: Path) -> Iterator[bytes]:
    """Records of an uncompressed TFRecord file (length, crc, data, crc; CRCs not checked)."""
    with path.open("rb") as fh:
        while header := fh.read(12):
            if len(header) < 12:
                raise InvalidArgument(f"truncated TFRecord header in {path}")
            (length,) = struct.unpack("<Q", header[:8])
            data = fh.read(length)
            if len(data) < length or len(fh.read(4)) < 4:
                raise InvalidArgument(f"truncated TFRecord in {path}")
            yield data


def warm_up(servable: Servable) -> int:
    """Warm ``servable`` up; return the number of requests replayed."""
    path = servable.path / WARMUP_PATH
    if path.is_file():
        return _replay(servable, path)
    return _synthetic(servable)


def _replay(servable: Servable, path: Path) -> int:
    count = 0
    for record in read_tfrecords(path):
        count += 1
        if count > MAX_RECORDS:
            raise InvalidArgument(f"Number of warmup records exceeds the maximum ({MAX_RECORDS}) at {path}")
        entry = prediction_log_pb2.PredictionLog.FromString(record)
        kind = entry.WhichOneof("log_type")
        if kind != "predict_log":
            raise Unimplemented(f"warmup log type {kind} is not supported; use predict_log records")
        request = entry.predict_log.request
        info = servable.signature(request.model_spec.signature_name or None)
        memory = MemoryBudget(2**62).reservation()  # the files are trusted: no request budget
        inputs = {k: to_numpy(v, k, memory) for k, v in request.inputs.items()}
        if set(inputs) != set(info.inputs):
            raise InvalidArgument(f"warmup record {count} inputs {sorted(inputs)} != {sorted(info.inputs)}")
        servable.run(info.name, inputs)
    log.info("warmed up %s version %d with %d record(s)", servable.name, servable.version, count)
    return count


def _synthetic(servable: Servable) -> int:
    count = 0
    for info in servable.signatures.values():
        if info.method_name != sig.PREDICT_METHOD:
            continue
        inputs = zero_inputs(info, batch=1)
        if inputs is None:
            continue
        try:
            servable.run(info.name, inputs)
            count += 1
        except ServingError as exc:
            log.warning(
                "synthetic warm-up of %s/%s failed (ignored): %s", servable.name, info.name, exc.message
            )
    return count
