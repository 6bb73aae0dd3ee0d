"""JSON parsing: RapidJSON's refusals, and the memory bound that requests reserve before parsing."""

from __future__ import annotations

import json
import tracemalloc
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensorflow.core.framework import types_pb2

from service import jsonio
from service import signature as sig
from service.errors import InvalidArgument, ServingError
from service.rest import codec


@pytest.mark.parametrize(
    "body", [b"[1e400]", b'{"instances": [[-1E+309, 1, 2]]}', b"[1" + b"0" * 400 + b".0]"]
)
def test_a_number_too_big_for_a_double_is_a_parse_error(body: bytes) -> None:
    with pytest.raises(InvalidArgument, match="Number too big to be stored in double"):
        jsonio.loads(body)


def test_nan_and_infinity_tokens_and_tiny_numbers_still_parse() -> None:
    doc = jsonio.loads(b"[NaN, Infinity, -Infinity, 1e-400]")
    assert np.isnan(doc[0])
    assert doc[1:] == [np.inf, -np.inf, 0.0]


@pytest.mark.parametrize(
    "obj",
    [
        {"id": "7", "data": np.array([1.5, -2.0], dtype=np.float32)},
        {"id": "null", "data": np.array([1.5], dtype=np.float32)},  # "null" in a string, all finite
        {"data": np.array([np.nan, np.inf, -np.inf, 0.1], dtype=np.float32)},
        {"a": np.array([1, 2], dtype=np.int64), "b": np.array([[np.nan]], dtype=np.float64)},
    ],
)
def test_dumps_arrays_writes_what_the_finite_check_would_choose(obj: dict[str, Any]) -> None:
    arrays = [v for v in obj.values() if isinstance(v, np.ndarray)]
    assert jsonio.dumps_arrays(obj, arrays) == jsonio.dumps(obj, jsonio.all_finite(arrays))


def test_dumps_arrays_writes_non_finite_values_as_tf_serving_does() -> None:
    data = np.array([np.nan, np.inf, -np.inf, 3.0], dtype=np.float32)
    out = jsonio.dumps_arrays({"d": data}, [data])
    assert out == b'{"d":[NaN,Infinity,-Infinity,3.0]}'


FLOAT = sig.TensorInfo("x", types_pb2.DT_FLOAT, None)
STRING = sig.TensorInfo("s", types_pb2.DT_STRING, None)


def _peak(body: bytes, tensor: sig.TensorInfo) -> int:
    """Peak bytes allocated while parsing ``body`` and decoding it as ``tensor`` (the REST path)."""
    tracemalloc.start()
    try:
        doc = jsonio.loads(body)
        try:
            arr: object = codec.to_array(doc, tensor, "input")
        except ServingError:
            arr = None
        _, peak = tracemalloc.get_traced_memory()
        del doc, arr
    finally:
        tracemalloc.stop()
    return peak


def _bound_holds(body: bytes) -> None:
    # The runtime's own copy of the decoded tensor (not traced) is 8 bytes per element at most.
    untraced = 8 * (body.count(b",") + 1)
    for tensor in (FLOAT, STRING):
        assert _peak(body, tensor) + untraced <= jsonio.parse_cost(body), (len(body), tensor.dtype_name)


HOSTILE = {
    "floats": lambda n: json.dumps([1.2345] * n),
    "small ints": lambda n: "[" + ",".join(["0"] * n) + "]",
    "big ints": lambda n: json.dumps([1234567890123] * n),
    "empty lists": lambda n: "[" + ",".join(["[]"] * n) + "]",
    "empty objects": lambda n: "[" + ",".join(["{}"] * n) + "]",
    "empty strings": lambda n: json.dumps([""] * n),
    "one-letter strings": lambda n: json.dumps(["a"] * n),
    "rows": lambda n: json.dumps({"instances": [[1.5, 2.5, -3.25]] * (n // 3)}),
    "spaced rows": lambda n: json.dumps({"instances": [[1.5, 2.5, -3.25]] * (n // 3)}, indent=1),
    "object rows": lambda n: json.dumps({"instances": [{"a": 1.5, "s": "x"}] * (n // 2)}),
    "b64 objects": lambda n: json.dumps([{"b64": "AA=="}] * n),
    "distinct keys": lambda n: json.dumps({f"k{i}": 0 for i in range(n)}),
    "deep nesting": lambda n: "[" + ",".join(["[[[1]]]"] * n) + "]",
    "long strings": lambda n: json.dumps(["x" * 1000] * (n // 100)),
    "numbers then a long string": lambda n: json.dumps([1.5] * n + ["x" * 10_000]),
    "b64 strings": lambda n: json.dumps([{"b64": "QUJD" * 50}] * (n // 10)),
}


@pytest.mark.parametrize("shape", sorted(HOSTILE))
@pytest.mark.parametrize("count", [100, 20_000, 300_000])  # small, orjson and stdlib regimes
def test_parse_cost_bounds_hostile_shapes(shape: str, count: int) -> None:
    _bound_holds(HOSTILE[shape](count).encode())


json_docs = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=40) | st.dictionaries(st.text(max_size=6), children, max_size=8)
    ),
    max_leaves=400,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=json_docs, repeat=st.sampled_from([1, 50, 2000]))
def test_parse_cost_bounds_generated_documents(doc: Any, repeat: int) -> None:
    """Any document, repeated to reach each parser's size range, stays under its bound."""
    _bound_holds(json.dumps([doc] * repeat).encode())
