"""The traffic file: validation naming the field, a normalized hash, reloads by content."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from service.errors import InvalidArgument
from service.traffic import Traffic, TrafficFile, config_hash, normalized, parse
from service.traffic.compare import Result, compare

EXAMPLE = {
    "generation": "rollout-7",
    "models": {
        "linear": {
            "weights": {"1": 90, "2": 10},
            "sticky_header": "x-user-id",
            "shadow": {"version": 2, "percent": 10, "rtol": 1e-4, "atol": 1e-6},
        }
    },
}


def test_example_parses_with_defaults() -> None:
    config = parse(json.dumps(EXAMPLE))
    linear = config.models["linear"]
    assert linear.weights == {1: 90, 2: 10}
    assert linear.shadow is not None
    assert linear.shadow.version == 2
    shadow_only = parse('{"models": {"m": {"shadow": {"version": 3, "percent": 5}}}}').models["m"]
    assert shadow_only.shadow is not None
    assert (shadow_only.shadow.rtol, shadow_only.shadow.atol) == (1e-4, 1e-6)
    assert shadow_only.weights == {}


@pytest.mark.parametrize(
    ("doc", "where"),
    [
        ({"models": {"m": {"weights": {"one": 1}}}}, "models.m.weights"),
        ({"models": {"m": {"weights": {"1": -1}}}}, "models.m.weights"),
        ({"models": {"m": {"weights": {"1": 1.5}}}}, "models.m.weights"),
        ({"models": {"m": {"wieghts": {"1": 1}}}}, "models.m.wieghts"),
        ({"models": {"m": {"shadow": {"version": 2, "percent": 101}}}}, "models.m.shadow.percent"),
        ({"models": {"m": {"shadow": {"version": 2}}}}, "models.m.shadow.percent"),
        ({"models": {"m": {"sticky_header": "X User"}}}, "models.m.sticky_header"),
        ({"generation": 7}, "generation"),
        ({"extra": 1}, "extra"),
    ],
)
def test_invalid_files_name_the_field(doc: object, where: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse(json.dumps(doc), "traffic.json")
    assert err.value.http_status == 400
    assert err.value.message.startswith(f"traffic.json: {where}:"), err.value.message


def test_versions_pin_parses_sorted_and_lists_the_pins() -> None:
    config = parse(
        json.dumps(
            {
                "models": {
                    "linear": {"versions": [3, 1, 2], "weights": {"1": 50, "3": 50, "4": 0}},
                    "other": {"weights": {"1": 1}},
                }
            }
        )
    )
    assert config.models["linear"].versions == (1, 2, 3)
    assert config.models["other"].versions is None
    assert config.pins() == {"linear": (1, 2, 3)}
    shadowed = parse('{"models": {"m": {"versions": [1, 2], "shadow": {"version": 2, "percent": 5}}}}')
    assert shadowed.pins() == {"m": (1, 2)}


@pytest.mark.parametrize(
    ("versions", "why"),
    [
        ([], "at least one version"),
        ([1, 1], "version 1 is listed twice"),
        ([0], "version 0 is not a positive integer"),
        ([-2], "version -2 is not a positive integer"),
        ([1.0], "version 1.0 is not a positive integer"),
        (["1"], "version '1' is not a positive integer"),
        ([True], "version True is not a positive integer"),
        ([2**63], "is not a positive integer"),
        ("1", "must be a list of versions"),
        ({"1": 1}, "must be a list of versions"),
    ],
)
def test_invalid_versions_name_the_field(versions: object, why: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse(json.dumps({"models": {"m": {"versions": versions}}}), "traffic.json")
    assert err.value.message.startswith("traffic.json: models.m.versions:"), err.value.message
    assert why in err.value.message


@pytest.mark.parametrize(
    ("spec", "where", "why"),
    [
        ({"versions": [1], "weights": {"1": 90, "2": 10}}, "weights", "version 2 has a weight"),
        ({"versions": [2], "weights": {"1": 1, "2": 1}}, "weights", "version 1 has a weight"),
        ({"versions": [1], "shadow": {"version": 2, "percent": 5}}, "shadow", "version 2 is not in versions"),
    ],
)
def test_weights_and_shadow_must_be_pinned(spec: dict[str, object], where: str, why: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse(json.dumps({"models": {"m": spec}}), "traffic.json")
    assert err.value.message.startswith(f"traffic.json: models.m.{where}:"), err.value.message
    assert why in err.value.message


def test_a_zero_weight_needs_no_pin() -> None:
    config = parse('{"models": {"m": {"versions": [2], "weights": {"1": 0, "2": 1}}}}')
    assert config.models["m"].weights == {1: 0, 2: 1}


def test_not_json() -> None:
    with pytest.raises(InvalidArgument, match="not valid JSON"):
        parse("{models")


def test_hash_is_of_the_normalized_config() -> None:
    a = parse(json.dumps(EXAMPLE))
    b = parse(json.dumps(EXAMPLE, indent=4, sort_keys=True))
    c = parse(json.dumps({**EXAMPLE, "generation": "rollout-8"}))
    assert config_hash(a) == config_hash(b) != config_hash(c)
    assert len(config_hash(a)) == 16


def test_hash_includes_the_sorted_pin_and_is_unchanged_without_one() -> None:
    pinned = {"models": {"linear": {"versions": [2, 1]}}}
    same = {"models": {"linear": {"versions": [1, 2]}}}
    other = {"models": {"linear": {"versions": [1]}}}
    assert config_hash(parse(json.dumps(pinned))) == config_hash(parse(json.dumps(same)))
    assert config_hash(parse(json.dumps(pinned))) != config_hash(parse(json.dumps(other)))
    assert normalized(parse(json.dumps(pinned)))["models"]["linear"]["versions"] == [1, 2]
    # no pin: the normalized form (hence the hash) is what it was before pins existed
    plain = parse(json.dumps(EXAMPLE))
    assert "versions" not in normalized(plain)["models"]["linear"]
    before = plain.model_dump(mode="json")
    del before["models"]["linear"]["versions"]
    legacy = hashlib.sha256(json.dumps(before, sort_keys=True, separators=(",", ":")).encode())
    assert config_hash(plain) == legacy.hexdigest()[:16]
    assert config_hash(
        parse(json.dumps({**EXAMPLE, "models": {"linear": {"versions": None}}}))
    ) == config_hash(parse(json.dumps({**EXAMPLE, "models": {"linear": {}}})))


def test_status_shows_the_pin_and_on_apply_hears_every_config() -> None:
    heard: list[dict[str, tuple[int, ...]]] = []
    traffic = Traffic(on_apply=lambda config: heard.append(config.pins()))
    traffic.apply(parse('{"models": {"linear": {"versions": [2, 1]}}}'), "a")
    traffic.apply(parse("{}"), "b")
    assert heard == [{"linear": (1, 2)}, {}]
    traffic.apply(parse('{"models": {"linear": {"versions": [1]}}}'), "c")
    assert traffic.status()["config"]["models"]["linear"]["versions"] == [1]


def _swap(path: Path, text: str) -> None:
    """As a ConfigMap volume: write a new file beside it and rename it over (atomic)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_file_reload_applies_changes_keeps_old_on_error_and_counts_once(tmp_path: Path) -> None:
    path = tmp_path / "traffic.json"
    path.write_text(json.dumps(EXAMPLE))
    traffic = Traffic()
    watched = TrafficFile(path, traffic, lambda: ["linear"])
    watched.load()
    first = traffic.applied
    assert first.config.generation == "rollout-7"
    assert not watched.check()  # unchanged content
    _swap(path, json.dumps({"generation": "g2", "models": {"linear": {"weights": {"2": 1}}}}))
    assert watched.check()
    assert traffic.applied.config.generation == "g2"
    route = traffic.route("linear")
    assert route is not None
    assert route.split is not None
    assert route.split.versions == (2,)
    good = traffic.applied
    _swap(path, '{"models": {"linear": {"weights": {"2": "lots"}}}}')
    assert not watched.check()
    assert not watched.check()  # the same bad content is counted once
    assert traffic.applied is good
    assert traffic.errors_total == 1
    status = traffic.status()
    assert status["hash"] == good.hash
    assert status["generation"] == "g2"
    assert "models.linear.weights" in status["last_error"]["message"]
    path.unlink()
    assert not watched.check()
    assert traffic.errors_total == 2
    assert traffic.applied is good


