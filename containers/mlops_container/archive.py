"""Safe extraction of ``model.tar.gz`` (the tarred contents of /opt/ml/model)."""

from __future__ import annotations

import tarfile
from pathlib import Path, PurePosixPath

from . import contract
from .errors import UserError


def extract_model_archive(archive: Path, target: Path) -> Path:
    """Extract regular files and dirs only; reject absolute paths, ``..`` and links."""
    target.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                parts = PurePosixPath(member.name).parts
                if member.name.startswith("/") or ".." in parts:
                    raise UserError(f"{archive} holds an unsafe path {member.name!r}")
                if not (member.isfile() or member.isdir()):
                    raise UserError(f"{archive} holds a link or device {member.name!r}")
            # Members are checked above; Debian's Python 3.11.2 has no extractall(filter=).
            tar.extractall(target, members=members)
    except tarfile.TarError as error:
        raise UserError(f"{archive} is not a readable tar.gz: {error}") from error
    return target


def model_files_dir(model_dir: Path, scratch: Path) -> Path:
    """The directory holding model.pt + model.json: ``model_dir`` itself or its extracted archive."""
    if (model_dir / contract.MODEL_META_FILE).is_file():
        return model_dir
    archive = model_dir / contract.MODEL_ARCHIVE_FILE
    if archive.is_file():
        return extract_model_archive(archive, scratch)
    raise UserError(
        f"{model_dir} holds neither {contract.MODEL_META_FILE} nor "
        f"{contract.MODEL_ARCHIVE_FILE}; pass the training step's model artifact"
    )
