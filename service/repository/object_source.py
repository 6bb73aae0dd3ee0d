"""A model base path in object storage (``s3://``, ``gs://``): listed per poll, downloaded, verified.

Polling costs one listing per model per poll (one request per 1,000 objects) of the whole base
path ``<prefix>/``; keys group into versions by their first segment, which must be all digits, so
``linear/1/`` never matches ``linear/10/`` and ``linear/.tmp-3/`` is ignored. A version's listing
(keys, sizes, ETags or GCS generations) is its fingerprint: the poller loads nothing twice and
sees any change. ETags are only compared, never trusted as content hashes.

``manifest.json`` is the commit marker: exporters upload it last. A version holding one is whole
and loads at once; once any version of a model has one, versions without one are uploads in
progress and are not offered. A model none of whose versions has a manifest (a third-party
SavedModel) is offered as the file system is: it loads after its listing has settled.

Downloads go into the :class:`~service.repository.cache.ModelCache`, files in parallel, each one
hashed as it streams and checked against the manifest's sha256 before the directory is renamed
into place; a missing, extra or changed file refuses the version (``DATA_LOSS``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from model import manifest as manifest_file
from model.storage import ObjectURL, StorageError, first_line, open_store
from service.errors import DataLoss, ServingError
from service.repository.cache import ModelCache
from service.repository.source import VERSION_LIMIT, Fingerprint, SourceUnavailable, VersionRef

log = logging.getLogger("service.repository")

LIST_PAGE = 1000  # keys per listing request (S3 and GCS)
MANIFEST = manifest_file.MANIFEST_NAME


@dataclass
class SourceCounters:
    """Requests this source has sent, by operation (``list``, ``get``), and failed ones."""

    requests: dict[str, int] = field(default_factory=lambda: {"list": 0, "get": 0})
    failures: int = 0


@dataclass(frozen=True)
class _Object:
    rel: str  # path below the version's prefix
    size: int
    tag: str  # ETag or generation: compared, never trusted as a hash


class ObjectStoreSource:
    """The versions of one model under ``url``, cached under ``cache``."""

    def __init__(self, url: ObjectURL, model: str, cache: ModelCache, workers: int = 8) -> None:
        self.url = url
        self.model = model
        self.cache = cache
        self.counters = SourceCounters()
        self._stores: dict[str, Any] = {}
        self._workers = workers
        self._listing: dict[int, tuple[_Object, ...]] = {}
        self._dirs: dict[int, Path] = {}

    def __str__(self) -> str:
        return str(self.url)

    # -- Source --------------------------------------------------------------------------------

    def versions(self) -> dict[int, VersionRef]:
        listing = self._list()
        committed = {v for v, objs in listing.items() if any(o.rel == MANIFEST for o in objs)}
        offered = committed or set(listing)
        self._listing = {v: listing[v] for v in offered}
        return {
            v: VersionRef(v, str(self.url.child(str(v))), committed=v in committed if committed else None)
            for v in offered
        }

    def fingerprint(self, ref: VersionRef) -> Fingerprint:
        return tuple((o.rel, o.size, o.tag) for o in self._listing.get(ref.version, ()))

    def _final_dir(self, version: int) -> Path:
        """Where the version as listed now lives in the cache (its name hashes the listing)."""
        listing = tuple((o.rel, o.size, o.tag) for o in self._listing.get(version, ()))
        digest = hashlib.sha256(repr(listing).encode()).hexdigest()[:16]
        return self.cache.version_dir(self.model, version, digest)

    def quiet_seconds(self, ref: VersionRef) -> float | None:
        """Unknown for a listing: a version without its manifest settles first."""
        return None

    def local_path(self, ref: VersionRef) -> Path:
        objects = self._listing.get(ref.version, ())
        final = self._final_dir(ref.version)
        if final.is_dir():  # downloaded before (this run or the last): whole, since renamed
            self._dirs[ref.version] = final
            return final
        files = [o for o in objects if o.rel != MANIFEST]
        expected: dict[str, str] | None = None
        raw_manifest: bytes | None = None
        if ref.committed:
            raw_manifest = self._get(self.url.key(str(ref.version), MANIFEST))
            expected = self._check_listing(ref.version, raw_manifest, files)
        staging = self.cache.staging(self.model, ref.version, sum(o.size for o in objects))
        try:
            self._download(ref.version, files, staging, expected)
            if raw_manifest is not None:
                (staging / MANIFEST).write_bytes(raw_manifest)
            staging.chmod(0o755)
            self._dirs[ref.version] = self.cache.commit(staging, final)
        finally:
            if staging.exists():
                self.cache.discard(staging)
        return final

    def retain(self, keep: set[int]) -> None:
        kept = {path for version, path in self._dirs.items() if version in keep}
        kept |= {self._final_dir(v) for v in keep if v in self._listing}  # e.g. reused after a restart
        self._dirs = {v: p for v, p in self._dirs.items() if v in keep}
        for path in self.cache.prune(self.model, kept):
            log.info("model cache: removed %s (no longer served)", path)

    # -- requests ------------------------------------------------------------------------------

    def _call(self, op: str, fn: Callable[[], Any]) -> Any:
        self.counters.requests[op] += 1
        try:
            return fn()
        except ServingError:
            raise
        except Exception as exc:  # noqa: BLE001 - obstore raises its own hierarchy and OSError
            self.counters.failures += 1
            raise SourceUnavailable(f"{self.url}: {op} failed: {first_line(exc)}") from None

    def _client(self, purpose: str = "metadata") -> Any:
        """A store for listings and manifests (30 s per request) or for file downloads (1 h)."""
        if purpose not in self._stores:
            try:
                self._stores[purpose] = open_store(self.url, timeout=30 if purpose == "metadata" else 3600)
            except StorageError as exc:
                raise SourceUnavailable(str(exc)) from None
        return self._stores[purpose]

    def _list(self) -> dict[int, tuple[_Object, ...]]:
        import obstore

        prefix = self.url.key() + "/" if self.url.prefix else ""
        store = self._client()
        found: dict[int, list[_Object]] = {}

        def pages() -> list[Any]:
            return list(obstore.list(store, prefix=prefix or None, chunk_size=LIST_PAGE))

        batches = self._call("list", pages)
        self.counters.requests["list"] += max(0, (sum(len(b) for b in batches) - 1) // LIST_PAGE)
        for batch in batches:
            for meta in batch:
                rel = str(meta["path"])[len(prefix) :]
                head, _, rest = rel.partition("/")
                if not (head.isdigit() and rest) or rest.endswith("/") or int(head) >= VERSION_LIMIT:
                    continue  # not a version, or a zero-byte "directory" marker
                tag = meta.get("e_tag") or meta.get("version") or str(meta.get("last_modified"))
                found.setdefault(int(head), []).append(_Object(rest, int(meta["size"]), str(tag)))
        return {v: tuple(sorted(objs, key=lambda o: o.rel)) for v, objs in found.items()}

    def _get(self, key: str) -> bytes:
        import obstore

        store = self._client()
        return bytes(self._call("get", lambda: obstore.get(store, key).bytes()))

    def _check_listing(self, version: int, raw: bytes, files: list[_Object]) -> dict[str, str]:
        where = f"version {version} of {self.model} at {self.url.child(str(version))}"
        try:
            expected = manifest_file.parse(raw)["files"]
        except manifest_file.ManifestError as exc:
            raise DataLoss(f"refusing {where}: {exc}") from None
        listed = {o.rel for o in files}
        missing = sorted(set(expected) - listed)
        if missing:
            raise DataLoss(f"refusing {where}: file {missing[0]} listed in the manifest is not in the bucket")
        extra = sorted(listed - set(expected))
        if extra:
            raise DataLoss(f"refusing {where}: objects not listed in the manifest: {', '.join(extra[:5])}")
        return dict(expected)

    def _download(
        self, version: int, files: list[_Object], staging: Path, expected: dict[str, str] | None
    ) -> None:
        for obj in files:
            _safe_relative(obj.rel)
        with ThreadPoolExecutor(max_workers=max(1, min(self._workers, len(files)))) as pool:
            digests = dict(
                zip(files, pool.map(lambda o: self._fetch(version, o, staging), files), strict=True)
            )
        if expected is None:
            return
        for obj, digest in sorted(digests.items(), key=lambda item: item[0].rel):
            if digest != expected[obj.rel]:
                raise DataLoss(
                    f"refusing version {version} of {self.model}: sha256 mismatch for {obj.rel}: "
                    f"expected {expected[obj.rel]}, found {digest}"
                )

    def _fetch(self, version: int, obj: _Object, staging: Path) -> str:
        import obstore

        store = self._client("data")
        key = self.url.key(str(version), obj.rel)
        target = staging / obj.rel
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()

        def stream() -> None:
            with target.open("wb") as out:
                for chunk in obstore.get(store, key).stream(min_chunk_size=1 << 20):
                    view = memoryview(chunk)
                    digest.update(view)
                    out.write(view)

        self._call("get", stream)
        return digest.hexdigest()


def _safe_relative(rel: str) -> None:
    parts = PurePosixPath(rel).parts
    if rel.startswith("/") or any(p in ("..", ".", "") for p in parts):
        raise DataLoss(f"refusing object {rel!r}: not a plain relative path")