def test_symlink_swap_is_seen_by_content(tmp_path: Path) -> None:
    """Kubernetes swaps a ..data symlink: the file's path and its mtime can stay the same."""
    for name, gen in (("a", "one"), ("b", "two")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "traffic.json").write_text(json.dumps({"generation": gen}))
        os.utime(tmp_path / name / "traffic.json", (1_000_000, 1_000_000))
    (tmp_path / "..data").symlink_to("a")
    (tmp_path / "traffic.json").symlink_to("..data/traffic.json")
    traffic = Traffic()
    watched = TrafficFile(tmp_path / "traffic.json", traffic, list)
    watched.load()
    (tmp_path / "..data_tmp").symlink_to("b")
    os.replace(tmp_path / "..data_tmp", tmp_path / "..data")
    assert watched.check()
    assert traffic.applied.config.generation == "two"


def test_missing_file_at_start_up_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        TrafficFile(tmp_path / "nope.json", Traffic(), list).load()


def test_optional_file_may_be_missing_then_appears_and_may_disappear(tmp_path: Path) -> None:
    """As a ConfigMap volume mounted optional: true that a controller creates after the pod."""
    path = tmp_path / "traffic.json"
    traffic = Traffic()
    watched = TrafficFile(path, traffic, list, optional=True)
    watched.load()  # no error
    empty = traffic.applied
    assert empty.config.models == {}
    assert not watched.check()
    assert traffic.errors_total == 0
    _swap(path, json.dumps({"generation": "operator-1", "models": {"linear": {"versions": [1]}}}))
    assert watched.check()
    applied = traffic.applied
    assert applied.config.generation == "operator-1"
    path.unlink()  # the ConfigMap was deleted: keep serving as configured, no error
    assert not watched.check()
    assert traffic.applied is applied
    assert traffic.errors_total == 0
    path.write_text(json.dumps({"generation": "operator-1", "models": {"linear": {"versions": [1]}}}))
    assert watched.check()  # the same content again is applied again (a new cycle)
    _swap(path, "{not json")
    assert not watched.check()
    assert traffic.errors_total == 1  # an invalid optional file is still an error


