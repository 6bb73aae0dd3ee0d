"""service.protos: the protobuf closure the slim image carries instead of TensorFlow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from service import protos
from tests.fixtures import tensorflow_free_site


def test_imports_are_read_from_source_without_importing() -> None:
    source = (
        "from tensorflow.core.framework import tensor_pb2, types_pb2\n"
        "from tensorflow_serving.apis.model_service_pb2 import DESCRIPTOR\n"
        "import tensorflow as tf\n"
        "from service import x_pb2\n"
        "def f():\n    from tensorflow.core.example import example_pb2\n"
    )
    assert protos.imported_modules(source) == {
        "tensorflow.core.framework.tensor_pb2",
        "tensorflow.core.framework.types_pb2",
        "tensorflow_serving.apis.model_service_pb2",
        "tensorflow.core.example.example_pb2",
    }


def test_the_closure_covers_every_generated_module_the_server_imports() -> None:
    closure = protos.closure(protos.server_sources())
    direct = set().union(*(protos.imported_modules(p.read_text()) for p in protos.server_sources()))
    assert direct <= set(closure)
    assert "tensorflow.core.protobuf.saved_model_pb2" in closure  # through get_model_metadata_pb2
    assert all(name.endswith(("_pb2", "_pb2_grpc")) for name in closure)


def test_every_module_of_the_closure_imports_without_tensorflow(tmp_path: Path) -> None:
    site = tensorflow_free_site(tmp_path / "site")
    modules = sorted(protos.closure(protos.server_sources()))
    script = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "import tensorflow\n"
        "assert getattr(tensorflow, '__file__', None) is None, tensorflow.__file__  # a namespace only\n"
        "assert 'tensorflow.python' not in sys.modules\n"
        "print(len(sys.modules))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-S", "-c", script],
        env={"PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_cli_lists_and_copies(tmp_path: Path) -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "service.protos"], capture_output=True, text=True, timeout=60, check=True
    ).stdout.splitlines()
    assert any(line.startswith("tensorflow.core.framework.tensor_pb2\t") for line in listed)
    copied = subprocess.run(
        [sys.executable, "-m", "service.protos", "--copy-to", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "TensorFlow protobuf modules" in copied.stderr
    assert (tmp_path / "tensorflow" / "core" / "framework" / "tensor_pb2.py").is_file()
    assert not (tmp_path / "tensorflow_serving").exists()  # installed as its own distribution
