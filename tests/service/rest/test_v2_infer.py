"""V2 infer on its bare ASGI path: what the dispatch and the handler could get wrong.

``RestApp`` takes ``POST`` on ``/v2/models/<m>[/versions/<v>]/infer`` away from FastAPI; every
other request (a near miss, another method) must still get FastAPI's answer in the one error
shape, and the handler must keep what the FastAPI route did: the order of its checks, the limits,
the memory reservation, the metrics and the traffic split.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from service import model_config
from service.auth import TokenAuth
from service.dataplane import DataPlane
from service.memory import MemoryBudget
from service.metrics import Metrics
from service.repository import ModelRepository
from service.rest import v2_infer
from service.rest.app import create_app
from service.traffic import Traffic, parse
from tests.fixtures import export_linear
from tests.service.rest.conftest import make_client

BODY = {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}


def _error(r: Any, status: int) -> str:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert set(body) == {"error"}, body
    return str(body["error"])


def _requests(c: TestClient, **labels: str) -> float:
    """``modelship_requests_total`` for ``labels`` (0 when absent)."""
    want = [f'{k}="{v}"' for k, v in labels.items()]
    total = 0.0
    for line in c.get("/metrics").text.splitlines():
        if line.startswith("modelship_requests_total{") and all(w in line for w in want):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v2/models/linear/infer", ("linear", None)),
        ("/v2/models/linear/versions/1/infer", ("linear", "1")),
        ("/v2/models/versions/versions/7/infer", ("versions", "7")),
        ("/v2/models/a:b.c/versions/x/infer", ("a:b.c", "x")),  # the handler refuses the version
        ("/v2/models/linear/INFER", None),
        ("/V2/models/linear/infer", None),
        ("/v2/models//infer", None),
        ("/v2/models/linear/versions//infer", None),
        ("/v2/models/linear/versions/infer", None),
        ("/v2/models/linear/infer/", None),
        ("/v2/models/linear/infer/x", None),
        ("/v2/models/a/b/infer", None),
        ("/v2/models/linear:infer", None),
    ],
)
def test_match_takes_one_segment_per_name_and_version_case_sensitively(
    path: str, expected: tuple[str, str | None] | None
) -> None:
    assert v2_infer.match(path) == expected


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/v2/models/linear/INFER", 404, "Not Found"),
        ("/V2/models/linear/infer", 404, "Not Found"),
        ("/v2/models//infer", 404, "Not Found"),
        ("/v2/models/linear/versions//infer", 404, "Not Found"),
        ("/v2/models/linear/infer/x", 404, "Not Found"),
        ("/v2/models/linear:infer", 405, "Method Not Allowed"),  # FastAPI's GET /v2/models/{name}
        ("/v2/models/linear/versions/infer", 405, "Method Not Allowed"),  # GET .../versions/{v}
    ],
)
def test_a_near_miss_falls_through_to_fastapi_in_the_one_error_shape(
    client: TestClient, path: str, status: int, message: str
) -> None:
    assert _error(client.post(path, json=BODY), status) == message


def test_a_trailing_slash_is_redirected_to_the_bare_path(client: TestClient) -> None:
    r = client.post("/v2/models/linear/infer/", json=BODY, follow_redirects=False)
    assert r.status_code == 307
    assert r.headers["location"].endswith("/v2/models/linear/infer")


def test_a_path_only_starlette_matches_is_answered_the_same_way(client: TestClient) -> None:
    # Starlette's `$` accepts a trailing newline; the FastAPI route answers through the handler.
    plain = client.post("/v2/models/linear/infer", json={**BODY, "id": "n"})
    newline = client.post("/v2/models/linear/infer%0A", json={**BODY, "id": "n"})
    assert newline.status_code == plain.status_code == 200
    assert newline.content == plain.content
    assert _error(client.post("/v2/models/linear/versions/abc/infer%0A", json=BODY), 400).startswith(
        "version must be an integer"
    )


@pytest.mark.parametrize(
    ("query", "status", "answer"),
    [
        ("?version=1", 200, "1"),
        ("?version=9", 404, "Specific(linear, 9)"),
        ("?x=1&version=%31", 200, "1"),
        ("?version=9&version=1", 200, "1"),  # the last one, as Starlette's QueryParams
        ("?version=1&version=9", 404, "Specific(linear, 9)"),
        ("?VERSION=9", 200, "1"),
        ("?version=", 400, "version must be an integer, got ''"),
        ("?version", 400, "version must be an integer, got ''"),
        ("?version=1%00", 400, "version must be an integer, got '1\\x00'"),
    ],
)
def test_the_version_query_parameter_the_fastapi_route_took_still_counts(
    client: TestClient, query: str, status: int, answer: str
) -> None:
    r = client.post("/v2/models/linear/infer" + query, json=BODY)
    if status == 200:
        assert r.status_code == 200, r.text
        assert r.json()["model_version"] == answer
    else:
        assert answer in _error(r, status)
    path_wins = client.post("/v2/models/linear/versions/1/infer" + query, json=BODY)
    assert path_wins.status_code == 200, path_wins.text


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_on_infer_paths_get_fastapis_405(client: TestClient, method: str) -> None:
    for path in ("/v2/models/linear/infer", "/v2/models/linear/versions/1/infer"):
        assert _error(client.request(method, path), 405) == "Method Not Allowed"
    r = client.head("/v2/models/linear/infer")
    assert (r.status_code, r.content) == (405, b"")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "JSON Parse error: The document is empty"),
        (b"   \n", "JSON Parse error: The document is empty"),
        (b"garbage", "JSON Parse error: Expecting value at offset: 0"),
        (b'{"inputs": [', "JSON Parse error: Expecting value at offset: 12"),
        (b"[1]", "request body must be a JSON object"),
        (b'"inputs"', "request body must be a JSON object"),
        (b"null", "request body must be a JSON object"),
        (b'{"inputs": null}', "'inputs' must be a non-empty list of tensors"),
        (
            b'{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1e400, 1, 2]}]}',
            "too big",
        ),
        (b"\xff\xfe{}", "JSON Parse error"),
    ],
)
def test_bad_json_is_400_naming_what_was_wrong(client: TestClient, body: bytes, message: str) -> None:
    assert message in _error(client.post("/v2/models/linear/infer", content=body), 400)


def test_a_non_finite_input_is_refused_when_the_model_says_so(client: TestClient) -> None:
    body = b'{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [NaN, 1, 2]}]}'
    assert "contains NaN or Infinity" in _error(client.post("/v2/models/linear/infer", content=body), 400)


def test_non_finite_outputs_are_written_as_tf_serving_does(client: TestClient) -> None:
    body = {
        "id": "null",  # "null" in the reply's text, with every output finite: still orjson's bytes
        "inputs": [
            {"name": "a", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 1, 2]},
            {"name": "b", "shape": [2], "datatype": "INT64", "data": [3, 4]},
            {"name": "s", "shape": [2], "datatype": "BYTES", "data": ["ab", "null"]},
        ],
        "outputs": [{"name": "total"}, {"name": "echo_bytes"}],
    }
    r = client.post("/v2/models/multi/infer", json=body)
    assert r.status_code == 200, r.text
    assert b'"data":[6.0,7.0]' in r.content
    assert r.json()["id"] == "null"
    body["inputs"][0]["data"] = [float("nan"), 1, float("inf"), 1]
    r = client.post("/v2/models/multi/infer", content=json.dumps(body).encode())
    assert r.status_code == 200, r.text
    assert b'"data":[NaN,Infinity]' in r.content


def test_the_id_is_echoed_only_when_given(client: TestClient) -> None:
    assert "id" not in client.post("/v2/models/linear/infer", json=BODY).json()
    assert client.post("/v2/models/linear/infer", json={**BODY, "id": ""}).json()["id"] == ""


def test_auth_comes_first_in_the_one_error_shape(model_base: Path) -> None:
    with make_client(model_base, token="s3cret") as c:
        for path in (
            "/v2/models/linear/infer",
            "/v2/models/linear/versions/abc/infer",  # before the version is parsed
            "/v2/models/nope/infer",  # before the model is looked up
        ):
            assert _error(c.post(path, content=b"garbage"), 401).startswith("missing bearer token")
            assert (
                _error(c.post(path, headers={"Authorization": "Bearer nope"}), 401) == "invalid bearer token"
            )
        ok = c.post("/v2/models/linear/infer", json=BODY, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200, ok.text
        assert _requests(c, api="infer", code="UNAUTHENTICATED", model="linear") == 4


def test_the_model_is_looked_up_before_the_body_is_read(model_base: Path) -> None:
    with make_client(model_base, max_body=64) as c:
        big = json.dumps({**BODY, "pad": "x" * 100})
        assert "Latest(nope)" in _error(c.post("/v2/models/nope/infer", content=big), 404)
        assert "exceeds the limit of 64" in _error(c.post("/v2/models/linear/infer", content=big), 413)


def test_body_limit_applies_to_chunked_and_gzipped_bodies(model_base: Path) -> None:
    with make_client(model_base, max_body=200) as c:

        def chunks() -> Iterator[bytes]:
            yield b'{"inputs": ['
            yield b" " * 300
            yield b"]}"

        assert "exceeds the limit of 200" in _error(c.post("/v2/models/linear/infer", content=chunks()), 413)
        bomb = gzip.compress(json.dumps({**BODY, "pad": " " * 5000}).encode())
        r = c.post("/v2/models/linear/infer", content=bomb, headers={"Content-Encoding": "gzip"})
        assert "decompressed request body exceeds the limit of 200" in _error(r, 413)
        small = gzip.compress(json.dumps(BODY).encode())
        r = c.post("/v2/models/linear/infer", content=small, headers={"Content-Encoding": "gzip"})
        assert r.status_code == 200, r.text


def test_memory_is_reserved_before_parsing_and_released_after(model_base: Path) -> None:
    budget = MemoryBudget(4 << 10, Metrics().memory_refused)
    with make_client(model_base, memory=budget) as c:
        r = c.post("/v2/models/linear/infer", json={**BODY, "pad": "x" * 200})
        assert "parsing the JSON request body" in _error(r, 413)  # 64x the body > the whole budget
        assert budget.in_use == 0
    budget = MemoryBudget(64 << 20, Metrics().memory_refused)
    with make_client(model_base, memory=budget) as c:
        for body in (BODY, {"inputs": []}, b"garbage"):
            r = c.post(
                "/v2/models/linear/infer", content=body if isinstance(body, bytes) else json.dumps(body)
            )
            assert r.status_code in (200, 400)
        assert budget.in_use == 0


def test_metrics_count_every_answer_with_its_code_and_version(model_base: Path) -> None:
    with make_client(model_base) as c:
        c.post("/v2/models/linear/infer", json=BODY)
        c.post("/v2/models/linear/versions/1/infer", json={"inputs": []})
        c.post("/v2/models/linear/versions/x/infer", json=BODY)
        c.post("/v2/models/nope/infer", json=BODY)
        assert _requests(c, api="infer", code="OK", model="linear", version="1") == 1
        assert _requests(c, api="infer", code="INVALID_ARGUMENT", model="linear", version="1") == 1
        assert _requests(c, api="infer", code="INVALID_ARGUMENT", model="linear", version="") == 1
        assert _requests(c, api="infer", code="NOT_FOUND", model="nope", version="") == 1
        assert _requests(c, transport="rest", api="infer") == 4


def test_an_unexpected_error_is_counted_as_internal(
    model_base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_: object, **__: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(DataPlane, "predict", broken)
    with make_client(model_base, raise_server_exceptions=False) as c:
        assert _error(c.post("/v2/models/linear/infer", json=BODY), 500) == "internal error"
        assert _requests(c, api="infer", code="INTERNAL", model="linear", version="1") == 1
        assert _requests(c, api="infer", code="OK") == 0


@pytest.fixture
def split_client(fresh_base: Path, linear_run: Path) -> Iterator[TestClient]:
    """linear 1 and 2 loaded, name-only requests split 1:1, sticky by ``x-user-id``."""
    export_linear(linear_run, fresh_base, 2)
    configs = model_config.parse(
        f"model_config_list {{ config {{ name: 'linear' base_path: '{fresh_base / 'linear'}' "
        "model_version_policy { all {} } } }"
    )
    metrics = Metrics()
    repo = ModelRepository(configs, poll_seconds=-1, settle_seconds=0, enable_warmup=False)
    while repo.poll_once():
        pass
    traffic = Traffic()
    traffic.apply(
        parse('{"models": {"linear": {"weights": {"1": 1, "2": 1}, "sticky_header": "x-user-id"}}}'), "t"
    )
    plane = DataPlane(repo, traffic=traffic)
    app = create_app(plane, metrics, TokenAuth(None), 1 << 20, "test", MemoryBudget(64 << 20))
    with TestClient(app) as c:
        yield c
    plane.close()


def test_v2_infer_goes_through_the_traffic_split_and_its_sticky_header(split_client: TestClient) -> None:
    def version(path: str = "/v2/models/linear/infer", **headers: str) -> str:
        r = split_client.post(path, json=BODY, headers=headers)
        assert r.status_code == 200, r.text
        return str(r.json()["model_version"])

    assert sorted(version() for _ in range(10)) == ["1"] * 5 + ["2"] * 5  # exact round-robin
    assert {version("/v2/models/linear/versions/2/infer") for _ in range(4)} == {"2"}  # never split
    seen = set()
    for key in ("alice", "bob", "carol", "dave", "erin", "frank"):
        chosen = {version(**{"x-user-id": key}) for _ in range(3)}
        assert len(chosen) == 1, (key, chosen)  # the same key, the same version
        v1 = split_client.post(
            "/v1/models/linear:predict", json={"instances": [[1, 2, 3]]}, headers={"x-user-id": key}
        )
        assert v1.headers["x-modelship-model-version"] in chosen  # and the same as /v1 picks
        seen |= chosen
    assert seen == {"1", "2"}
