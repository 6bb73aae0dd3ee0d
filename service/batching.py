"""Dynamic batching, as TF Serving's ``--enable_batching``: merge concurrent requests, then split.

Requests for the same version, signature and inner shapes queue up; a batch closes when it holds
``max_batch_size`` rows or, with ``batch_timeout_micros`` > 0, when its oldest request has waited
that long (with 0 it takes whatever is queued the moment a batch slot frees up, plus what the next
few loop iterations keep bringing: grpc.aio delivers concurrent RPCs an iteration apart; no added
latency at low load). At most ``num_batch_threads`` batches run at once. Past ``max_enqueued_batches`` full
batches of queued rows, requests are refused at once with UNAVAILABLE, never queued without bound.
If a merged batch fails, its requests are retried one by one so a bad request fails only itself.

``BatchingParameters`` is read from TF Serving's text format::

    max_batch_size { value: 64 }  batch_timeout_micros { value: 0 }
    max_enqueued_batches { value: 100 }  num_batch_threads { value: 2 }
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from service.errors import InvalidArgument, ServingError, Unavailable

__all__ = ["Batcher", "BatchingParameters"]

GROW_ITERATIONS = 64  # loop iterations a zero-timeout batch may wait while requests keep arriving
Execute = Callable[[dict[str, np.ndarray]], Awaitable[dict[str, np.ndarray]]]


@dataclass(frozen=True)
class BatchingParameters:
    """TF Serving's ``BatchingParameters`` (defaults as its ``SharedBatchScheduler``)."""

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = 2
    allowed_batch_sizes: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.max_batch_size < 1 or self.max_enqueued_batches < 1 or self.num_batch_threads < 1:
            raise InvalidArgument("max_batch_size, max_enqueued_batches and num_batch_threads must be >= 1")
        if self.batch_timeout_micros < 0:
            raise InvalidArgument("batch_timeout_micros must be >= 0")
        sizes = self.allowed_batch_sizes
        if sizes and (list(sizes) != sorted(set(sizes)) or sizes[-1] != self.max_batch_size):
            raise InvalidArgument(
                "allowed_batch_sizes must increase and its last entry must match max_batch_size"
            )

    @classmethod
    def parse(cls, text: str, default_threads: int) -> BatchingParameters:
        """Parse the text proto (wrapper ``{ value: N }`` or plain ``name: N`` forms)."""
        values: dict[str, int] = {}
        allowed: list[int] = []
        body = re.sub(r"#[^\n]*", "", text)
        pattern = re.compile(r"(\w+)\s*(?:\{\s*value\s*:\s*([^\s}]+)\s*\}|:\s*([^\s{}]+))")
        for m in pattern.finditer(body):
            key, raw = m.group(1), m.group(2) or m.group(3)
            if key == "allowed_batch_sizes":
                allowed.append(int(raw))
            elif key in (
                "max_batch_size",
                "batch_timeout_micros",
                "max_enqueued_batches",
                "num_batch_threads",
            ):
                values[key] = int(raw)
            elif key == "pad_variable_length_inputs" and raw.lower() == "true":
                raise InvalidArgument("pad_variable_length_inputs is not supported")
            elif key not in (
                "thread_pool_name",
                "enable_large_batch_splitting",
                "max_execution_batch_size",
                "pad_variable_length_inputs",
            ):
                raise InvalidArgument(f"unknown batching parameter {key!r}")
        stripped = pattern.sub("", body).strip()
        if stripped:
            raise InvalidArgument(f"cannot parse batching parameters near {stripped[:40]!r}")
        values.setdefault("num_batch_threads", default_threads)
        return cls(**values, allowed_batch_sizes=tuple(allowed))

    @classmethod
    def load(cls, path: Path | None, default_threads: int) -> BatchingParameters:
        if path is None:
            return cls(num_batch_threads=default_threads)
        return cls.parse(path.read_text(), default_threads)


@dataclass
class _Task:
    inputs: dict[str, np.ndarray]
    rows: int
    future: asyncio.Future[dict[str, np.ndarray]]
    enqueued: float = 0.0


