"""Comparing a shadow (candidate) answer with the primary one, output tensor by output tensor.

Every output the client received is compared (an ``output_filter`` narrows them):

1. missing in the candidate, another dtype or another shape: ``shape_mismatch``;
2. numbers: ``numpy.isclose(candidate, primary, rtol, atol, equal_nan=True)`` everywhere, i.e.
   ``|candidate - primary| <= atol + rtol * |primary|`` with the **primary as the reference** (the
   rule is asymmetric); NaN agrees only with NaN in the same place, ±Infinity only with itself;
   strings and booleans must be equal;
3. every output agrees: ``agree``, else ``disagree``.

The largest absolute difference over the finite numeric values is reported too (0 if none).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

import numpy as np

__all__ = ["Result", "compare"]


class Result(StrEnum):
    AGREE = "agree"
    DISAGREE = "disagree"
    SHAPE_MISMATCH = "shape_mismatch"
    ERROR = "error"
    DROPPED = "dropped"


def compare(
    primary: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray], rtol: float, atol: float
) -> tuple[Result, float]:
    """The comparison's result and the largest absolute difference seen."""
    worst = 0.0
    agree = True
    for name, reference in primary.items():
        value = candidate.get(name)
        if value is None:
            return Result.SHAPE_MISMATCH, worst
        value, reference = np.asarray(value), np.asarray(reference)
        if value.dtype != reference.dtype or value.shape != reference.shape:
            return Result.SHAPE_MISMATCH, worst
        if reference.dtype.kind in "fciu" and reference.size:
            close = np.isclose(value, reference, rtol=rtol, atol=atol, equal_nan=True)
            agree = agree and bool(close.all())
            finite = np.isfinite(value) & np.isfinite(reference)
            if finite.any():
                diff = np.abs(value[finite].astype(np.float64) - reference[finite].astype(np.float64))
                worst = max(worst, float(diff.max()))
        elif not np.array_equal(value, reference):
            agree = False
    return (Result.AGREE if agree else Result.DISAGREE), worst
