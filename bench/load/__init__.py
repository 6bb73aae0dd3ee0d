"""Load generators, each run as a separate process: wrk for REST, ghz (or a Python client) for gRPC."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class LoadResult:
    """One measured point, from the load generator's point of view."""

    ok: int  # successful responses (HTTP status < 400 as wrk counts them, gRPC OK)
    errors: dict[str, int] = field(default_factory=dict)  # kind -> count (HTTP >= 400, timeouts, gRPC codes)
    duration_s: float = 0.0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    mean_ms: float = 0.0
    max_ms: float = 0.0
    loadgen_cpu_s: float = 0.0

    @property
    def rps(self) -> float:
        """Successful responses per second."""
        return self.ok / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rps": self.rps, "error_count": self.error_count}
