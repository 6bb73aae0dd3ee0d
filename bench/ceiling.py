"""The served model's own compute ceiling: rows/s calling its signature in-process, with no server.

The harness runs this module as a separate process pinned to the server's CPUs, before the targets
of each round, so the figure is comparable with theirs. It loads the version the way Modelship
does (:func:`service.servable.load`), sizes TensorFlow's thread pools the way the server does
(:func:`service.server.configure_tensorflow` on the settings the Modelship targets get) and then,
for each batch size, calls ``serving_default`` back to back on one thread for a fixed time:

* ``tensorflow``: :meth:`Servable.run`, the SavedModel signature called directly (``tf.constant``
  in, ``.numpy()`` out), what the server's model threads do;
* ``litert``: only when the server would use LiteRT for the signature (:func:`service.runtime.convert`
  with its own checks; ``--runtime=tensorflow`` turns it off), and only at batch sizes the server
  runs inline (``inline_max_rows``); larger batches stay on TensorFlow in the server too.

The ceiling is the best rows/s over those runtimes and batch sizes::

    python -m bench.ceiling --version-dir BASE/heavy/1 [--batches 1,8,64,256] [--seconds 1] [-- SERVER FLAGS]
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench import procs
from bench.targets import server_env

BATCHES = (1, 8, 64, 256)
RESULT = "BENCH_RESULT "


@dataclass
class Ceiling:
    """Rows/s per runtime and batch size, and the best of them (what ``x compute`` divides by)."""

    rows_per_s: float = 0.0  # the ceiling: best over the runtimes the server would use
    runtime: str = ""  # where the best was measured
    batch: int = 0
    sweeps: dict[str, dict[int, float]] = field(default_factory=dict)  # runtime -> batch -> rows/s
    notes: dict[str, str] = field(default_factory=dict)  # runtime -> why it was not measured
    threads: int = 0  # TensorFlow intra-op threads, as the server sets them
    cores: float = 0.0  # CPU the process used during the TensorFlow sweep (other tenants: < 1)
    seconds: float = 0.0  # measured seconds per batch size
    failure: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Ceiling:
        """Back from JSON, where the batch sizes became strings."""
        sweeps = {rt: {int(b): float(v) for b, v in s.items()} for rt, s in data.pop("sweeps", {}).items()}
        return cls(**data, sweeps=sweeps)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def headline(self) -> str:
        """What the ceiling is and how it was measured, in one sentence."""
        if self.failure:
            return f"Compute ceiling: not measured ({self.failure})."
        return (
            "Compute ceiling (bench/ceiling.py: serving_default called in-process by one caller, "
            f"pinned like the server, {self.threads} TensorFlow thread(s), {self.seconds:g} s per "
            f"batch size, {self.cores:.2f} cores used): {self.rows_per_s:,.0f} rows/s "
            f"({self.runtime}, batch {self.batch})."
        )

    def summary(self) -> list[str]:
        """One line per runtime: rows/s at each batch size, or why it was not measured."""
        if self.failure:
            return [f"not measured: {self.failure}"]
        lines = []
        for rt, sweep in self.sweeps.items():
            cells = ", ".join(f"batch {b}: {v:,.0f}" for b, v in sweep.items())
            best = max(sweep, key=sweep.__getitem__)
            lines.append(f"{rt}: {cells} rows/s (best {sweep[best]:,.0f} at batch {best})")
        lines += [f"{rt}: {note}" for rt, note in self.notes.items()]
        return lines


def median(measured: Sequence[Ceiling]) -> Ceiling | None:
    """The round whose ceiling is the median (the lower one of two); a failure only if all failed."""
    good = sorted((c for c in measured if not c.failure), key=lambda c: c.rows_per_s)
    if good:
        return good[(len(good) - 1) // 2]
    return measured[0] if measured else None


def rows_per_second(call: Callable[[np.ndarray], object], x: np.ndarray, seconds: float) -> float:
    """Rows/s of back-to-back ``call(x)`` for at least ``seconds`` and 3 calls, after 2 warm-up calls."""
    for _ in range(2):
        call(x)
    calls, started = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - started < seconds:
        call(x)
        calls += 1
    return calls * len(x) / (time.perf_counter() - started)


def sweep(
    call: Callable[[np.ndarray], object], features: int, batches: Sequence[int], seconds: float, seed: int = 0
) -> dict[int, float]:
    """:func:`rows_per_second` at each batch size, on seeded normal float32 inputs."""
    rng = np.random.default_rng(seed)
    return {
        b: rows_per_second(call, rng.normal(size=(b, features)).astype(np.float32), seconds) for b in batches
    }


class _Reasons(logging.Handler):
    """Keeps what :mod:`service.runtime` logs about a signature staying on TensorFlow."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _convert(servable: Any) -> tuple[Any, list[str]]:
    """:func:`service.runtime.convert` as the loader calls it, and what it logged on the way."""
    from service import runtime

    logger, reasons = logging.getLogger(runtime.__name__), _Reasons()
    level = logger.level
    logger.addHandler(reasons)
    logger.setLevel(logging.INFO)
    try:
        lite = runtime.convert(servable.path, servable.signatures, runtime.verification_samples(servable))
    finally:
        logger.removeHandler(reasons)
        logger.setLevel(level)
    return lite, reasons.messages


