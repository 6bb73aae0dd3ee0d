"""The YAML style of the generated CRD: block style, short all-scalar leaves on one line.

``{type: string}`` and ``required: [name]`` stay on one line, anything longer is a block, and
sequences are indented under their key (as kubectl users write them). Pure.
"""

from __future__ import annotations

from typing import Any

import yaml

FLOW_WIDTH = 72  # an all-scalar mapping or list this short is written {on: one, line: []}
WIDTH = 110


class _Dumper(yaml.SafeDumper):  # type: ignore[misc]
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _scalar(value: Any) -> bool:
    if isinstance(value, list):
        return not any(isinstance(v, dict | list) for v in value)
    return not isinstance(value, dict)


def _one_line(value: dict[str, Any] | list[Any]) -> bool:
    items = value.values() if isinstance(value, dict) else value
    if not all(_scalar(v) for v in items):
        return False
    return len(yaml.safe_dump(value, default_flow_style=True, width=1 << 16)) <= FLOW_WIDTH


def _mapping(dumper: _Dumper, value: dict[str, Any]) -> Any:
    return dumper.represent_mapping("tag:yaml.org,2002:map", value.items(), flow_style=_one_line(value))


def _sequence(dumper: _Dumper, value: list[Any]) -> Any:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=_one_line(value))


_Dumper.add_representer(dict, _mapping)
_Dumper.add_representer(list, _sequence)


def dump(doc: dict[str, Any]) -> str:
    """``doc`` as YAML in this style, keys in their insertion order."""
    return str(yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=WIDTH))
