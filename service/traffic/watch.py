"""Reading ``--traffic_config_file`` at start-up and re-reading it when its content changes.

As ``--model_config_file`` (``service.server``), polled every
``traffic_config_file_poll_wait_seconds``; but a change is found by the sha256 of the bytes read,
not by modification time: a Kubernetes ConfigMap volume swaps a symlink, which leaves the mtime of
the path as it was. A missing or invalid file at start-up is an error (the server does not start);
later, a file that cannot be read or validated keeps the applied config and is counted once per
distinct content (``modelship_traffic_config_errors_total``).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Iterable
from pathlib import Path

from service.errors import ServingError
from service.traffic.config import parse
from service.traffic.routes import Traffic

__all__ = ["TrafficFile"]


class TrafficFile:
    def __init__(self, path: Path, traffic: Traffic, known_models: Callable[[], Iterable[str]]) -> None:
        self.path = path
        self.traffic = traffic
        self.known_models = known_models
        self._digest = b""

    def load(self) -> None:
        """The start-up read: raises OSError or :class:`ServingError` (InvalidArgument)."""
        data = self.path.read_bytes()
        config = parse(data, str(self.path))
        self._digest = hashlib.sha256(data).digest()
        self.traffic.apply(config, str(self.path), self.known_models())

    def check(self) -> bool:
        """Apply the file if its content changed and is valid; True if a new config was applied."""
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            if self._digest != b"unreadable":
                self._digest = b"unreadable"
                self.traffic.failed(f"cannot read {self.path}: {exc}")
            return False
        digest = hashlib.sha256(data).digest()
        if digest == self._digest:
            return False
        self._digest = digest
        try:
            config = parse(data, str(self.path))
        except ServingError as exc:
            self.traffic.failed(exc.message)
            return False
        self.traffic.apply(config, str(self.path), self.known_models())
        return True

    async def watch(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.check()
