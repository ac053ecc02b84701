"""``local-mlops cloud init`` against moto's CloudFormation, IAM, S3, ECR and Scheduler APIs."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import boto3
import pytest
from accountkit import (
    BUCKET,
    EXECUTION_ROLE,
    MOTO_GAPS,
    RUNTIME_REPOSITORY,
    SCHEDULER_ROLE,
    SERVING_REPOSITORY,
    SETTINGS_TEXT,
    STACK,
    flat,
    project_folder,
)
from cloudkit import ACCOUNT, REGION, NetworkLog
from typer.testing import CliRunner

from local_mlops.account import policy
from local_mlops.cli.app import app

runner = CliRunner()
LIFECYCLE_POLICY = json.dumps(
    {
        "rules": [
            {
                "rulePriority": 1,
                "selection": {
                    "tagStatus": "any",
                    "countType": "imageCountMoreThan",
                    "countNumber": 10,
                },
                "action": {"type": "expire"},
            }
        ]
    }
)
PROJECT_TAG = {"Key": "local-mlops:project", "Value": "local-mlops"}


@pytest.fixture
def settings_path(aws: boto3.Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return project_folder(tmp_path, monkeypatch)


def _init(*extra: str) -> Any:
    result = runner.invoke(app, ["cloud", "init", "--yes", *extra])
    assert result.exit_code == 0, result.output
    return result


def _snapshot(aws: boto3.Session) -> dict[str, Any]:
    """What a second init must leave exactly as it was."""
    iam, s3, ecr = aws.client("iam"), aws.client("s3"), aws.client("ecr")
    stack = aws.client("cloudformation").describe_stacks(StackName=STACK)["Stacks"][0]
    roles = {}
    for name in (EXECUTION_ROLE, SCHEDULER_ROLE):
        role = iam.get_role(RoleName=name)["Role"]
        documents = [
            policy.parse(iam.get_role_policy(RoleName=name, PolicyName=p)["PolicyDocument"])
            for p in iam.list_role_policies(RoleName=name)["PolicyNames"]
        ]
        roles[name] = (role["RoleId"], role["CreateDate"], documents)
    buckets = {b["Name"]: b["CreationDate"] for b in s3.list_buckets()["Buckets"]}
    repositories = {
        r["repositoryName"]: r["createdAt"] for r in ecr.describe_repositories()["repositories"]
    }
    return {
        "stack": (stack["StackId"], stack["StackStatus"], stack.get("LastUpdatedTime")),
        "roles": roles,
        "buckets": buckets,
        "repositories": repositories,
    }


def test_init_on_an_empty_account_creates_the_stack_and_writes_the_names(
    aws: boto3.Session, settings_path: Path, network_log: NetworkLog
) -> None:
    result = _init("--json")
    report = json.loads(result.stdout)
    assert report["action"] == "created" and report["status"] == "CREATE_COMPLETE"

    iam = aws.client("iam")
    execution = iam.get_role(RoleName=EXECUTION_ROLE)["Role"]
    assert "sagemaker.amazonaws.com" in json.dumps(execution["AssumeRolePolicyDocument"])
    assert PROJECT_TAG in iam.list_role_tags(RoleName=EXECUTION_ROLE)["Tags"]
    scheduler = iam.get_role(RoleName=SCHEDULER_ROLE)["Role"]
    assert "scheduler.amazonaws.com" in json.dumps(scheduler["AssumeRolePolicyDocument"])
    s3 = aws.client("s3")
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == [BUCKET]
    assert s3.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]["Rules"]
    assert PROJECT_TAG in s3.get_bucket_tagging(Bucket=BUCKET)["TagSet"]
    ecr = aws.client("ecr")
    repositories = ecr.describe_repositories()["repositories"]
    assert {r["repositoryName"] for r in repositories} == {RUNTIME_REPOSITORY, SERVING_REPOSITORY}
    for repo in repositories:
        assert PROJECT_TAG in ecr.list_tags_for_resource(resourceArn=repo["repositoryArn"])["tags"]

    # What moto's CloudFormation skipped is named, not hidden; nothing else is missing.
    assert {(g["resource"], g["what"]) for g in report["gaps"]} == MOTO_GAPS
    assert "not applied by this endpoint's CloudFormation" in flat(result.stderr)

    # The names are in the user's settings file, next to what was there.
    text = settings_path.read_text()
    assert text.startswith(SETTINGS_TEXT)
    assert tomllib.loads(text) == {
        "epochs": 3,
        "role_arn": f"arn:aws:iam::{ACCOUNT}:role/{EXECUTION_ROLE}",
        "bucket": BUCKET,
        "image_repository": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{RUNTIME_REPOSITORY}",
        "serving_image_repository": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{SERVING_REPOSITORY}",
        "region": REGION,
        # the role EventBridge Scheduler assumes to start `monitor schedule --cloud` jobs
        "scheduler_role_arn": f"arn:aws:iam::{ACCOUNT}:role/{SCHEDULER_ROLE}",
    }
    # ... and doctor --cloud finds the account side in order.
    doctor = runner.invoke(app, ["doctor", "--cloud", "--json"])
    checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
    for name in ("AWS region", "AWS credentials", "Cloud stack", "Execution role", "S3 bucket"):
        assert checks[name]["status"] == "ok", checks[name]
    assert checks["S3 bucket"]["detail"] == f"s3://{BUCKET}"
    assert network_log.off_emulator() == [] and network_log.refused == []


def test_the_roles_have_no_wildcard_action_on_a_wildcard_resource(
    aws: boto3.Session, settings_path: Path
) -> None:
    _init()
    iam = aws.client("iam")
    for name in (EXECUTION_ROLE, SCHEDULER_ROLE):
        assert iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"] == []
        names = iam.list_role_policies(RoleName=name)["PolicyNames"]
        assert names
        for policy_name in names:
            document = policy.parse(
                iam.get_role_policy(RoleName=name, PolicyName=policy_name)["PolicyDocument"]
            )
            assert policy.violations(document) == []
            for statement in document["Statement"]:
                actions = (
                    statement["Action"]
                    if isinstance(statement["Action"], list)
                    else [statement["Action"]]
                )
                resources = (
                    statement["Resource"]
                    if isinstance(statement["Resource"], list)
                    else [statement["Resource"]]
                )
                assert not ({"*"} & set(actions) and "*" in resources), statement
                if "*" in resources:  # only the two actions IAM cannot scope
                    assert set(actions) <= {"ecr:GetAuthorizationToken", "cloudwatch:PutMetricData"}


def test_a_second_init_changes_nothing(aws: boto3.Session, settings_path: Path) -> None:
    _init()
    before, text = _snapshot(aws), settings_path.read_text()

    again = _init("--json")

    assert json.loads(again.stdout)["action"] == "unchanged"
    assert "Up to date: the stack local-mlops" in flat(again.stderr)
    assert "already names the stack's resources" in flat(again.stderr)
    assert _snapshot(aws) == before
    assert settings_path.read_text() == text


def test_the_checks_see_each_promise_once_it_is_in_place(
    aws: boto3.Session, settings_path: Path
) -> None:
    """What moto skipped, set through each service's own API as AWS's CloudFormation would:
    the promises read back then all hold (so the checks read the right fields)."""
    _init()
    s3, ecr = aws.client("s3"), aws.client("ecr")
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    s3.put_public_access_block(
        Bucket=BUCKET,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    rules = [
        {"ID": rule, "Status": "Enabled", "Filter": {"Prefix": prefix}, "Expiration": {"Days": 7}}
        for rule, prefix in (
            ("expire-data-capture", "datacapture/"),
            ("expire-temporary", "tmp/"),
            ("expire-old-versions", ""),
        )
    ]
    s3.put_bucket_lifecycle_configuration(Bucket=BUCKET, LifecycleConfiguration={"Rules": rules})
    s3.put_bucket_ownership_controls(
        Bucket=BUCKET, OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    )
    s3.put_bucket_policy(
        Bucket=BUCKET,
        Policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "s3:*",
                        "Resource": f"arn:aws:s3:::{BUCKET}/*",
                        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                    }
                ],
            }
        ),
    )
    for name in (RUNTIME_REPOSITORY, SERVING_REPOSITORY):
        ecr.put_image_scanning_configuration(
            repositoryName=name, imageScanningConfiguration={"scanOnPush": True}
        )
        ecr.put_lifecycle_policy(repositoryName=name, lifecyclePolicyText=LIFECYCLE_POLICY)
    aws.client("scheduler").create_schedule_group(Name="local-mlops", Tags=[PROJECT_TAG])

    status = runner.invoke(app, ["cloud", "status", "--json"])

    assert status.exit_code == 0, status.output
    data = json.loads(status.stdout)
    assert data["gaps"] == [] and data["promises_checked"] >= 30
    assert data["stack"]["status"] == "CREATE_COMPLETE"
