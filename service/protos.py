"""The TensorFlow protobuf modules the server imports, and everything they import in turn.

The server needs TensorFlow's generated ``*_pb2`` modules (``TensorProto``, ``SignatureDef``,
``SavedModel``, ``Example``) and TensorFlow Serving's API modules, but none of TensorFlow's runtime.
In the full image ``tensorflow/__init__.py`` runs on the first of these imports and pulls in all
of TensorFlow; the slim image instead carries only the ``tensorflow/**/*_pb2.py`` files listed
here, under a ``tensorflow`` namespace package with no ``__init__.py``.

:func:`closure` reads the server's own source for its imports of ``tensorflow.*`` and
``tensorflow_serving.*`` modules, then each generated file's imports, without importing any of
them. ``python -m service.protos --copy-to DIR`` copies TensorFlow's share of that closure to
``DIR`` with its package paths (the Dockerfile's slim stage); ``tensorflow_serving`` is installed
as its own distribution there.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import shutil
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

ROOT_PACKAGES = ("tensorflow", "tensorflow_serving")
SERVICE_DIR = Path(__file__).resolve().parent


def _package_dirs(top: str) -> list[Path]:
    """Where the top-level package ``top`` lives, found without importing it."""
    spec = importlib.util.find_spec(top)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{top} is not installed here")
    return [Path(p) for p in spec.submodule_search_locations]


def _module_file(module: str) -> Path | None:
    top, *rest = module.split(".")
    for base in _package_dirs(top):
        candidate = base.joinpath(*rest[:-1], rest[-1] + ".py") if rest else base / "__init__.py"
        if candidate.is_file():
            return candidate
    return None


def imported_modules(source: str) -> set[str]:
    """Modules under ``ROOT_PACKAGES`` that ``source`` imports (``from pkg import x_pb2`` counts as
    ``pkg.x_pb2``); the bare ``tensorflow`` package (the runtime, imported lazily) is left out."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        names: Iterable[str] = ()
        if isinstance(node, ast.Import):
            names = (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = (f"{node.module}.{alias.name}" for alias in node.names if alias.name.endswith("_pb2"))
            names = [*names, node.module] if node.module.endswith(("_pb2", "_pb2_grpc")) else names
        for name in names:
            if name.split(".")[0] in ROOT_PACKAGES and name.endswith(("_pb2", "_pb2_grpc")):
                found.add(name)
    return found


def closure(sources: Iterable[Path]) -> dict[str, Path]:
    """Every generated module the ``sources`` import, directly or through other generated modules."""
    pending = set().union(*(imported_modules(p.read_text()) for p in sources))
    done: dict[str, Path] = {}
    while pending:
        module = pending.pop()
        if module in done:
            continue
        path = _module_file(module)
        if path is None:
            raise SystemExit(f"cannot find {module} (is tensorflow-serving-api installed?)")
        done[module] = path
        pending |= imported_modules(path.read_text()) - set(done)
    return done


def server_sources() -> list[Path]:
    return sorted(SERVICE_DIR.rglob("*.py"))


def copy_tensorflow_protos(dest: Path) -> list[Path]:
    """Copy TensorFlow's generated modules of the server's closure to ``dest``; return the copies."""
    copied = []
    for module, path in sorted(closure(server_sources()).items()):
        if module.split(".")[0] != "tensorflow":
            continue
        target = dest.joinpath(*module.split(".")[:-1], path.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        copied.append(target)
    return copied


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service.protos", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--copy-to",
        type=Path,
        help="copy TensorFlow's generated modules that the server needs into this directory "
        "(a site-packages); without it, list the closure",
    )
    args = parser.parse_args(argv)
    if args.copy_to is None:
        for module, path in sorted(closure(server_sources()).items()):
            sys.stdout.write(f"{module}\t{path}\n")
        return 0
    copied = copy_tensorflow_protos(args.copy_to)
    sys.stderr.write(f"copied {len(copied)} TensorFlow protobuf modules to {args.copy_to}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