def test_optional_file_invalid_at_start_up_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "traffic.json"
    path.write_text('{"models": {"linear": {"versions": []}}}')
    with pytest.raises(InvalidArgument, match=r"models\.linear\.versions"):
        TrafficFile(path, Traffic(), list, optional=True).load()


def test_compare_results() -> None:
    ref = {"y": np.array([1.0, 2.0, np.nan], np.float32)}
    assert compare(ref, {"y": np.array([1.00001, 2.0, np.nan], np.float32)}, 1e-4, 1e-6) == (
        Result.AGREE,
        pytest.approx(1e-5, rel=0.1),
    )
    assert compare(ref, {"y": np.array([1.1, 2.0, np.nan], np.float32)}, 1e-4, 1e-6)[0] == Result.DISAGREE
    assert compare(ref, {"y": np.array([1.0, 2.0, 3.0], np.float32)}, 1e-4, 1e-6)[0] == Result.DISAGREE
    assert compare(ref, {"y": np.array([1.0, 2.0], np.float32)}, 1, 1)[0] == Result.SHAPE_MISMATCH
    assert compare(ref, {"y": np.array([1.0, 2.0, np.nan])}, 1, 1)[0] == Result.SHAPE_MISMATCH
    assert compare(ref, {"z": ref["y"]}, 1, 1)[0] == Result.SHAPE_MISMATCH
    words = {"s": np.array([b"a", b"b"], object)}
    assert compare(words, {"s": np.array([b"a", b"b"], object)}, 0, 0)[0] == Result.AGREE
    assert compare(words, {"s": np.array([b"a", b"c"], object)}, 0, 0)[0] == Result.DISAGREE
    # asymmetric: the primary is the reference b of |a - b| <= atol + rtol * |b|
    big, small = {"y": np.array([100.0])}, {"y": np.array([90.0])}
    assert compare(big, small, 0.1, 0)[0] == Result.AGREE
    assert compare(small, big, 0.1, 0)[0] == Result.DISAGREE


class _Recorder:
    def __init__(self) -> None:
        self.results: list[tuple[str, str, str]] = []

    def shadow_result(self, model: str, version: str, result: str, seconds: float, diff: float) -> None:
        self.results.append((model, version, result))


def test_shadow_worker_drops_when_full_closed_or_too_big() -> None:
    import threading

    from service.traffic import ShadowJob, ShadowWorker

    gate = threading.Event()

    def run(servable: object, signature: str, inputs: object) -> dict[str, np.ndarray]:
        gate.wait(10)
        return {"y": np.array([1.0])}

    recorder = _Recorder()
    worker = ShadowWorker(run, recorder, capacity=1)  # type: ignore[arg-type]

    class Candidate:
        version = 2

    small = ShadowJob("m", Candidate(), "s", {"x": np.zeros(3)}, {"y": np.array([1.0])}, 1e-4, 1e-6)  # type: ignore[arg-type]
    big = ShadowJob("m", Candidate(), "s", {"x": np.zeros(1 << 18)}, {"y": np.array([1.0])}, 1e-4, 1e-6)  # type: ignore[arg-type]
    assert not worker.submit(big)
    assert worker.submit(small)  # taken by the thread, which now waits on the gate
    deadline = threading.Event()
    while worker.pending:
        deadline.wait(0.01)
    assert worker.submit(small)  # queued
    assert not worker.submit(small)  # full
    worker.close()  # drops the queued one; never waits for the running one
    assert not worker.submit(small)
    assert [r for _, _, r in recorder.results].count("dropped") == 4
    gate.set()
