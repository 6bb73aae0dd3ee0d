"""Hypothesis strategies for REST bodies in the shapes each endpoint accepts, and near misses of them.

Every verb gets documents built from its own grammar (TF Serving's row and columnar ``:predict``,
``:regress``/``:classify`` examples with ``context``, V2 ``infer`` with every field and datatype),
with values that stray from it at every level: wrong JSON types, ragged or deep nesting, huge and
non-finite numbers, bad base64, lone surrogates, shapes that disagree with their data.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from service.rest.v2_codec import DATATYPES

NAMES = ["x", "a", "b", "s", "y", "total", "length", "echo_bytes", "inputs", "f", "x0", "x1", "x2", "zz"]
SIGNATURES = ["", "serving_default", "classify", "regress", "predict", "nope", "__saved_model_init_op"]

numbers = (
    st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([0, 1, -1, 2**31, 2**63 - 1, 2**63, -(2**63) - 1, 1e308, 5e-324])
)
texts = st.text(max_size=12) | st.sampled_from(["", "\ud83d", "\udc00x", "AAAA", "héllo"])
b64 = st.builds(lambda t: {"b64": t}, st.text(alphabet="ABCDabcd0189+/=-_!", max_size=12)) | st.sampled_from(
    [{"b64": "a"}, {"b64": "QUJD"}, {"b64": 3}, {"b64": "QUJD", "x": 1}, {}]
)
scalars = st.none() | st.booleans() | numbers | texts | b64


def nested(leaf: st.SearchStrategy[Any], max_leaves: int = 24) -> st.SearchStrategy[Any]:
    """Leaves, lists of them (regular or ragged) and objects, nested a few levels."""
    return st.recursive(
        leaf,
        lambda inner: (
            st.lists(inner, max_size=5) | st.dictionaries(st.sampled_from(NAMES) | texts, inner, max_size=3)
        ),
        max_leaves=max_leaves,
    )


def regular(leaf: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Well-formed rectangular tensors of ``leaf``: most requests a client sends look like these."""
    return (
        st.integers(0, 3)
        .flatmap(lambda rank: st.lists(st.integers(0, 4), min_size=rank, max_size=rank))
        .flatmap(lambda shape: _filled(shape, leaf))
    )


def _filled(shape: list[int], leaf: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    if not shape:
        return leaf
    return st.lists(_filled(shape[1:], leaf), min_size=shape[0], max_size=shape[0])


tensors = regular(numbers) | regular(st.floats(-10, 10)) | regular(texts | b64) | nested(scalars)
rows_of_objects = st.lists(
    st.dictionaries(st.sampled_from(NAMES), tensors, max_size=4), min_size=0, max_size=4
)
signature = st.fixed_dictionaries({}, optional={"signature_name": st.sampled_from(SIGNATURES) | scalars})

predict_row = st.builds(
    lambda rows, extra: {"instances": rows, **extra}, tensors | rows_of_objects | scalars, signature
)
predict_columnar = st.builds(
    lambda cols, extra: {"inputs": cols, **extra},
    tensors | st.dictionaries(st.sampled_from(NAMES), tensors, max_size=4) | scalars,
    signature,
)
features = st.dictionaries(
    st.sampled_from(NAMES) | texts, scalars | st.lists(scalars, max_size=4) | nested(scalars, 6), max_size=4
)
examples = st.builds(
    lambda ex, ctx, extra: {"examples": ex, **ctx, **extra},
    st.lists(features, max_size=4) | scalars,
    st.fixed_dictionaries({}, optional={"context": features | scalars}),
    signature,
)

parameters = st.dictionaries(texts, scalars | st.lists(scalars, max_size=2), max_size=3) | scalars
v2_shapes = st.lists(
    st.integers(0, 4) | st.sampled_from([-1, 2**31, 2**62, 2**63, 2**64]) | scalars, max_size=4
)
v2_input = st.fixed_dictionaries(
    {},
    optional={
        "name": st.sampled_from(NAMES) | scalars,
        "shape": v2_shapes | scalars,
        "datatype": st.sampled_from(sorted(DATATYPES)) | scalars,
        "data": tensors,
        "parameters": parameters,
    },
)
v2_infer = st.fixed_dictionaries(
    {},
    optional={
        "id": texts | scalars,
        "parameters": parameters,
        "inputs": st.lists(v2_input, max_size=4) | scalars,
        "outputs": st.lists(
            st.fixed_dictionaries(
                {}, optional={"name": st.sampled_from(NAMES) | scalars, "parameters": parameters}
            ),
            max_size=3,
        )
        | scalars,
    },
)


def encode(doc: Any) -> bytes:
    return json.dumps(doc, allow_nan=True).encode("utf-8", "surrogatepass")


def as_body(documents: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """Documents as bodies, sometimes with a number too big for a double or cut short."""
    return st.builds(_mangle, documents, st.sampled_from(["plain"] * 6 + ["huge number", "truncated", "nul"]))


def _mangle(doc: Any, how: str) -> bytes:
    body = encode(doc)
    if how == "huge number":
        return body.replace(b"1", b"1e400", 1)
    if how == "truncated":
        return body[: max(1, len(body) // 2)]
    if how == "nul":
        return body + b"\x00"
    return body


MODELS = ["linear", "multi", "nope"]
VERSION_PARTS = [
    "",
    "/versions/1",
    "/versions/2",
    "/versions/99999999999999999999",
    "/labels/stable",
    "/labels/canary",
    "/labels/nope",
]
# (method, path strategy, body strategy) for every endpoint and verb.
ENDPOINTS: dict[str, tuple[str, st.SearchStrategy[str], st.SearchStrategy[bytes]]] = {
    "v1 predict row": (
        "POST",
        st.builds(
            lambda m, v: f"/v1/models/{m}{v}:predict", st.sampled_from(MODELS), st.sampled_from(VERSION_PARTS)
        ),
        as_body(predict_row),
    ),
    "v1 predict columnar": (
        "POST",
        st.builds(
            lambda m, v: f"/v1/models/{m}{v}:predict", st.sampled_from(MODELS), st.sampled_from(VERSION_PARTS)
        ),
        as_body(predict_columnar),
    ),
    "v1 regress": (
        "POST",
        st.builds(
            lambda m, v: f"/v1/models/{m}{v}:regress", st.sampled_from(MODELS), st.sampled_from(VERSION_PARTS)
        ),
        as_body(examples),
    ),
    "v1 classify": (
        "POST",
        st.builds(
            lambda m, v: f"/v1/models/{m}{v}:classify",
            st.sampled_from(MODELS),
            st.sampled_from(VERSION_PARTS),
        ),
        as_body(examples),
    ),
    "v1 status and metadata": (
        "GET",
        st.builds(
            lambda m, v, meta: f"/v1/models/{m}{v}{meta}",
            st.sampled_from(MODELS),
            st.sampled_from(VERSION_PARTS),
            st.sampled_from(["", "/metadata"]),
        ),
        st.just(b""),
    ),
    "v2 infer": (
        "POST",
        st.builds(
            lambda m, v: f"/v2/models/{m}{v}/infer",
            st.sampled_from(MODELS),
            st.sampled_from(["", "/versions/1", "/versions/x", "/versions/-1"]),
        ),
        as_body(v2_infer),
    ),
    "v2 metadata and ready": (
        "GET",
        st.builds(
            lambda m, v, r: f"/v2/models/{m}{v}{r}",
            st.sampled_from(MODELS),
            st.sampled_from(["", "/versions/1", "/versions/x"]),
            st.sampled_from(["", "/ready"]),
        ),
        st.just(b""),
    ),
}
