"""Write a single-layer container image as a `docker save`-format tar, without Docker.

The cluster's containerd imports it with `ctr -n k8s.io images import`. Used for the
locally built pause image and for small test images made of static binaries, so the
cluster never needs a registry or a running Docker daemon.

Example:
    python3 image_archive.py --name registry.k8s.io/pause:3.10 \
        --file /tmp/pause:/pause --entrypoint /pause --out pause.tar
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

# Fixed mtime so the same inputs always give the same image digest.
_EPOCH = 0


@dataclass(frozen=True)
class Entry:
    """One path in the image's only layer: a copied file or a symlink."""

    dest: str
    source: Path | None = None
    link_target: str | None = None
    mode: int = 0o755


def _parse_file(spec: str) -> Entry:
    src, _, dest = spec.partition(":")
    if not dest.startswith("/"):
        raise argparse.ArgumentTypeError(f"--file wants SRC:/DEST, got {spec!r}")
    return Entry(dest=dest, source=Path(src))


def _parse_link(spec: str) -> Entry:
    dest, _, target = spec.partition(":")
    if not dest.startswith("/") or not target:
        raise argparse.ArgumentTypeError(f"--symlink wants /PATH:TARGET, got {spec!r}")
    return Entry(dest=dest, link_target=target)


def _dir_infos(entries: list[Entry]) -> list[tarfile.TarInfo]:
    dirs: set[str] = {"tmp"}
    for entry in entries:
        parts = entry.dest.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]))
    infos = []
    for name in sorted(dirs):
        info = tarfile.TarInfo(name)
        info.type = tarfile.DIRTYPE
        info.mode = 0o1777 if name == "tmp" else 0o755
        info.mtime = _EPOCH
        infos.append(info)
    return infos


def layer_tar(entries: list[Entry]) -> bytes:
    """Return an uncompressed layer tar holding the entries and their parent directories."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info in _dir_infos(entries):
            tar.addfile(info)
        for entry in sorted(entries, key=lambda e: e.dest):
            info = tarfile.TarInfo(entry.dest.strip("/"))
            info.mtime = _EPOCH
            if entry.link_target is not None:
                info.type = tarfile.SYMTYPE
                info.linkname = entry.link_target
                info.mode = 0o777
                tar.addfile(info)
                continue
            assert entry.source is not None
            data = entry.source.read_bytes()
            info.size = len(data)
            info.mode = entry.mode
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def image_config(diff_id: str, entrypoint: list[str], cmd: list[str], env: list[str]) -> bytes:
    """Return the image config JSON (OCI/Docker v1 image config)."""
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {"Entrypoint": entrypoint or None, "Cmd": cmd or None, "Env": env},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "image_archive.py"}],
    }
    return json.dumps(config, sort_keys=True, separators=(",", ":")).encode()


def write_archive(out: Path, name: str, entries: list[Entry], entrypoint: list[str], cmd: list[str]) -> str:
    """Write the docker-archive tar to `out` and return the image config digest."""
    layer = layer_tar(entries)
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = image_config(diff_id, entrypoint, cmd, ["PATH=/bin:/usr/bin:/sbin:/usr/sbin"])
    config_hex = hashlib.sha256(config).hexdigest()
    layer_name = f"{diff_id[7:]}/layer.tar"
    manifest = [{"Config": f"{config_hex}.json", "RepoTags": [name], "Layers": [layer_name]}]
    members = {
        f"{config_hex}.json": config,
        layer_name: layer,
        "manifest.json": json.dumps(manifest).encode(),
    }
    tmp = out.with_name(out.name + ".tmp")
    with tarfile.open(tmp, mode="w") as tar:
        for member, data in members.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            info.mtime = _EPOCH
            tar.addfile(info, io.BytesIO(data))
    tmp.replace(out)
    return "sha256:" + config_hex


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="image reference, e.g. registry.k8s.io/pause:3.10")
    parser.add_argument("--out", required=True, type=Path, help="tar file to write")
    parser.add_argument(
        "--file",
        dest="files",
        action="append",
        default=[],
        type=_parse_file,
        help="SRC:/DEST copy a host file into the image (mode 0755); repeatable",
    )
    parser.add_argument(
        "--symlink",
        dest="links",
        action="append",
        default=[],
        type=_parse_link,
        help="/PATH:TARGET add a symlink; repeatable",
    )
    parser.add_argument("--entrypoint", action="append", default=[], help="entrypoint argv word; repeatable")
    parser.add_argument("--cmd", action="append", default=[], help="default command argv word; repeatable")
    args = parser.parse_args(argv)
    digest = write_archive(args.out, args.name, [*args.files, *args.links], args.entrypoint, args.cmd)
    print(digest)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
