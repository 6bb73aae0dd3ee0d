"""Packaging: the operator installs as the top-level package ``rollout_operator`` with console scripts."""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

import setuptools

REPO = Path(__file__).resolve().parents[3]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def _packages() -> list[str]:
    """What ``[tool.setuptools.packages.find]`` puts into the wheel."""
    find = PYPROJECT["tool"]["setuptools"]["packages"]["find"]
    found: list[str] = []
    for where in find["where"]:
        found += setuptools.find_packages(where=str(REPO / where), include=find["include"])
    return found


def test_the_wheel_has_rollout_operator_and_no_scripts_package() -> None:
    packages = _packages()
    assert "rollout_operator" in packages
    assert not [p for p in packages if p == "scripts" or p.startswith("scripts.")]
    assert not (REPO / "scripts" / "__init__.py").exists()


def test_console_scripts_point_at_callables() -> None:
    scripts = PYPROJECT["project"]["scripts"]
    assert scripts["modelship-rollout-operator"] == "rollout_operator.__main__:main"
    assert scripts["modelship-rollout"] == "rollout_operator.cli:main"
    for target in (scripts["modelship-rollout-operator"], scripts["modelship-rollout"]):
        module, _, attr = target.partition(":")
        assert callable(getattr(importlib.import_module(module), attr))


def test_the_operator_extra_has_what_the_operator_imports() -> None:
    extra = " ".join(PYPROJECT["project"]["optional-dependencies"]["operator"])
    for requirement in ("kubernetes", "prometheus-client", "pydantic"):
        assert requirement in extra
