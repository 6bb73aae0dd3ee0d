"""Shadow scoring: run a sample of name-only predictions on a candidate version, off the client's path.

After the primary answer is computed the dataplane :meth:`ShadowWorker.submit`\\ s the request's
inputs and the primary outputs (a ``put_nowait`` on a bounded queue: nothing waits). ONE daemon
thread, at the lowest CPU priority (nice 19, Linux), runs the candidate on TensorFlow (never through
the batch queue, never through LiteRT, whose interpreters belong to the event loop), compares
(:mod:`service.traffic.compare`) and records only aggregates in the metrics. The queue full, the
server draining, or a request holding more than 1 MiB of tensors (queued shadows are outside the
in-flight memory budget): the shadow is dropped and counted. Draining never waits for shadows (the
thread is a daemon; :meth:`close` drops what is queued). Shadow outputs are never returned nor
logged, and a failing candidate is logged by exception type only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from service.servable import Servable
from service.traffic.compare import Result, compare

__all__ = ["DEFAULT_QUEUE", "ShadowJob", "ShadowWorker"]

DEFAULT_QUEUE = 64
MAX_JOB_BYTES = 1 << 20  # inputs + outputs a queued shadow may hold: the queue holds <= 64 MiB
log = logging.getLogger(__name__)

Runner = Callable[[Servable, str, Mapping[str, np.ndarray]], Mapping[str, np.ndarray]]


class ShadowMetrics(Protocol):
    def shadow_result(self, model: str, version: str, result: str, seconds: float, diff: float) -> None: ...


@dataclass(frozen=True, slots=True)
class ShadowJob:
    model: str
    candidate: Servable
    signature_name: str
    inputs: Mapping[str, np.ndarray]
    primary: Mapping[str, np.ndarray]
    rtol: float
    atol: float

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.inputs.values()) + sum(a.nbytes for a in self.primary.values())


class ShadowWorker:
    """A bounded queue and one low-priority thread running and comparing shadow requests."""

    def __init__(self, run: Runner, metrics: ShadowMetrics, capacity: int = DEFAULT_QUEUE) -> None:
        self._run = run
        self._metrics = metrics
        self._queue: queue.Queue[ShadowJob | None] = queue.Queue(max(1, capacity))
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="shadow", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def submit(self, job: ShadowJob) -> bool:
        """Queue ``job`` without waiting; False (and counted as dropped) when full, closed, or when
        the job holds more than ``MAX_JOB_BYTES`` (the queue's memory is outside the request budget)."""
        if not self._closed and job.nbytes <= MAX_JOB_BYTES:
            try:
                self._queue.put_nowait(job)
                return True
            except queue.Full:
                pass
        self._dropped(job)
        return False

    def close(self) -> None:
        """Stop taking shadows and drop the queued ones; never waits for one that is running."""
        self._closed = True
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                self._dropped(job)
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)

    def _dropped(self, job: ShadowJob) -> None:
        self._metrics.shadow_result(job.model, str(job.candidate.version), Result.DROPPED.value, -1.0, -1.0)

    def _serve(self) -> None:
        with contextlib.suppress(OSError, AttributeError):  # best effort: below the request threads
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        while True:
            job = self._queue.get()
            if job is None:
                return
            if self._closed:
                self._dropped(job)
            else:
                self._score(job)

    def _score(self, job: ShadowJob) -> None:
        started = time.perf_counter()
        diff = -1.0
        try:
            outputs = self._run(job.candidate, job.signature_name, job.inputs)
            result, diff = compare(job.primary, outputs, job.rtol, job.atol)
        except Exception as exc:  # noqa: BLE001 - a failing candidate is a result, not a crash
            log.debug(
                "shadow request on %s/%d failed: %s", job.model, job.candidate.version, type(exc).__name__
            )
            result = Result.ERROR
        seconds = time.perf_counter() - started
        self._metrics.shadow_result(job.model, str(job.candidate.version), result.value, seconds, diff)
