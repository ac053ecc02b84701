"""Does the account hold what the stack promises? Each promise read back through the service's API.

A stack can report CREATE_COMPLETE while a property was not applied: an emulator's CloudFormation
(moto's implements a part of each resource type and skips unknown types) or a change made by
hand since. ``cloud init`` and ``cloud status`` run these checks and name every gap.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from local_mlops.account import policy, tags
from local_mlops.account.stack import Stack
from local_mlops.config import Settings

LIFECYCLE_RULES = {"expire-data-capture", "expire-temporary", "expire-old-versions"}


@dataclass(frozen=True)
class Promise:
    """One property of one resource, and whether the account has it."""

    resource: str
    what: str
    ok: bool
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _read(function: Callable[..., Any], **kwargs: Any) -> tuple[Any, str]:
    """(answer, "") or (None, the error's code) for a read that may find nothing."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return function(**kwargs), ""
    except ClientError as exc:
        return None, str(exc.response.get("Error", {}).get("Code", "error"))
    except BotoCoreError as exc:
        return None, type(exc).__name__


def _role(iam: Any, settings: Settings, arn: str, service: str) -> list[Promise]:
    name = arn.rsplit("/", 1)[-1]
    found, error = _read(iam.get_role, RoleName=name)
    if found is None:
        return [Promise(name, "exists", False, error)]
    trust = json.dumps(found["Role"].get("AssumeRolePolicyDocument", {}))
    policies, _ = _read(iam.list_role_policies, RoleName=name)
    attached, _ = _read(iam.list_attached_role_policies, RoleName=name)
    managed = [p["PolicyName"] for p in (attached or {}).get("AttachedPolicies", [])]
    listed, _ = _read(iam.list_role_tags, RoleName=name)
    names = (policies or {}).get("PolicyNames", [])
    broken = []
    for policy_name in names:
        document, _ = _read(iam.get_role_policy, RoleName=name, PolicyName=policy_name)
        broken += policy.violations((document or {}).get("PolicyDocument", {}), f"{policy_name} ")
    return [
        Promise(name, "exists", True, arn),
        Promise(name, f"trusts {service}", service in trust),
        Promise(name, "has its inline policy", bool(names)),
        Promise(name, "least privilege", bool(names) and not broken, "; ".join(broken)),
        Promise(name, "has no managed policies", not managed, ", ".join(managed)),
        Promise(name, "tagged", tags.is_project(settings, (listed or {}).get("Tags"))),
    ]


def _bucket(s3: Any, settings: Settings, name: str) -> list[Promise]:
    found, error = _read(s3.head_bucket, Bucket=name)
    if found is None:
        return [Promise(name, "exists", False, error)]
    encryption, _ = _read(s3.get_bucket_encryption, Bucket=name)
    rules = (encryption or {}).get("ServerSideEncryptionConfiguration", {}).get("Rules", [])
    versioning, _ = _read(s3.get_bucket_versioning, Bucket=name)
    block, _ = _read(s3.get_public_access_block, Bucket=name)
    flags = (block or {}).get("PublicAccessBlockConfiguration", {})
    lifecycle, _ = _read(s3.get_bucket_lifecycle_configuration, Bucket=name)
    rule_ids = {r.get("ID") for r in (lifecycle or {}).get("Rules", [])}
    ownership, _ = _read(s3.get_bucket_ownership_controls, Bucket=name)
    owners = (ownership or {}).get("OwnershipControls", {}).get("Rules", [])
    policy, _ = _read(s3.get_bucket_policy, Bucket=name)
    tagging, _ = _read(s3.get_bucket_tagging, Bucket=name)
    return [
        Promise(name, "exists", True),
        Promise(name, "default encryption", bool(rules)),
        Promise(name, "versioning", (versioning or {}).get("Status") == "Enabled"),
        Promise(name, "public access blocked", len(flags) == 4 and all(flags.values())),
        Promise(
            name,
            "lifecycle rules",
            rule_ids >= LIFECYCLE_RULES,
            "missing " + ", ".join(sorted(LIFECYCLE_RULES - rule_ids)) if rule_ids else "none",
        ),
        Promise(
            name,
            "object ownership enforced",
            any(r.get("ObjectOwnership") == "BucketOwnerEnforced" for r in owners),
        ),
        Promise(
            name,
            "TLS-only bucket policy",
            "aws:SecureTransport" in str((policy or {}).get("Policy", "")),
        ),
        Promise(name, "tagged", tags.is_project(settings, (tagging or {}).get("TagSet"))),
    ]


def _repository(ecr: Any, settings: Settings, uri: str) -> list[Promise]:
    name = uri.split("/", 1)[-1]
    found, error = _read(ecr.describe_repositories, repositoryNames=[name])
    if found is None:
        return [Promise(name, "exists", False, error)]
    repo = found["repositories"][0]
    lifecycle, _ = _read(ecr.get_lifecycle_policy, repositoryName=name)
    listed, _ = _read(ecr.list_tags_for_resource, resourceArn=repo["repositoryArn"])
    return [
        Promise(name, "exists", True, uri),
        Promise(
            name,
            "scan on push",
            bool(repo.get("imageScanningConfiguration", {}).get("scanOnPush")),
        ),
        Promise(name, "lifecycle policy", bool((lifecycle or {}).get("lifecyclePolicyText"))),
        Promise(name, "tagged", tags.is_project(settings, (listed or {}).get("tags"))),
    ]


def _schedule_group(scheduler: Any, settings: Settings, name: str) -> list[Promise]:
    found, error = _read(scheduler.get_schedule_group, Name=name)
    if found is None:
        return [Promise(f"schedule group {name}", "exists", False, error)]
    listed, _ = _read(scheduler.list_tags_for_resource, ResourceArn=found["Arn"])
    return [
        Promise(f"schedule group {name}", "exists", True),
        Promise(
            f"schedule group {name}",
            "tagged",
            tags.is_project(settings, (listed or {}).get("Tags")),
        ),
    ]


def check(session: Any, settings: Settings, stack: Stack) -> list[Promise]:
    """Every promise of the template, for the resources the stack's outputs name."""
    out = stack.outputs
    iam = session.client("iam")
    ecr = session.client("ecr")
    found: list[Promise] = []
    if "ExecutionRoleArn" in out:
        found += _role(iam, settings, out["ExecutionRoleArn"], "sagemaker.amazonaws.com")
    if "SchedulerRoleArn" in out:
        found += _role(iam, settings, out["SchedulerRoleArn"], "scheduler.amazonaws.com")
    if "BucketName" in out:
        found += _bucket(session.client("s3"), settings, out["BucketName"])
    for key in ("RuntimeRepositoryUri", "ServingRepositoryUri"):
        if key in out:
            found += _repository(ecr, settings, out[key])
    if "ScheduleGroupName" in out:
        found += _schedule_group(session.client("scheduler"), settings, out["ScheduleGroupName"])
    return found


def gaps(promises: list[Promise]) -> list[Promise]:
    return [p for p in promises if not p.ok]
