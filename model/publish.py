"""Publish an exported version to object storage: every file in parallel, ``manifest.json`` last.

Object stores have no directory rename, so a version becomes visible file by file. The manifest
(which holds every other file's sha256) is the commit marker: it is uploaded only after all the
other files are, so a server that sees it can download and verify the whole version, and one that
polls in between sees an uncommitted version and waits.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from model.errors import ExportError
from model.manifest import MANIFEST_NAME
from model.storage import ObjectURL, StorageError, first_line, open_store


def existing_versions(model_url: ObjectURL, store: object | None = None) -> list[int]:
    """Integer version prefixes under ``model_url`` (one delimiter listing)."""
    import obstore

    store = store if store is not None else open_store(model_url)
    prefix = model_url.key() + "/" if model_url.prefix else ""
    try:
        listing = obstore.list_with_delimiter(store, prefix or None)  # type: ignore[arg-type]
    except Exception as exc:  # noqa: BLE001 - obstore's own error hierarchy
        raise ExportError(f"cannot list {model_url}: {first_line(exc)}") from None
    names = (p[len(prefix) :].strip("/") for p in listing["common_prefixes"])
    return sorted(int(n) for n in names if n.isdigit())


def upload_version(
    version_dir: Path, version_url: ObjectURL, workers: int = 8, env: Mapping[str, str] | None = None
) -> list[str]:
    """Upload ``version_dir`` below ``version_url``, the manifest last; return the keys written.

    ``env`` replaces the process environment as the source of endpoints and credentials.
    """
    import obstore

    try:
        store = open_store(version_url, env, timeout=3600)
    except StorageError as exc:
        raise ExportError(str(exc)) from None
    files = sorted(p for p in version_dir.rglob("*") if p.is_file())
    manifest = version_dir / MANIFEST_NAME
    if manifest not in files:
        raise ExportError(f"{version_dir} has no {MANIFEST_NAME}: refusing to publish an uncommitted version")
    payload = [p for p in files if p != manifest]

    def put(path: Path) -> str:
        key = version_url.key(path.relative_to(version_dir).as_posix())
        try:
            obstore.put(store, key, path)
        except Exception as exc:  # noqa: BLE001 - obstore's own error hierarchy
            raise ExportError(f"upload of {key} to {version_url} failed: {first_line(exc)}") from None
        return key

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(payload)))) as pool:
        keys = list(pool.map(put, payload))
    keys.append(put(manifest))  # the commit marker, once everything it lists is there
    return keys
