"""JSON in and out of the REST API: orjson on the fast path, stdlib json for NaN/Infinity.

TF Serving parses with RapidJSON's ``kParseNanAndInfFlag`` and writes non-finite floats as the bare
tokens ``NaN``, ``Infinity`` and ``-Infinity``; orjson rejects those on input and writes ``null``.
So parsing falls back to the stdlib parser when orjson fails, and encoding falls back when an
output holds a non-finite value.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import orjson

from service.errors import InvalidArgument

_OPTS = orjson.OPT_SERIALIZE_NUMPY


def loads(body: bytes) -> Any:
    """Parse ``body``; raise :class:`InvalidArgument` with TF Serving's wording on failure."""
    if not body.strip():
        raise InvalidArgument("JSON Parse error: The document is empty")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(body)
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
