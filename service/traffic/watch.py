"""Reading ``--traffic_config_file`` at start-up and re-reading it when its content changes.

As ``--model_config_file`` (``service.server``), polled every
``traffic_config_file_poll_wait_seconds``; but a change is found by the sha256 of the bytes read,
not by modification time: a Kubernetes ConfigMap volume swaps a symlink, which leaves the mtime of
the path as it was. A missing or invalid file at start-up is an error (the server does not start),
except that an *optional* file (``--traffic_config_file_optional``) may be missing: there is no
traffic config until it appears, and a file that disappears later leaves the applied config as
it was, without an error. Later, a file that cannot be read or validated keeps the applied config
and is counted once per distinct content (``modelship_traffic_config_errors_total``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Iterable
from pathlib import Path

from service.errors import ServingError
from service.traffic.config import parse
from service.traffic.routes import Traffic

__all__ = ["TrafficFile"]

log = logging.getLogger(__name__)
_ABSENT = b"absent"  # digest markers: never the sha256 of any content
_UNREADABLE = b"unreadable"


class TrafficFile:
    def __init__(
        self,
        path: Path,
        traffic: Traffic,
        known_models: Callable[[], Iterable[str]],
        optional: bool = False,
    ) -> None:
        self.path = path
        self.traffic = traffic
        self.known_models = known_models
        self.optional = optional
        self._digest = b""

    def load(self) -> None:
        """The start-up read: raises OSError (unless optional and missing) or
        :class:`ServingError` (InvalidArgument)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            if not self.optional:
                raise
            self._digest = _ABSENT
            log.info(
                "traffic config file %s is absent (optional): no traffic config until it appears", self.path
            )
            return
        config = parse(data, str(self.path))
        self._digest = hashlib.sha256(data).digest()
        self.traffic.apply(config, str(self.path), self.known_models())

    def check(self) -> bool:
        """Apply the file if its content changed and is valid; True if a new config was applied."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            if self.optional:
                if self._digest != _ABSENT:
                    self._digest = _ABSENT
                    log.warning("traffic config file %s disappeared; keeping the applied config", self.path)
                return False
            return self._unreadable(f"cannot read {self.path}: no such file")
        except OSError as exc:
            return self._unreadable(f"cannot read {self.path}: {exc}")
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

    def _unreadable(self, message: str) -> bool:
        """Count a file that cannot be read once, until it changes."""
        if self._digest != _UNREADABLE:
            self._digest = _UNREADABLE
            self.traffic.failed(message)
        return False

    async def watch(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.check()
