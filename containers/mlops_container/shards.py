"""Dataset shards: a dataset root (manifest, classes, images) packed into tar files.

Downloading thousands of small images one S3 object at a time dominates a processing step's
time, so imported datasets also carry ``shards/images-NNN.tar``: the same files the manifest's
``source-ref`` entries point to, packed. A processing job that receives the shards folder
unpacks it into a working dataset root and reads it as usual.
"""

from __future__ import annotations

import tarfile
import tempfile
from pathlib import Path

from . import contract
from .errors import UserError


def materialize(input_dir: Path) -> Path:
    """The dataset root to read: ``input_dir`` itself, or a folder the shards in it unpack into."""
    if (input_dir / contract.MANIFEST_FILE).exists():
        return input_dir
    shards = sorted(input_dir.glob("*.tar")) + sorted(input_dir.glob("shards/*.tar"))
    if not shards:
        return input_dir
    root = Path(tempfile.mkdtemp(prefix="dataset-"))
    for shard in shards:
        with tarfile.open(shard) as archive:
            archive.extractall(root, members=_safe_members(archive, shard))
    return root


def _safe_members(archive: tarfile.TarFile, shard: Path) -> list[tarfile.TarInfo]:
    """Regular files and folders with relative paths only (Python 3.11.2 has no filter=)."""
    members = []
    for member in archive.getmembers():
        path = Path(member.name)
        if path.is_absolute() or ".." in path.parts or not (member.isfile() or member.isdir()):
            raise UserError(f"unsafe entry {member.name!r} in shard {shard.name}")
        members.append(member)
    return members
