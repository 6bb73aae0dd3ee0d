"""The CRD is generated from the resource models: the committed copies are current and structural."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from rollout_operator import crd
from rollout_operator.crd_schema import SchemaError, structural
from rollout_operator.schema_types import ResourceModel

REPO = Path(__file__).resolve().parents[3]


def test_generating_into_a_temp_dir_reproduces_the_committed_files(tmp_path: Path) -> None:
    written = crd.write(tmp_path)
    assert sorted(p.relative_to(tmp_path) for p in written) == sorted([crd.PLAIN, crd.CHART])
    for rel in (crd.PLAIN, crd.CHART):
        assert (tmp_path / rel).read_bytes() == (REPO / rel).read_bytes(), f"{rel} is stale: run gen-crd"
    assert crd.stale(REPO) == []


def test_check_reports_a_stale_file(tmp_path: Path) -> None:
    crd.write(tmp_path)
    path = tmp_path / crd.PLAIN
    path.write_text(path.read_text().replace("maximum: 99", "maximum: 98"))
    (diff,) = crd.stale(tmp_path)
    assert "-                                maximum: 98" in diff
    assert crd.main(["--root", str(tmp_path), "--check"]) == 1


def test_the_script_has_help_and_check() -> None:
    script = REPO / "scripts" / "rollout_operator" / "gen-crd"
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=True).stdout
    assert "--check" in out
    subprocess.run([str(script), "--check"], capture_output=True, text=True, check=True)


def test_both_files_hold_the_same_spec() -> None:
    plain = yaml.safe_load((REPO / crd.PLAIN).read_text())
    lines = (REPO / crd.CHART).read_text().splitlines(True)
    assert lines[0].startswith("{{- if ")
    assert lines[-1] == "{{- end }}\n"
    chart = yaml.safe_load("".join(lines[1:-1]))
    assert chart["spec"] == plain["spec"] == crd.crd_spec()
    assert chart["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}


def _nodes(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, node)]
    for name, sub in node.get("properties", {}).items():
        found += _nodes(sub, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            found += _nodes(node[key], f"{path}[]")
    return found


def test_the_schema_is_structural() -> None:
    nodes = _nodes(crd.open_api_schema())
    assert len(nodes) > 90  # every field of spec and status
    for path, node in nodes:
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields") is True, path
        assert not {"$ref", "$defs", "anyOf", "oneOf", "allOf", "not", "title"} & set(node), path
        assert not ("properties" in node and "additionalProperties" in node), path
        assert node.get("additionalProperties") is not False, path


def test_a_union_has_no_structural_schema() -> None:
    class Either(ResourceModel):
        value: int | str

    with pytest.raises(SchemaError, match=r"\.value: a union of 2 types"):
        structural(Either)


def test_an_untyped_field_is_refused() -> None:
    class Loose(BaseModel):
        value: Any

    with pytest.raises(SchemaError, match=r"\.value: every node .* needs a type"):
        structural(Loose)
