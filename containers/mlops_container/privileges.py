"""Run the job's code as an unprivileged user, while the folders SageMaker mounts stay writable.

SageMaker starts the container as root and mounts ``/opt/ml/...`` folders owned by root (on the
cloud) or by whoever runs the SDK (local mode, which mounts host temp folders). A process that
starts as another user cannot write its model, outputs or failure reason into them. So the image
starts as root, and each entry point, before reading any input, hands the writable folders to
the unprivileged user and drops root for good:

- to the owner of the mounted folders when that is not root (local mode run by a user: the files
  the job writes stay theirs, and the SDK can clean them up);
- else to the image's own user (``$MLOPS_RUN_AS``, ``mlops`` in the Dockerfile).

Outside the image (``$MLOPS_RUN_AS`` unset, e.g. unit tests) or when already unprivileged
(``docker run --user``) nothing changes.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterable
from pathlib import Path

from . import contract


def _mount_points(mountinfo: Path = Path("/proc/self/mountinfo")) -> dict[Path, bool]:
    """Mount point -> writable, from the kernel's table (field 5 the point, 6 its options)."""
    found: dict[Path, bool] = {}
    try:
        lines = mountinfo.read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        fields = line.split()
        if len(fields) > 5:
            point = Path(fields[4].replace("\\040", " "))
            found[point] = "rw" in fields[5].split(",")
    return found


def _under(path: Path, roots: Iterable[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def _target_user(
    mounts: dict[Path, bool], roots: list[Path], fallback: str
) -> tuple[int, int, str]:
    """(uid, gid, home) to run as: a non-root owner of a writable mount, else ``fallback``."""
    for point, writable in sorted(mounts.items()):
        if writable and _under(point, roots) and point.exists():
            stat = point.stat()
            if stat.st_uid != 0:
                try:
                    home = pwd.getpwuid(stat.st_uid).pw_dir
                except KeyError:
                    home = "/tmp"
                return stat.st_uid, stat.st_gid, home
    user = pwd.getpwnam(fallback)
    return user.pw_uid, user.pw_gid, user.pw_dir


def hand_over(
    roots: list[Path], skip: list[Path], read_only: list[Path], uid: int, gid: int
) -> int:
    """Give root-owned folders and files under ``roots`` to uid:gid; returns how many changed.

    ``skip`` (the training data channels, possibly large and only read) and read-only mounts are
    not walked.
    """
    changed = 0
    for root in roots:
        if not root.exists() or _under(root, read_only):
            continue
        for folder, dirs, files in os.walk(root):
            here = Path(folder)
            dirs[:] = [d for d in dirs if not _under(here / d, [*skip, *read_only])]
            for path in [here, *(here / name for name in files)]:
                # A file can be a mount of its own (``docker run -v file:/data/x:ro``).
                if _under(path, read_only):
                    continue
                if not path.is_symlink() and path.lstat().st_uid == 0:
                    os.chown(path, uid, gid)
                    changed += 1
    return changed


def _job_folders() -> list[Path]:
    """Where jobs write: the base dir, the checkpoint dir, and the folder under which commands
    started by ``docker run`` get their paths mounted (``/data``: the importer's ``--output``,
    ``data validate``'s report)."""
    return [contract.base_dir(), contract.checkpoint_dir(), Path(contract.COMMAND_MOUNT_DIR)]


def open_for_reading(roots: list[Path], read_only: list[Path]) -> int:
    """Let any user read root-owned data under ``roots`` (folders: list and enter; files: read).

    Local mode downloads a training channel into a private temp folder (mode 0700) and mounts it;
    the channel's data is only read, so it keeps its owner and gains read access instead.
    """
    changed = 0
    for root in roots:
        if not root.exists() or _under(root, read_only):
            continue
        for folder, _dirs, files in os.walk(root):
            here = Path(folder)
            for path, bits in [(here, 0o005), *((here / name, 0o004) for name in files)]:
                if _under(path, read_only):
                    continue
                info = path.lstat()
                if not path.is_symlink() and info.st_uid == 0 and info.st_mode & bits != bits:
                    os.chmod(path, (info.st_mode | bits) & 0o7777)
                    changed += 1
    return changed


def drop_root() -> None:
    """Hand the writable job folders to the job's user and continue as that user."""
    run_as = os.environ.get(contract.RUN_AS_ENV, "")
    if not run_as or os.geteuid() != 0:
        return
    contract.base_dir().mkdir(parents=True, exist_ok=True)
    mounts = _mount_points()
    roots = _job_folders()
    read_only = [point for point, writable in mounts.items() if not writable]
    uid, gid, home = _target_user(mounts, roots, run_as)
    channels = contract.path(contract.INPUT_DATA_PATH)
    hand_over(roots, [channels], read_only, uid, gid)
    open_for_reading([channels], read_only)
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    os.environ["HOME"] = home
