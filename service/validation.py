"""Request tensors checked against a signature, once, for every transport and the shadow path.

:func:`validate_inputs` names the bad input (names, dtypes, shapes, finiteness) with TF Serving's
wording where it has one, so bad input is a 400 whatever the transport; :func:`run_candidate` is
the shadow worker's call (validated as a request, run on TensorFlow only, off the event loop).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from service import signature as sig
from service.errors import InvalidArgument, Unimplemented
from service.servable import Servable

__all__ = ["run_candidate", "validate_inputs"]


def run_candidate(
    servable: Servable, signature_name: str, inputs: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """A shadow request (on the shadow thread): validated as a request, run on TensorFlow only."""
    info = servable.signature(signature_name)
    validate_inputs(info, inputs, servable.allow_non_finite)
    return servable.run(info.name, inputs)


def validate_inputs(
    info: sig.SignatureInfo, inputs: Mapping[str, np.ndarray], allow_non_finite: bool
) -> None:
    """Names, dtypes, shapes and (when the model says so) finiteness, naming the bad input."""
    expected, sent = set(info.inputs), set(inputs)
    if expected != sent:
        raise InvalidArgument(
            f"input size does not match signature: {len(sent)}!={len(expected)} "
            f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(expected))}}}). "
            f"Sent extra: {{{','.join(sorted(sent - expected))}}}. "
            f"Missing but required: {{{','.join(sorted(expected - sent))}}}."
        )
    for name, tensor in info.inputs.items():
        value = inputs[name]
        want = tensor.numpy_dtype
        if want is None:
            raise Unimplemented(f"input '{name}' has unsupported dtype {tensor.dtype_name}")
        if value.dtype != want:
            raise InvalidArgument(f"input '{name}' expects {tensor.dtype_name}, got {value.dtype}")
        if tensor.shape is not None and not _shape_fits(tensor.shape, value.shape):
            raise InvalidArgument(
                f"input '{name}' expects shape {tensor.shape_text()}, "
                f"got [{','.join(str(d) for d in value.shape)}]"
            )
        if not allow_non_finite and value.dtype.kind == "f" and not np.isfinite(value).all():
            raise InvalidArgument(
                f"input '{name}' contains NaN or Infinity, which this model does not accept"
            )


def _shape_fits(expected: tuple[int, ...], got: tuple[int, ...]) -> bool:
    if len(expected) != len(got):
        return False
    for want, have in zip(expected, got, strict=True):  # noqa: SIM110 - a loop beats a generator here
        if want >= 0 and want != have:
            return False
    return True