def measure(
    version_dir: Path, batches: Sequence[int], seconds: float, server_flags: Sequence[str] = ()
) -> Ceiling:
    """The ceiling of ``version_dir``'s ``serving_default`` in this process (see the module doc)."""
    from service.cli import parse_settings
    from service.servable import load
    from service.server import configure_tensorflow
    from service.settings import available_cpus

    settings = parse_settings(list(server_flags))
    configure_tensorflow(settings)
    servable = load(version_dir.parent.name, int(version_dir.name), version_dir)
    info = servable.signature(None)
    (alias, tensor), *others = info.inputs.items()
    if others or tensor.shape is None or len(tensor.shape) != 2:
        raise ValueError(f"{info.name} must take one input [batch, features]")
    features = tensor.shape[1]
    threads = settings.tensorflow_intra_op_parallelism or available_cpus()
    out = Ceiling(threads=threads, seconds=seconds)
    name = info.name
    wall, cpu = time.perf_counter(), time.process_time()
    out.sweeps["tensorflow"] = sweep(lambda x: servable.run(name, {alias: x}), features, batches, seconds)
    out.cores = (time.process_time() - cpu) / (time.perf_counter() - wall)
    if settings.runtime != "auto":
        out.notes["litert"] = f"not used by the server (--runtime={settings.runtime})"
    else:
        lite, reasons = _convert(servable)
        inline = [b for b in batches if b <= settings.inline_max_rows]
        if not lite.supports(info.name):
            why = reasons[-1].replace(f" of {version_dir}", "") if reasons else "not converted"
            out.notes["litert"] = f"not used by the server ({why})"
        elif not inline:
            out.notes["litert"] = f"used by the server only up to {settings.inline_max_rows} rows"
        else:
            out.sweeps["litert"] = sweep(lambda x: lite.run(name, {alias: x}), features, inline, seconds)
    out.runtime, out.batch, out.rows_per_s = max(
        ((rt, b, v) for rt, s in out.sweeps.items() for b, v in s.items()), key=lambda t: t[2]
    )
    return out


def run(
    version_dir: Path,
    batches: Sequence[int],
    seconds: float,
    cpus: Sequence[int] | None,
    server_flags: Sequence[str] = (),
) -> Ceiling:
    """:func:`measure` in a separate process pinned to ``cpus``; a failure is recorded, not raised."""
    argv = [
        sys.executable,
        "-m",
        "bench.ceiling",
        f"--version-dir={version_dir}",
        f"--batches={','.join(str(b) for b in batches)}",
        f"--seconds={seconds}",
        "--",
        *server_flags,
    ]
    budget = 120 + 2 * len(batches) * (seconds + 5)  # load and LiteRT conversion, then the sweeps
    try:
        rc, stdout, stderr, _ = procs.run_bounded(argv, budget, env=server_env(), cpus=cpus)
    except subprocess.TimeoutExpired:
        return Ceiling(failure=f"no result within {budget:.0f} s")
    line = next((ln for ln in stdout.splitlines() if ln.startswith(RESULT)), None)
    if rc != 0 or line is None:
        tail = [ln for ln in stderr.splitlines() if ln.strip()][-1:] or [f"exit status {rc}"]
        return Ceiling(failure=tail[0][:300])
    return Ceiling.from_dict(json.loads(line[len(RESULT) :]))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.ceiling",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version-dir", type=Path, required=True, help="BASE/NAME/VERSION directory")
    p.add_argument("--batches", default=",".join(str(b) for b in BATCHES), help="comma-separated batch sizes")
    p.add_argument("--seconds", type=float, default=1.0, help="measured seconds per batch size")
    p.add_argument("server_flags", nargs="*", help="Modelship flags after --, as the server gets them")
    args = p.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")]
    result = measure(args.version_dir, batches, args.seconds, args.server_flags)
    print(RESULT + json.dumps(result.as_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
