"""Entry points drop root: the writable contract folders go to the job's user first."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CONTAINERS

from mlops_container import privileges

NOBODY = pwd.getpwnam("nobody")


def test_hand_over_gives_root_owned_outputs_to_the_user_but_not_the_data(tmp_path: Path) -> None:
    base = tmp_path / "ml"
    for folder in ("model", "output/data", "input/data/train", "checkpoints"):
        (base / folder).mkdir(parents=True)
    (base / "checkpoints" / "checkpoint.pt").write_bytes(b"x")
    (base / "input" / "data" / "train" / "data.npz").write_bytes(b"x")
    if os.geteuid() != 0:  # only root can give files away; then nothing is expected to change
        assert privileges.hand_over([base], [], [], NOBODY.pw_uid, NOBODY.pw_gid) == 0
        return

    privileges.hand_over([base], [base / "input" / "data"], [], NOBODY.pw_uid, NOBODY.pw_gid)

    for path in ("model", "output/data", "checkpoints", "checkpoints/checkpoint.pt"):
        assert (base / path).stat().st_uid == NOBODY.pw_uid, path
    assert (base / "input" / "data" / "train" / "data.npz").stat().st_uid == 0


def test_a_read_only_file_mount_is_left_alone(tmp_path: Path) -> None:
    """``docker run -v archive.tar.gz:/data/source/archive.tar.gz:ro``: chown would fail (EROFS)."""
    data = tmp_path / "data"
    (data / "source").mkdir(parents=True)
    archive = data / "source" / "cifar-10-python.tar.gz"
    archive.write_bytes(b"x")
    if os.geteuid() != 0:  # only root can give files away
        assert privileges.hand_over([data], [], [archive], NOBODY.pw_uid, NOBODY.pw_gid) == 0
        return

    changed = privileges.hand_over([data], [], [archive], NOBODY.pw_uid, NOBODY.pw_gid)

    assert changed == 2  # data/ and data/source/, not the mounted file
    assert archive.stat().st_uid == 0
    assert (data / "source").stat().st_uid == NOBODY.pw_uid
    archive.chmod(0o600)
    privileges.open_for_reading([data], [archive])
    assert archive.stat().st_mode & 0o777 == 0o600


def test_a_private_channel_folder_becomes_readable_but_keeps_its_owner(tmp_path: Path) -> None:
    """Local mode mounts each training channel from a 0700 temp folder of the SDK's user."""
    channel = tmp_path / "train"
    channel.mkdir(mode=0o700)
    (channel / "data.npz").write_bytes(b"x")
    (channel / "data.npz").chmod(0o600)
    if os.geteuid() != 0:
        assert privileges.open_for_reading([channel], []) == 0  # not root-owned: untouched
        return

    privileges.open_for_reading([channel], [])

    assert channel.stat().st_mode & 0o005 == 0o005
    assert (channel / "data.npz").stat().st_mode & 0o004 == 0o004
    assert (channel / "data.npz").stat().st_uid == 0


@pytest.fixture()
def open_dir() -> Iterator[Path]:
    """A folder another user can reach (pytest's own temp folders are private to root)."""
    folder = Path(tempfile.mkdtemp())
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


def test_a_job_started_as_root_runs_as_the_images_user(open_dir: Path) -> None:
    base = open_dir / "ml"
    (base / "model").mkdir(parents=True)
    script = (
        "from mlops_container import privileges, contract; privileges.drop_root(); import os; "
        "(contract.path('model') / 'written').write_text('x'); print(os.getuid())"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(CONTAINERS),
        "SAGEMAKER_BASE_DIR": str(base),
        "MLOPS_RUN_AS": "nobody",
    }
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False
    )

    assert done.returncode == 0, done.stderr
    expected = NOBODY.pw_uid if os.geteuid() == 0 else os.geteuid()
    assert int(done.stdout) == expected
    assert (base / "model" / "written").stat().st_uid == expected


def test_outside_the_image_nothing_changes(monkeypatch) -> None:
    """Unit tests and host runs call the entry points too: they must keep their user."""
    monkeypatch.delenv("MLOPS_RUN_AS", raising=False)
    before = (os.geteuid(), os.getegid())
    privileges.drop_root()
    assert (os.geteuid(), os.getegid()) == before
