"""The stack template itself: cfn-lint finds nothing, and every IAM policy in it is least-privilege."""

from __future__ import annotations

from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint
from cfnlint.decode import decode_str

from local_mlops.account import policy, stack

REGIONS = ["us-east-1", "eu-west-1", "eu-central-1", "ap-southeast-2"]


def _template() -> dict[str, Any]:
    template, problems = decode_str(stack.template_body())
    assert problems == []
    return template


def _policies(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every IAM policy document in the template, by where it sits."""
    found = {}
    for name, resource in template["Resources"].items():
        properties = resource.get("Properties", {})
        for inline in properties.get("Policies", []):
            found[f"{name}/{inline['PolicyName']}"] = inline["PolicyDocument"]
        if resource["Type"] in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"):
            found[name] = properties["PolicyDocument"]
    return found


def test_cfn_lint_passes_in_the_regions_users_pick() -> None:
    matches = lint(stack.template_body(), config=ManualArgs(regions=REGIONS))
    assert [str(m) for m in matches] == []


def test_cfn_lint_would_catch_a_mistake() -> None:
    broken = stack.template_body().replace("ScanOnPush: true", "ScanOnPush: maybe")
    assert lint(broken, config=ManualArgs(regions=REGIONS))


def test_every_policy_in_the_template_is_least_privilege() -> None:
    documents = _policies(_template())
    assert set(documents) == {
        "ExecutionRole/local-mlops-execution",
        "SchedulerRole/local-mlops-scheduler",
    }
    found = {where: policy.violations(document) for where, document in documents.items()}
    assert found == {where: [] for where in documents}


def test_no_managed_policies_are_attached() -> None:
    for resource in _template()["Resources"].values():
        assert "ManagedPolicyArns" not in resource.get("Properties", {})


@pytest.mark.parametrize(
    ("statement", "problem"),
    [
        ({"Action": "*", "Resource": "arn:aws:s3:::b"}, "wildcard action '*'"),
        ({"Action": "s3:*", "Resource": "arn:aws:s3:::b"}, "wildcard action 's3:*'"),
        ({"Action": "s3:PutObject", "Resource": "*"}, "s3:PutObject on Resource '*'"),
        ({"Action": "sagemaker:Create*", "Resource": "*"}, "sagemaker:Create* on Resource '*'"),
        ({"Action": "cloudwatch:PutMetricData", "Resource": "*"}, "PutMetricData on Resource"),
        ({"NotAction": "iam:*", "Resource": "*"}, "NotAction/NotResource"),
    ],
)
def test_the_policy_check_catches(statement: dict[str, Any], problem: str) -> None:
    document = {"Statement": [{"Effect": "Allow", **statement}]}
    assert any(problem in line for line in policy.violations(document))


def test_the_policy_check_allows_reads_conditioned_metrics_and_denies() -> None:
    document = {
        "Statement": [
            {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
            {
                "Effect": "Allow",
                "Action": "cloudwatch:PutMetricData",
                "Resource": "*",
                "Condition": {"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
            },
            {"Effect": "Deny", "Action": "s3:*", "Resource": "*"},
        ]
    }
    assert policy.violations(document) == []


def test_the_bucket_keeps_its_promises_in_the_template() -> None:
    bucket = _template()["Resources"]["DataBucket"]["Properties"]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    prefixes = {r.get("Prefix") for r in bucket["LifecycleConfiguration"]["Rules"]}
    assert {"datacapture/", "tmp/"} <= prefixes
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]


def test_every_taggable_resource_carries_the_project_tags() -> None:
    for name, resource in _template()["Resources"].items():
        if resource["Type"] == "AWS::S3::BucketPolicy":
            continue  # a bucket policy has no tags
        keys = {t["Key"] for t in resource["Properties"]["Tags"]}
        assert keys == {"local-mlops:project", "local-mlops:created-by"}, name
