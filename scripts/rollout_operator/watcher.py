"""List-then-watch loop for one kind of object, that survives watch expiry and API errors.

The official client's ``Watch`` retries a 410 once and then raises; here the loop owns recovery:

* list, remember the list's resourceVersion, hand every item to ``on_list``;
* watch from that resourceVersion with bookmarks, advancing it with every event (bookmarks too);
* an ``ERROR`` event or an ``ApiException`` with 410 Gone (the version was compacted away) means
  re-list; the server closing the stream (``timeout_seconds``) means re-watch from the last version;
* any other failure (API server restarting, network, 5xx) backs off exponentially with jitter and
  resumes from the last version, falling back to a re-list if that is gone.

Correctness never depends on seeing every event: reconciles are level-triggered and a periodic
resync re-queues every rollout anyway; the watch only makes reactions fast.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from kubernetes.client.exceptions import ApiException

log = logging.getLogger("modelship.rollout.watch")
Obj = dict[str, Any]


class Source(Protocol):
    def list(self) -> tuple[list[Obj], str]:
        """All objects and the list's resourceVersion."""
        ...

    def watch(self, resource_version: str, timeout_seconds: int) -> Iterator[Obj]:
        """Raw watch events (``{"type": ..., "object": ...}``) from ``resource_version``."""
        ...


class Backoff:
    def __init__(self, base: float = 0.5, cap: float = 30.0, rng: random.Random | None = None) -> None:
        self.base, self.cap, self.n = base, cap, 0
        self.rng = rng or random.Random()

    def next(self) -> float:
        delay = float(min(self.cap, self.base * 2.0**self.n))
        self.n += 1
        return delay * (0.5 + self.rng.random() / 2)

    def reset(self) -> None:
        self.n = 0


class Watcher:
    def __init__(
        self,
        name: str,
        source: Source,
        on_event: Callable[[str, Obj], None],
        on_list: Callable[[list[Obj]], None],
        stop: threading.Event,
        on_restart: Callable[[str], None] | None = None,
        timeout_seconds: int = 290,
        backoff: Backoff | None = None,
        sleep: Callable[[float], Any] | None = None,
    ) -> None:
        self.name, self.source, self.on_event, self.on_list = name, source, on_event, on_list
        self.stop, self.on_restart, self.timeout_seconds = (
            stop,
            on_restart or (lambda reason: None),
            timeout_seconds,
        )
        self.backoff = backoff or Backoff()
        self.sleep = sleep or stop.wait
        self.resource_version: str | None = None
        self.synced = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.step()

    def step(self) -> None:
        """One list-or-watch round; every exception is handled here."""
        try:
            if self.resource_version is None:
                items, self.resource_version = self.source.list()
                self.on_list(items)
                self.synced.set()
            for event in self.source.watch(self.resource_version, self.timeout_seconds):
                if self.stop.is_set():
                    return
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    code = obj.get("code")
                    if code == 410:
                        log.info(
                            "%s watch expired (410 Gone: %s); re-listing", self.name, obj.get("message", "")
                        )
                        self.on_restart("expired")
                        self.resource_version = None
                        return
                    raise RuntimeError(f"watch error {code}: {obj.get('message', obj)}")
                rv = (obj.get("metadata") or {}).get("resourceVersion")
                if rv:
                    self.resource_version = str(rv)
                if kind != "BOOKMARK":
                    self.on_event(str(kind), obj)
            self.backoff.reset()  # the server ended the stream normally: watch again from the last version
        except ApiException as exc:
            if exc.status == 410:
                log.info("%s watch expired (410 Gone); re-listing", self.name)
                self.on_restart("expired")
                self.resource_version = None
                return
            self._failed(f"API error {exc.status}: {exc.reason}")
        except Exception as exc:  # noqa: BLE001 - network errors, API server restarts, bad JSON: back off and resume
            self._failed(f"{type(exc).__name__}: {exc}")

    def _failed(self, why: str) -> None:
        delay = self.backoff.next()
        log.warning("%s watch failed (%s); retrying in %.1fs", self.name, why, delay)
        self.on_restart("error")
        if self.backoff.n > 5:
            self.resource_version = None  # after repeated failures start over from a fresh list
        self.sleep(delay)
