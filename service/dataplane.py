"""The transport-independent dataplane: resolve a model reference, validate tensors, run signatures.

REST and gRPC both call one :class:`DataPlane`; neither knows about the other, nor about the
repository behind it (model status, the model list, config reload and draining are here too).
Model calls run on a small thread pool so the event loop keeps serving health checks and other
requests meanwhile. :meth:`DataPlane.route` is where a name-only inference request gets its version
from the traffic config (:mod:`service.traffic`), once per request; :meth:`DataPlane.predict` hands
a sample of those to the shadow worker after the primary answer is computed.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from tensorflow.core.example import example_pb2
from tensorflow.core.framework import types_pb2

from service import signature as sig
from service.batching import Batcher, BatchingParameters
from service.errors import InvalidArgument, Unimplemented
from service.model_config import ModelConfig
from service.repository import ModelRepository, State, VersionStatus
from service.servable import Servable
from service.traffic import ShadowJob, ShadowWorker, Traffic
from service.validation import validate_inputs

MAX_UNKNOWN_MODEL_LABELS = 16

HeaderLookup = Callable[[str], bytes | None]  # a request header (gRPC: metadata) by lower-case name


@dataclass(frozen=True)
class ModelRef:
    """What a request addresses: a model name and at most one of version and label."""

    name: str
    version: int | None = None
    label: str | None = None
    signature_name: str = ""


@dataclass
class Prediction:
    servable: Servable
    signature: sig.SignatureInfo
    outputs: dict[str, np.ndarray]


class DataPlane:
    """Everything the transports need, over one :class:`ModelRepository`."""

    def __init__(
        self,
        repository: ModelRepository,
        workers: int | None = None,
        inline_max_rows: int = 64,
        batching: BatchingParameters | None = None,
        on_batch: Callable[[int], None] | None = None,
        traffic: Traffic | None = None,
        shadow: ShadowWorker | None = None,
    ) -> None:
        self.repository = repository
        self.traffic = traffic or Traffic()
        self.shadow = shadow
        self.batching = batching
        self._on_batch = on_batch
        self.inline_max_rows = inline_max_rows
        self._draining = False
        self._unknown_models: set[str] = set()
        self._pool = ThreadPoolExecutor(
            max_workers=workers or max(2, os.cpu_count() or 2), thread_name_prefix="model"
        )

    def close(self) -> None:
        if self.shadow is not None:
            self.shadow.close()
        self._pool.shutdown(wait=True)

    # -- health --------------------------------------------------------------------------------

    def live(self) -> bool:
        return True

    def ready(self) -> bool:
        """Ready to take traffic: every model has an AVAILABLE version and we are not draining."""
        return not self._draining and self.repository.ready()

    @property
    def draining(self) -> bool:
        """True once shutdown began: readiness is false from then on."""
        return self._draining

    def start_draining(self) -> None:
        """Readiness false from now on; queued shadow requests are dropped, no new ones taken."""
        self._draining = True
        if self.shadow is not None:
            self.shadow.close()

    # -- model lookup --------------------------------------------------------------------------

    def resolve(self, ref: ModelRef) -> Servable:
        """The servable ``ref`` names, as TF Serving resolves it (name only: latest AVAILABLE)."""
        return self.repository.resolve(ref.name, ref.version, ref.label)

    def route(self, ref: ModelRef, header: HeaderLookup | None = None) -> Servable:
        """The servable an inference request runs on: a name-only request for a model with weights
        goes where the traffic split sends it (sticky by ``header`` when configured), the rest as
        :meth:`resolve`. Called once per request: every call advances the split."""
        if ref.version is None and ref.label is None:
            route = self.traffic.applied.routes.get(ref.name)
            if route is not None and route.split is not None:
                available = self.repository.available(ref.name)
                chosen = None
                if route.sticky_header is not None and header is not None:
                    key = header(route.sticky_header)
                    if key:
                        chosen = route.split.pick_sticky(key, available)
                if chosen is None:
                    chosen = route.split.pick(available)
                if chosen is not None:
                    return chosen
        return self.repository.resolve(ref.name, ref.version, ref.label)

    def list_models(self) -> list[str]:
        """The configured model names."""
        return self.repository.model_names()

    def model_status(self, ref: ModelRef) -> list[VersionStatus]:
        """Version statuses, newest first: every version of the model, the one ``ref`` names, or the
        one its label points to."""
        version = ref.version
        if ref.label is not None:
            version = self.resolve(ref).version
        return self.repository.statuses(ref.name, version)

    # -- configuration -------------------------------------------------------------------------

    async def reload_config(self, configs: list[ModelConfig], timeout: float) -> bool:
        """Serve ``configs`` instead of the current models (full replacement); True once that is
        applied and every model has an AVAILABLE version, False if ``timeout`` seconds pass first."""
        applied = self.repository.reconfigure(configs)
        deadline = time.monotonic() + timeout
        while not (applied.is_set() and self.repository.ready()) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return applied.is_set() and self.repository.ready()

    def metrics_name(self, model: str) -> str:
        """The ``model`` label for a request: the name, but only the first few names that are not
        configured (then ``(other)``), so client-chosen names cannot grow the metrics without bound."""
        if self.repository.has_model(model) or model in self._unknown_models:
            return model
        if len(self._unknown_models) >= MAX_UNKNOWN_MODEL_LABELS:
            return "(other)"
        self._unknown_models.add(model)
        return model.encode("utf-8", "backslashreplace").decode()

    # -- inference -----------------------------------------------------------------------------

    async def predict(
        self,
        servable: Servable,
        info: sig.SignatureInfo,
        inputs: dict[str, np.ndarray],
        output_filter: Sequence[str] = (),
        ref: ModelRef | None = None,
    ) -> Prediction:
        """Validate ``inputs`` against ``info`` and run it; keep only ``output_filter`` outputs.

        ``ref`` is what the client addressed; a name-only one may be shadowed (after the answer)."""
        validate_inputs(info, inputs, servable.allow_non_finite)
        wanted = list(output_filter)
        for name in wanted:
            if name not in info.outputs:
                raise InvalidArgument(
                    f"output tensor alias not found in signature: {name} Outputs "
                    f"expected to be in the set {{{','.join(info.outputs)}}}."
                )
        if len(set(wanted)) != len(wanted):
            raise InvalidArgument("duplicate output tensor alias in output_filter")
        batcher = self._batcher(servable, info, inputs) if self.batching is not None else None
        if batcher is not None:
            outputs = await batcher.submit(inputs, next(iter(inputs.values())).shape[0])
        else:
            outputs = await self.run(servable, info.name, inputs)
        if wanted:
            outputs = {k: outputs[k] for k in wanted}
        if ref is not None and self.shadow is not None and ref.version is None and ref.label is None:
            self._maybe_shadow(ref.name, servable, info.name, inputs, outputs)
        return Prediction(servable, info, outputs)

    def _maybe_shadow(
        self,
        model: str,
        primary: Servable,
        signature_name: str,
        inputs: dict[str, np.ndarray],
        outputs: dict[str, np.ndarray],
    ) -> None:
        """Queue this request for the candidate when the config samples it: only requests another
        version answered, and only while the candidate is AVAILABLE, count towards its share."""
        route = self.traffic.applied.routes.get(model)
        if route is None or route.shadow is None or route.shadow_sample is None:
            return
        shadow = route.shadow
        if shadow.version == primary.version:
            return
        candidate = self.repository.available(model).get(shadow.version)
        if candidate is None or not route.shadow_sample.take():
            return
        assert self.shadow is not None
        job = ShadowJob(model, candidate, signature_name, inputs, outputs, shadow.rtol, shadow.atol)
        self.shadow.submit(job)

    def _batcher(
        self, servable: Servable, info: sig.SignatureInfo, inputs: dict[str, np.ndarray]
    ) -> Batcher | None:
        """The queue for this version, signature and inner shapes; None if not batchable."""
        assert self.batching is not None
        if not all(t.shape and t.shape[0] == -1 for t in (*info.inputs.values(), *info.outputs.values())):
            return None
        rows = {v.shape[0] for v in inputs.values()}
        if len(rows) != 1:
            return None
        key = (info.name, tuple((k, v.dtype.str, v.shape[1:]) for k, v in sorted(inputs.items())))
        batcher = servable.batchers.get(key)
        if batcher is None:
            name = info.name

            async def execute(merged: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
                return await self.run(servable, name, merged)

            batcher = servable.batchers[key] = Batcher(self.batching, execute, self._on_batch)
        return batcher

    async def run(
        self, servable: Servable, signature_name: str, inputs: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Small requests on a LiteRT signature run inline (µs); the rest on the model threads."""
        lite = servable.lite
        if lite is not None and lite.runs_inline(signature_name):
            rows = next(iter(inputs.values())).shape[:1]
            if rows and rows[0] <= self.inline_max_rows:
                return lite.run(signature_name, inputs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, servable.run, signature_name, inputs)

    async def regress(
        self,
        servable: Servable,
        signature_name: str,
        example_list: list[example_pb2.Example],
        context: example_pb2.Example | None = None,
    ) -> list[float]:
        """TF Serving Regress: one float per example from the signature's ``outputs``."""
        info = servable.signature(signature_name or None, sig.REGRESS_METHOD)
        result = await self._run_examples(servable, info, example_list, context)
        values = result.outputs.get("outputs")
        if values is None:
            raise InvalidArgument("Expected one output tensor named 'outputs' in regress signature")
        return [float(v) for v in np.asarray(values).reshape(len(example_list), -1)[:, 0]]

    async def classify(
        self,
        servable: Servable,
        signature_name: str,
        example_list: list[example_pb2.Example],
        context: example_pb2.Example | None = None,
    ) -> list[list[tuple[str, float]]]:
        """TF Serving Classify: ``(label, score)`` pairs per example from ``classes``/``scores``."""
        info = servable.signature(signature_name or None, sig.CLASSIFY_METHOD)
        result = await self._run_examples(servable, info, example_list, context)
        n = len(example_list)
        scores = result.outputs.get("scores")
        classes = result.outputs.get("classes")
        if scores is None and classes is None:
            raise InvalidArgument("classify signature has neither 'classes' nor 'scores' output")
        score_rows = np.asarray(scores, dtype=np.float64).reshape(n, -1) if scores is not None else None
        class_rows = np.asarray(classes).reshape(n, -1) if classes is not None else None
        width = (score_rows if score_rows is not None else class_rows).shape[1]  # type: ignore[union-attr]
        out = []
        for i in range(n):
            row = []
            for j in range(width):
                label = class_rows[i, j] if class_rows is not None else b""
                text = label.decode("utf-8", "replace") if isinstance(label, bytes) else str(label)
                row.append((text, float(score_rows[i, j]) if score_rows is not None else 0.0))
            out.append(row)
        return out

    async def _run_examples(
        self,
        servable: Servable,
        info: sig.SignatureInfo,
        example_list: list[example_pb2.Example],
        context: example_pb2.Example | None,
    ) -> Prediction:
        if not example_list:
            raise InvalidArgument("Input is empty")
        if len(info.inputs) != 1:
            raise InvalidArgument(f"Expected one input tensor in {info.name}, got {len(info.inputs)}")
        (input_name,) = info.inputs
        if info.inputs[input_name].dtype != types_pb2.DT_STRING:
            raise Unimplemented(f"signature {info.name} does not take serialized tf.Examples")
        # As TF Serving does: context + example serialized back to back parse as their merge,
        # with the example's features taking precedence.
        prefix = context.SerializeToString() if context is not None else b""
        serialized = np.array([prefix + e.SerializeToString() for e in example_list], dtype=object)
        return await self.predict(servable, info, {input_name: serialized})


__all__ = [
    "DataPlane",
    "HeaderLookup",
    "ModelRef",
    "Prediction",
    "State",
    "VersionStatus",
]
