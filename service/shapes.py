"""Claimed tensor shapes, checked before anything is allocated from them.

A client states a shape (gRPC ``tensor_shape``, V2 ``shape``) separately from the values it sends;
nothing may be allocated, broadcast or reshaped from a shape before it is known to be a shape
numpy can hold and, for allocations, one whose bytes fit the request's memory reservation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from service.errors import InvalidArgument

MAX_RANK = 32  # numpy holds 64 dimensions; TF Serving's models rarely take more than 8
MAX_ELEMENTS = 2**63 - 1


def element_count(shape: Sequence[int], what: str) -> int:
    """The number of elements of ``shape``; InvalidArgument naming ``what`` if it cannot exist."""
    if len(shape) > MAX_RANK:
        raise InvalidArgument(f"{what}: shape has {len(shape)} dimensions, more than {MAX_RANK}")
    if shape and min(shape) < 0:
        raise InvalidArgument(f"{what}: negative dimension in shape {list(shape)}")
    count = math.prod(shape)
    # numpy refuses a shape whose non-zero dimensions overflow, even with a zero among them.
    if count > MAX_ELEMENTS or (count == 0 and math.prod(d for d in shape if d) > MAX_ELEMENTS):
        raise InvalidArgument(f"{what}: shape {list(shape)} has more elements than a tensor can hold")
    return count


def reshape(arr: np.ndarray, shape: Sequence[int], what: str) -> np.ndarray:
    """``arr`` (already holding ``element_count(shape)`` values) in ``shape``."""
    try:
        return arr.reshape(tuple(shape))
    except ValueError as exc:
        raise InvalidArgument(f"{what}: cannot hold shape {list(shape)}: {exc}") from None
