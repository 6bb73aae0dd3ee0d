"""Property-based: malformed and hostile requests never get a 5xx, and the server keeps serving.

Two kinds of generated requests: bodies in each endpoint's own grammar with near misses at every
level (``fuzz_bodies.ENDPOINTS``, 300 examples per endpoint in process), and unstructured bytes,
JSON and paths (400 in process, 150 against the real server process).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from tests.fixtures import ServerProcess
from tests.service.rest.fuzz_bodies import ENDPOINTS

ALLOWED_5XX = (501, 503)  # Unimplemented dtypes; a label pointing at a version that is not loaded


def _check(r: httpx.Response) -> None:
    """No 5xx but the allowed ones, and every error body has the one shape ``{"error": str}``.

    Readiness probes are not errors: a not-ready answer is 503 with the protocol's own
    ``{"ready": false}`` (``{"name", "ready"}`` for a model) body.
    """
    assert r.status_code < 500 or r.status_code in ALLOWED_5XX, (r.status_code, r.text[:500])
    if r.request.url.path.endswith("/ready") and r.status_code == 503:
        assert r.json()["ready"] is False
    elif r.status_code >= 400 and r.content:
        assert r.headers.get("content-type") == "application/json", r.text[:200]
        body = r.json()
        assert set(body) == {"error"}, body
        assert isinstance(body["error"], str)


PATHS = [
    "/v1/models/linear:predict",
    "/v1/models/linear/versions/1:predict",
    "/v1/models/linear/labels/stable:predict",
    "/v1/models/multi:predict",
    "/v1/models/linear:regress",
    "/v1/models/multi:classify",
    "/v1/models/linear",
    "/v1/models/linear/metadata",
    "/v1/models/nope:predict",
    "/v2/models/linear/infer",
    "/v2/models/multi/versions/1/infer",
    "/v2/models/linear",
    "/v2/models/linear/ready",
    "/v2/health/ready",
    "/v2",
    "/metrics",
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)
keys = st.sampled_from(
    [
        "instances",
        "inputs",
        "signature_name",
        "examples",
        "context",
        "outputs",
        "id",
        "name",
        "shape",
        "datatype",
        "data",
        "b64",
        "a",
        "b",
        "s",
        "x",
    ]
)
structured = st.dictionaries(keys, json_values, max_size=5)
v2_inputs = st.fixed_dictionaries(
    {"inputs": st.lists(st.dictionaries(keys, json_values, max_size=5), max_size=3)}
)


def _encode(doc: Any) -> bytes:
    return json.dumps(doc, allow_nan=True).encode()


bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(_encode),
    structured.map(_encode),
    v2_inputs.map(_encode),
    st.sampled_from(
        [
            b"{" * 5000,
            b"[" * 100000,
            b'{"instances": ' + b"[" * 3000 + b"]" * 3000 + b"}",
            b'{"instances": [[1e999, -1e999, 1]]}',
            b'{"instances": [[1, 2, 3]]}' + b"\x00",
            '{"instances": [["\ud83d", 1, 2]]}'.encode("utf-8", "surrogatepass"),
        ]
    ),
)
methods = st.sampled_from(["GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
paths = st.sampled_from(PATHS) | st.text(alphabet="/:abcv1%.\\", max_size=40).map(lambda t: "/v1" + t)


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
def test_every_endpoint_in_its_own_grammar(client: TestClient, endpoint: str) -> None:
    method, path_strategy, body_strategy = ENDPOINTS[endpoint]

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(path=path_strategy, body=body_strategy)
    def run(path: str, body: bytes) -> None:
        _check(client.request(method, path, content=body, headers={"content-type": "application/json"}))

    run()
    ok = client.post("/v1/models/linear:predict", json={"instances": [[1.0, 2.0, 3.0]]})
    assert ok.status_code == 200


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(method=methods, path=paths, body=bodies)
def test_no_5xx_in_process(client: TestClient, method: str, path: str, body: bytes) -> None:
    _check(client.request(method, path, content=body, headers={"content-type": "application/json"}))


@pytest.mark.slow
def test_no_5xx_against_the_real_server(tmp_path: Path, model_base: Path) -> None:
    cfg = tmp_path / "models.config"
    cfg.write_text(f"""model_config_list {{
        config {{ name: 'linear' base_path: '{model_base / "linear"}' version_labels {{ key: 'stable' value: 1 }} }}
        config {{ name: 'multi' base_path: '{model_base / "multi"}' }} }}""")
    server = ServerProcess([f"--model_config_file={cfg}"], log=tmp_path / "server.log")
    try:
        server.wait_ready()
        with httpx.Client(base_url=server.url, timeout=10) as http:

            @settings(max_examples=150, deadline=None)
            @given(method=methods, path=st.sampled_from(PATHS), body=bodies)
            def hammer(method: str, path: str, body: bytes) -> None:
                _check(http.request(method, path, content=body))

            hammer()

            @settings(max_examples=60, deadline=None)
            @given(data=st.data(), endpoint=st.sampled_from(sorted(ENDPOINTS)))
            def hammer_grammar(data: st.DataObject, endpoint: str) -> None:
                method, path_strategy, body_strategy = ENDPOINTS[endpoint]
                _check(http.request(method, data.draw(path_strategy), content=data.draw(body_strategy)))

            hammer_grammar()
            ok = http.post("/v1/models/linear:predict", json={"instances": [[1.0, 2.0, 3.0]]})
            assert ok.status_code == 200
    finally:
        assert server.terminate() == 0, server.logs()
