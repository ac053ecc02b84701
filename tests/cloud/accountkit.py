"""What the account tests share: a project folder with its own settings file, and the names the
stack gives its resources in moto's account."""

from __future__ import annotations

from pathlib import Path

import pytest
from cloudkit import ACCOUNT, REGION

STACK = "local-mlops"
EXECUTION_ROLE = f"local-mlops-execution-{REGION}"
SCHEDULER_ROLE = f"local-mlops-scheduler-{REGION}"
BUCKET = f"local-mlops-{ACCOUNT}-{REGION}"
RUNTIME_REPOSITORY = "local-mlops-runtime"
SERVING_REPOSITORY = "local-mlops-serving"
SETTINGS_TEXT = "# the team's settings\nepochs = 3\n"
# What moto's CloudFormation (5.2.5) does not apply from stack.yaml: it stores the bucket with
# its encryption and tags and the repositories with their tags, and skips the rest (it reads
# ScanOnPush under another key and has no AWS::Scheduler::ScheduleGroup or AWS::S3::BucketPolicy).
MOTO_GAPS = {
    (BUCKET, "versioning"),
    (BUCKET, "public access blocked"),
    (BUCKET, "lifecycle rules"),
    (BUCKET, "object ownership enforced"),
    (BUCKET, "TLS-only bucket policy"),
    (RUNTIME_REPOSITORY, "scan on push"),
    (RUNTIME_REPOSITORY, "lifecycle policy"),
    (SERVING_REPOSITORY, "scan on push"),
    (SERVING_REPOSITORY, "lifecycle policy"),
    ("schedule group local-mlops", "exists"),
}


def project_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with a local-mlops.toml of the user's own, and no names preset in the env."""
    folder = tmp_path / "project"
    folder.mkdir()
    settings = folder / "local-mlops.toml"
    settings.write_text(SETTINGS_TEXT)
    monkeypatch.chdir(folder)
    monkeypatch.setenv("LOCAL_MLOPS_CONFIG", str(settings))
    for name in ("LOCAL_MLOPS_BUCKET", "LOCAL_MLOPS_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    return settings


def flat(text: str) -> str:
    """CLI output with rich's line wrapping undone."""
    return " ".join(text.split())