@dataclass
class Batcher:
    """One queue of batchable requests (same version, signature and inner shapes)."""

    params: BatchingParameters
    execute: Execute
    on_batch: Callable[[int], None] | None = None
    _queue: deque[_Task] = field(default_factory=deque)
    _queued_rows: int = 0
    _running: int = 0
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _workers: set[asyncio.Task[None]] = field(default_factory=set)

    async def submit(self, inputs: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
        p = self.params
        if rows > p.max_batch_size:
            raise InvalidArgument(
                f"Task size {rows} is larger than maximum input batch size {p.max_batch_size}"
            )
        if self._queued_rows + rows > p.max_batch_size * p.max_enqueued_batches:
            raise Unavailable("The batch scheduling queue to which this task was submitted is full")
        # No shortcut for an idle queue: the worker starts on the next loop iteration, after every
        # request already read in this one has queued too, so even a model that answers inline (and
        # never yields) sees them merged. With batch_timeout_micros 0 that is the only wait.
        loop = asyncio.get_running_loop()
        task = _Task(inputs, rows, loop.create_future(), loop.time())
        self._queue.append(task)
        self._queued_rows += rows
        self._arrived.set()
        self._start_worker()
        # A waiter that is cancelled cancels only its own future; its batch still runs for the rest.
        return await task.future

    def _start_worker(self) -> None:
        if self._running < self.params.num_batch_threads:
            self._running += 1
            worker = asyncio.get_running_loop().create_task(self._work())
            self._workers.add(worker)
            worker.add_done_callback(self._workers.discard)

    async def _work(self) -> None:
        try:
            while self._queue:
                await self._wait_for_batch()
                batch = self._take()
                if batch:
                    await self._run(batch)
        finally:
            self._running -= 1

    async def _wait_for_batch(self) -> None:
        timeout = self.params.batch_timeout_micros / 1e6
        if timeout <= 0:
            await self._grow()
            return
        loop = asyncio.get_running_loop()
        while self._queue and self._queued_rows < self.params.max_batch_size:
            left = self._queue[0].enqueued + timeout - loop.time()
            if left <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except TimeoutError:
                return

    async def _grow(self) -> None:
        """With no timeout: take the loop iterations that keep bringing requests, then go.

        A transport may hand concurrent requests to the loop over several iterations rather than
        in one (grpc.aio delivers each RPC through its completion-queue poller), so a batch taken
        at once would hold one request. This yields while every iteration adds rows, never past a
        full batch or ``GROW_ITERATIONS``; at low load the first iteration adds nothing, so the
        cost is one loop iteration.
        """
        seen = self._queued_rows
        for _ in range(GROW_ITERATIONS):
            if seen >= self.params.max_batch_size:
                return
            await asyncio.sleep(0)
            if self._queued_rows <= seen:
                return
            seen = self._queued_rows

    def _take(self) -> list[_Task]:
        batch: list[_Task] = []
        rows = 0
        while self._queue and rows + self._queue[0].rows <= self.params.max_batch_size:
            task = self._queue.popleft()
            batch.append(task)
            rows += task.rows
        self._queued_rows -= rows
        return batch

    async def _run(self, batch: list[_Task]) -> None:
        if len(batch) == 1:
            await self._run_one(batch[0])
            return
        total = sum(t.rows for t in batch)
        merged = {name: np.concatenate([t.inputs[name] for t in batch]) for name in batch[0].inputs}
        merged = self._pad(merged, total)
        try:
            outputs = await self.execute(merged)
            if any(v.ndim == 0 or v.shape[0] < total for v in outputs.values()):
                raise ServingError("outputs are not batch-major")
        except Exception:  # noqa: BLE001 - includes ServingError: retry one by one
            for task in batch:  # tell the failing request apart from the good ones
                await self._run_one(task)
            return
        if self.on_batch is not None:
            self.on_batch(total)
        offset = 0
        for task in batch:
            part = {k: v[offset : offset + task.rows] for k, v in outputs.items()}
            offset += task.rows
            if not task.future.done():
                task.future.set_result(part)

    def _pad(self, merged: dict[str, np.ndarray], total: int) -> dict[str, np.ndarray]:
        """Pad up to the next allowed batch size by repeating the first row (TF Serving does too)."""
        target = next((s for s in self.params.allowed_batch_sizes if s >= total), total)
        if target == total:
            return merged
        return {k: np.concatenate([v, np.repeat(v[:1], target - total, axis=0)]) for k, v in merged.items()}

    async def _run_one(self, task: _Task) -> None:
        try:
            result = await self.execute(task.inputs)
        except ServingError as exc:
            if not task.future.done():
                task.future.set_exception(exc)
            return
        except Exception as exc:  # noqa: BLE001 - handed to the waiting request
            if not task.future.done():
                task.future.set_exception(exc)
            return
        if self.on_batch is not None:
            self.on_batch(task.rows)
        if not task.future.done():
            task.future.set_result(result)

    @property
    def queued_rows(self) -> int:
        return self._queued_rows
