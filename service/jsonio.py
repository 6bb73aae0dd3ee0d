"""JSON in and out of the REST API: orjson on the fast path, stdlib json for NaN/Infinity.

TF Serving parses with RapidJSON's ``kParseNanAndInfFlag`` and writes non-finite floats as the bare
tokens ``NaN``, ``Infinity`` and ``-Infinity``; orjson rejects those on input and writes ``null``.
So parsing falls back to the stdlib parser when orjson fails, and encoding falls back when an
output holds a non-finite value. A number too big for a double (``1e400``) is a parse error, as in
RapidJSON, not Infinity.

Memory: :func:`parse_cost` bounds what parsing a body (and decoding its tensors) may allocate, so
the request can reserve it first (see :mod:`service.memory`). orjson builds a DOM before Python
objects and peaks at 15-37x the body; the stdlib parser needs a fraction of that for numbers, so
bodies over ``STDLIB_ABOVE`` bytes are parsed by the stdlib parser.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import orjson

from service.errors import InvalidArgument

_OPTS = orjson.OPT_SERIALIZE_NUMPY
STDLIB_ABOVE = 256 << 10
# Peak bytes allocated, parsing plus decoding the tensors, measured with tracemalloc over hostile
# shapes (empty lists and objects, one-letter strings, big integers, deep nesting, long strings;
# tests/service/test_jsonio.py checks the bound holds). orjson preallocates its DOM from the input
# size and peaks at up to ~56x the body (string tensors); the stdlib parser grows with the values it finds.
_ORJSON_FACTOR = 64
_FIXED = 16 << 10  # the request's own objects and an error's traceback
_STDLIB_COST = {b",": 64, b"[": 128, b"{": 128, b":": 40, b'"': 32}


def parse_cost(body: bytes) -> int:
    """An upper bound of the bytes that parsing ``body`` and decoding its tensors allocate."""
    n = len(body)
    if n <= STDLIB_ABOVE:
        return _ORJSON_FACTOR * n + _FIXED
    return 4 * n + _FIXED + sum(weight * body.count(char) for char, weight in _STDLIB_COST.items())


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (math.inf, -math.inf):
        raise _TooBig(text)
    return value


class _TooBig(ValueError):
    pass


def loads(body: bytes) -> Any:
    """Parse ``body``; raise :class:`InvalidArgument` with TF Serving's wording on failure."""
    if not body.strip():
        raise InvalidArgument("JSON Parse error: The document is empty")
    if len(body) <= STDLIB_ABOVE:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    try:
        return json.loads(body, parse_float=_finite_float)
    except _TooBig as exc:
        message = f"JSON Parse error: Number too big to be stored in double: {exc}"[:200]
        raise InvalidArgument(message) from None
    except (ValueError, RecursionError) as exc:
        position = getattr(exc, "pos", None)
        where = f" at offset: {position}" if position is not None else ""
        message = getattr(exc, "msg", str(exc))
        raise InvalidArgument(f"JSON Parse error: {message}{where}") from None


def dumps(obj: Any, finite: bool = True) -> bytes:
    """Encode ``obj`` (numpy arrays allowed); pass ``finite=False`` when values may be NaN/Inf."""
    if finite:
        return orjson.dumps(obj, option=_OPTS)
    return json.dumps(_to_builtin(obj), allow_nan=True, separators=(",", ":")).encode()


def dumps_arrays(obj: Any, arrays: Iterable[Any]) -> bytes:
    """Encode ``obj`` whose only non-finite floats can be in ``arrays`` (the numpy arrays it holds).

    orjson writes a non-finite float as ``null``, so a result without ``null`` anywhere is final;
    only one that has it (a non-finite value, or just the text in a string) pays for
    :func:`all_finite`, and the stdlib encoder when that finds one.
    """
    out = orjson.dumps(obj, option=_OPTS)
    if b"null" not in out or all_finite(arrays):
        return out
    return dumps(obj, finite=False)


def all_finite(arrays: Any) -> bool:
    """True when no float array among ``arrays`` holds NaN or +-Infinity."""
    for arr in arrays:
        if isinstance(arr, np.ndarray) and arr.dtype.kind in "fc" and not np.isfinite(arr).all():
            return False
    return True


def _to_builtin(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        if obj.dtype == np.float32:  # shortest float32 text, as orjson and TF Serving write it
            flat = [float(str(v)) for v in obj.ravel()]
            return np.asarray(flat, dtype=np.float64).reshape(obj.shape).tolist()
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {k: _to_builtin(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_to_builtin(v) for v in obj]
    return obj
