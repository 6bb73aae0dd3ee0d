"""The issue-13 targets the benchmark reports (informational): computed from the run's points."""

from __future__ import annotations

from bench.report import Point, checks


def _point(target: str, transport: str, conns: int, rps: float, cpu: float, **extra: float) -> Point:
    return Point(
        target=target, name=target, transport=transport, connections=conns, rps=rps, server_cpu=cpu, **extra
    )


def test_v2_cost_ceiling_ratios_and_grpc_batch_size_are_reported() -> None:
    points = [
        _point("modelship-rest", "REST", 32, 10_000, 0.5, x_ceiling=0.45),  # 50 µs per request
        _point("modelship-v2", "REST", 32, 9_000, 0.53),  # 59 µs: 1.18x
        _point("modelship-grpc", "gRPC", 32, 3_000, 0.9, x_ceiling=0.62),
        _point("bare-grpc-h2", "gRPC", 32, 10_000, 0.9),
        _point("modelship-grpc-h2", "gRPC", 32, 5_500, 0.9, x_ceiling=1.1),
        _point("modelship-grpc-batching", "gRPC", 64, 2_000, 0.9, mean_batch=3.5),
        _point("modelship-grpc-h2-batching", "gRPC", 64, 4_000, 0.9, mean_batch=21.3),
    ]
    by_text = {c.text: c for c in checks(points)}
    assert by_text["REST v1 c=32: >= 0.6x bare ASGI"].met is False
    v2 = by_text["V2 infer c=32: server CPU per request <= 1.2x REST v1's"]
    assert v2.met is True
    assert v2.detail.startswith("1.18x: 59 vs 50 µs")
    assert by_text["gRPC c=32: >= 0.9x bare grpc.aio"].met is False
    h2 = by_text["gRPC --grpc_server=modelship c=32: >= 0.9x bare grpc.aio"]
    assert (h2.met, h2.detail) == (True, "1.10x")
    own = by_text["gRPC --grpc_server=modelship c=32: >= 0.9x its own bare h2 server"]
    assert (own.met, own.detail) == (False, "0.55x")
    assert by_text["gRPC+batching c=64: mean batch >= 4 (meant for --model heavy)"].met is False
    batched = by_text["gRPC+batching --grpc_server=modelship c=64: mean batch >= 4 (meant for --model heavy)"]
    assert batched.met is True
    assert batched.detail == "21.3 rows per model call"


def test_a_v2_run_dearer_than_its_bound_is_not_met_and_absent_targets_are_left_out() -> None:
    points = [
        _point("modelship-rest", "REST", 32, 10_000, 0.5),
        _point("modelship-v2", "REST", 32, 5_000, 0.5),
    ]
    texts = {c.text: c for c in checks(points)}
    assert texts["V2 infer c=32: server CPU per request <= 1.2x REST v1's"].met is False  # 2x
    assert not any(t.startswith(("gRPC", "REST v1")) for t in texts)


def test_batching_on_beats_off_is_checked_on_both_grpc_servers() -> None:
    points = [
        _point("modelship-grpc", "gRPC", 256, 657, 1.0),
        _point("modelship-grpc-batching", "gRPC", 256, 608, 1.0),
        _point("modelship-grpc-h2", "gRPC", 256, 1_318, 1.0),
        _point("modelship-grpc-h2-batching", "gRPC", 256, 3_760, 1.0),
    ]
    texts = {c.text: c for c in checks(points)}
    assert texts["gRPC c=256: batching on > off"].met is False
    h2 = texts["gRPC --grpc_server=modelship c=256: batching on > off"]
    assert (h2.met, h2.detail) == (True, "3,760 vs 1,318 req/s")
