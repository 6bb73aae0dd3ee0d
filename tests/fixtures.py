"""Small real models built on the fly for the tests, and a helper to run the server as a process."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import tensorflow as tf

from model import export as exporter
from model.data import synthetic
from model.linear import TrainConfig
from model.metrics import QualityGate
from model.pipeline import export_run, train_run
from service import protos

ROOT = Path(__file__).resolve().parent.parent


def train_linear(run_dir: Path, seed: int = 0) -> Path:
    """A quickly trained 3-feature linear regression run directory."""
    train_run(
        synthetic(300, 3, 0.05, seed),
        TrainConfig(epochs=20, learning_rate=0.05, batch_size=16, seed=seed),
        0.2,
        run_dir,
        progress=False,
    )
    return run_dir


def export_linear(
    run_dir: Path, base: Path, version: int | None = None, name: str = "linear", litert: bool = True
) -> Path:
    return export_run(run_dir, base, name, QualityGate(), version, litert=litert)  # type: ignore[return-value]


class MultiIO(tf.Module):  # type: ignore[misc]
    """Several inputs and outputs of different dtypes, plus a classify signature."""

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, 2], tf.float32, name="a"),
            tf.TensorSpec([None], tf.int64, name="b"),
            tf.TensorSpec([None], tf.string, name="s"),
        ]
    )
    def predict(self, a: tf.Tensor, b: tf.Tensor, s: tf.Tensor) -> dict[str, tf.Tensor]:
        return {
            "total": tf.reduce_sum(a, axis=1) + tf.cast(b, tf.float32),
            "length": tf.strings.length(s, unit="BYTE"),
            "echo_bytes": s,
        }

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify(self, inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        parsed = tf.io.parse_example(inputs, {"f": tf.io.FixedLenFeature([], tf.float32)})
        p = tf.sigmoid(parsed["f"])
        scores = tf.stack([1 - p, p], axis=1)
        classes = tf.tile(tf.constant([["neg", "pos"]]), [tf.shape(inputs)[0], 1])
        return {"scores": scores, "classes": classes}


def export_multi_io(base: Path, version: int = 1) -> Path:
    """A MultiIO SavedModel at ``base/multi/<version>`` (no manifest, like a foreign model)."""
    module = MultiIO()
    path = base / "multi" / str(version)
    tf.saved_model.save(
        module, str(path), signatures={"serving_default": module.predict, "classify": module.classify}
    )
    _set_method(path, "classify", "tensorflow/serving/classify")
    return path


class Slow(tf.Module):  # type: ignore[misc]
    """Takes as long as asked: ``n`` rounds of a 256x256 matmul (about a millisecond each)."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32, name="n")])
    def predict(self, n: tf.Tensor) -> dict[str, tf.Tensor]:
        m = tf.eye(256) * 0.5

        def body(i: tf.Tensor, acc: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            return i + 1, tf.matmul(acc, m) + tf.eye(256)

        _, acc = tf.while_loop(lambda i, _: i < tf.reduce_max(n), body, [tf.constant(0), tf.eye(256)])
        return {"done": tf.fill(tf.shape(n), tf.reduce_sum(acc[0, :1]))}


def export_slow(base: Path, version: int = 1) -> Path:
    module = Slow()
    path = base / "slow" / str(version)
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.predict})
    return path


def _set_method(path: Path, key: str, method: str) -> None:
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((path / "saved_model.pb").read_bytes())
    proto.meta_graphs[0].signature_def[key].method_name = method
    (path / "saved_model.pb").write_bytes(proto.SerializeToString())


WITHOUT = ("tensorflow", "tensorboard", "keras", "tf_keras", "_virtualenv", "__editable__", "modelship")


def tensorflow_free_site(dest: Path) -> Path:
    """``dest`` as a site directory: this venv's packages minus TensorFlow, plus the protobuf closure."""
    site = Path(sysconfig.get_paths()["purelib"])
    dest.mkdir(parents=True, exist_ok=True)
    for entry in site.iterdir():
        lowered = entry.name.lower()
        serving_api = lowered.startswith("tensorflow_serving")  # pure protobuf modules: it stays
        if (lowered.startswith(WITHOUT) and not serving_api) or entry.suffix == ".pth":
            continue
        (dest / entry.name).symlink_to(entry)
    protos.copy_tensorflow_protos(dest)
    return dest


def expected_linear(version_dir: Path, x: np.ndarray) -> np.ndarray:
    """What the exported version computes, straight from TensorFlow."""
    loaded = tf.saved_model.load(str(version_dir))
    return np.asarray(loaded.signatures["serving_default"](x=tf.constant(x, tf.float32))["y"])


__all__ = [
    "ROOT",
    "ServerProcess",
    "export_linear",
    "export_multi_io",
    "export_slow",
    "exporter",
    "free_port",
    "tensorflow_free_site",
    "train_linear",
    "wait_http_ready",
]


def wait_http_ready(
    url: str,
    timeout: float,
    alive: Callable[[], None],
    interval: float = 0.1,
    request_timeout: float = 1.0,
    verify: ssl.SSLContext | bool = True,
) -> bool:
    """GET ``url`` until it answers 200 (True) or ``timeout`` s pass (False).

    ``alive`` runs before each attempt and raises when the process behind ``url`` is gone.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive()
        try:
            if httpx.get(url, timeout=request_timeout, verify=verify).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(interval)
    return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """``python -m service`` as a real child process on free ports."""

    def __init__(
        self,
        args: list[str],
        env: dict[str, str] | None = None,
        log: Path | None = None,
        prefix: list[str] | None = None,
        python: list[str] | None = None,
        tls_ca: Path | None = None,
    ) -> None:
        """``prefix`` runs before the server's command line (e.g. a wrapper that enters a cgroup);
        ``python`` replaces this interpreter (e.g. with flags: ``[sys.executable, "-S"]``);
        ``tls_ca``: the server speaks HTTPS with a certificate for 127.0.0.1 from this CA."""
        self.rest_port = free_port()
        self.grpc_port = free_port()
        self.tls_ca = tls_ca
        self.url = f"{'https' if tls_ca else 'http'}://127.0.0.1:{self.rest_port}"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("MODELSHIP_")}
        full_env.update({"TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})})
        self.log_path = log
        self._log = log.open("wb") if log else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [
                *(prefix or []),
                *(python or [sys.executable]),
                "-m",
                "service",
                f"--rest_api_port={self.rest_port}",
                f"--port={self.grpc_port}",
                "--host=127.0.0.1",
                *args,
            ],
            cwd=ROOT,
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @classmethod
    @contextlib.contextmanager
    def running(cls, args: list[str], log: Path) -> Iterator[ServerProcess]:
        """A ready server for the ``with`` block; it must then drain and exit 0 on SIGTERM."""
        server = cls(args, log=log)
        try:
            server.wait_ready()
            yield server
        finally:
            assert server.terminate() == 0, server.logs()

    def wait_ready(self, timeout: float = 60) -> None:
        def alive() -> None:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.logs()}")

        verify = ssl.create_default_context(cafile=str(self.tls_ca)) if self.tls_ca else True
        if not wait_http_ready(f"{self.url}/v2/health/ready", timeout, alive, verify=verify):
            raise TimeoutError(f"server not ready after {timeout}s: {self.logs()}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path else ""

    def wait(self, timeout: float = 30) -> int:
        """Wait for the process to exit (killing it past ``timeout``); return its exit code."""
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            if self._log is not subprocess.DEVNULL:
                self._log.close()  # type: ignore[union-attr]

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM (once) and wait."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)
