"""A SageMaker-shaped model registry kept as JSON documents in the bucket.

Layout under ``<prefix>/`` (default ``_local-mlops/registry``):
``groups/<group>/group.json`` and ``groups/<group>/versions/<version:08d>.json``.
ARNs have the cloud's shape (``arn:aws:sagemaker:<region>:<account>:model-package/<group>/<n>``),
and documents the shape of DescribeModelPackageGroup / DescribeModelPackage, so the CLI and the
UI read local and cloud packages alike. Versions are allocated with S3 conditional writes
(``IfNoneMatch="*"``): two concurrent registrations can never get the same version number.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from botocore.exceptions import ClientError

from local_mlops.errors import LocalMlopsError

APPROVAL_STATUSES = ("PendingManualApproval", "Approved", "Rejected")
_PACKAGE_ARN = re.compile(
    r"^arn:aws:sagemaker:[^:]*:[^:]*:model-package/(?P<group>[^/]+)/(?P<v>\d+)$"
)
_MAX_ALLOCATION_TRIES = 100


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def approval_event(status: str, description: str | None, when: str) -> dict[str, str]:
    """One entry of a package's approval history."""
    import getpass

    return {
        "ModelApprovalStatus": status,
        "ApprovalDescription": description or "",
        "Time": when,
        "By": getpass.getuser(),
    }


def _precondition_failed(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return error.get("Code") in ("PreconditionFailed", "412") or status == 412


class LocalModelRegistry:
    """Model package groups and versioned model packages with SageMaker semantics."""

    def __init__(
        self,
        s3_client: Any,
        bucket: str,
        region: str,
        account_id: str = "000000000000",
        prefix: str = "_local-mlops/registry",
    ) -> None:
        self.s3 = s3_client
        self.bucket = bucket
        self.region = region
        self.account_id = account_id
        self.prefix = prefix.rstrip("/")

    # ARNs and keys
    def group_arn(self, group: str) -> str:
        return f"arn:aws:sagemaker:{self.region}:{self.account_id}:model-package-group/{group}"

    def package_arn(self, group: str, version: int) -> str:
        return f"arn:aws:sagemaker:{self.region}:{self.account_id}:model-package/{group}/{version}"

    def _group_key(self, group: str) -> str:
        return f"{self.prefix}/groups/{group}/group.json"

    def _versions_prefix(self, group: str) -> str:
        return f"{self.prefix}/groups/{group}/versions/"

    def _version_key(self, group: str, version: int) -> str:
        return f"{self._versions_prefix(group)}{version:08d}.json"

    def _read(self, key: str) -> dict | None:
        try:
            return json.loads(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise

    def _write(self, key: str, doc: dict, **extra: Any) -> None:
        self.s3.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=json.dumps(doc, indent=1, default=str).encode(),
            ContentType="application/json",
            **extra,
        )

    # groups
    def create_group(self, group: str, description: str | None = None) -> dict:
        """Create the group if missing (idempotent, like the pipeline's implicit group creation)."""
        doc = {
            "ModelPackageGroupName": group,
            "ModelPackageGroupArn": self.group_arn(group),
            "ModelPackageGroupDescription": description or "",
            "CreationTime": _now(),
            "ModelPackageGroupStatus": "Completed",
        }
        try:
            self._write(self._group_key(group), doc, IfNoneMatch="*")
        except ClientError as exc:
            if not _precondition_failed(exc):
                raise
            return self._read(self._group_key(group)) or doc
        return doc

    def list_groups(self) -> list[dict]:
        """All groups, oldest first."""
        groups = []
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(
            Bucket=self.bucket, Prefix=f"{self.prefix}/groups/", Delimiter="/"
        ):
            for common in page.get("CommonPrefixes", []):
                name = common["Prefix"].rstrip("/").rsplit("/", 1)[-1]
                doc = self._read(self._group_key(name))
                if doc:
                    groups.append(doc)
        return sorted(groups, key=lambda g: g["CreationTime"])

    # packages
    def _versions(self, group: str) -> list[int]:
        versions = []
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._versions_prefix(group)):
            for obj in page.get("Contents", []):
                stem = obj["Key"].rsplit("/", 1)[-1].removesuffix(".json")
                if stem.isdigit():
                    versions.append(int(stem))
        return sorted(versions)

    def register(
        self,
        group: str,
        *,
        model_data_url: str | None,
        image: str | None,
        approval_status: str = "PendingManualApproval",
        description: str | None = None,
        model_metrics: dict | None = None,
        drift_check_baselines: dict | None = None,
        metrics: dict[str, float] | None = None,
        content_types: list[str] | None = None,
        response_types: list[str] | None = None,
        inference_instances: list[str] | None = None,
        transform_instances: list[str] | None = None,
        pipeline_execution_arn: str | None = None,
        customer_metadata: dict[str, str] | None = None,
        inference_specification: dict | None = None,
    ) -> dict:
        """Register a new version in ``group``; returns its DescribeModelPackage-shaped document."""
        if approval_status not in APPROVAL_STATUSES:
            raise LocalMlopsError(
                f"unknown approval status {approval_status!r}",
                f"use one of {', '.join(APPROVAL_STATUSES)}",
            )
        self.create_group(group)
        spec = inference_specification or {
            "Containers": [{"Image": image, "ModelDataUrl": model_data_url}],
        }
        spec = {
            **spec,
            "SupportedContentTypes": content_types or spec.get("SupportedContentTypes", []),
            "SupportedResponseMIMETypes": response_types
            or spec.get("SupportedResponseMIMETypes", []),
            "SupportedRealtimeInferenceInstanceTypes": inference_instances
            or spec.get("SupportedRealtimeInferenceInstanceTypes", []),
            "SupportedTransformInstanceTypes": transform_instances
            or spec.get("SupportedTransformInstanceTypes", []),
        }
        existing = self._versions(group)
        version = (existing[-1] if existing else 0) + 1
        for _ in range(_MAX_ALLOCATION_TRIES):
            doc = {
                "ModelPackageGroupName": group,
                "ModelPackageVersion": version,
                "ModelPackageArn": self.package_arn(group, version),
                "ModelPackageName": group,
                "ModelPackageDescription": description or "",
                "CreationTime": _now(),
                "LastModifiedTime": _now(),
                "ModelPackageStatus": "Completed",
                "ModelApprovalStatus": approval_status,
                "InferenceSpecification": spec,
                "ModelMetrics": model_metrics or {},
                "DriftCheckBaselines": drift_check_baselines or {},
                "Metrics": metrics or {},
                "CustomerMetadataProperties": customer_metadata or {},
                "MetadataProperties": (
                    {"GeneratedBy": pipeline_execution_arn} if pipeline_execution_arn else {}
                ),
                "PipelineExecutionArn": pipeline_execution_arn,
            }
            try:
                self._write(self._version_key(group, version), doc, IfNoneMatch="*")
                return doc
            except ClientError as exc:
                if not _precondition_failed(exc):
                    raise
                version += 1
        raise LocalMlopsError(
            f"could not allocate a version in model package group {group!r}",
            "retry; many registrations are racing for the same group",
        )

    def list_packages(self, group: str) -> list[dict]:
        """The group's packages, version 1 first."""
        docs = [self._read(self._version_key(group, v)) for v in self._versions(group)]
        return [d for d in docs if d]

    def _locate(self, arn_or_group_version: str) -> tuple[str, int]:
        match = _PACKAGE_ARN.match(arn_or_group_version)
        if match:
            return match["group"], int(match["v"])
        group, sep, version = arn_or_group_version.rpartition("/")
        if not sep or not version.isdigit():
            raise LocalMlopsError(
                f"not a model package reference: {arn_or_group_version!r}",
                "pass a model package ARN or <group>/<version>",
            )
        return group, int(version)

    def describe(self, arn_or_group_version: str) -> dict:
        """One package by ARN or ``<group>/<version>``."""
        group, version = self._locate(arn_or_group_version)
        doc = self._read(self._version_key(group, version))
        if doc is None:
            raise LocalMlopsError(
                f"model package {group}/{version} does not exist",
                "list packages with `local-mlops models list`",
            )
        return doc

    def update_approval(
        self, arn_or_group_version: str, status: str, description: str | None = None
    ) -> dict:
        """Set ``ModelApprovalStatus`` (and ``ApprovalDescription``) on a package.

        Every change is appended to the package's ``ApprovalHistory`` (status, reason, time, who).
        """
        if status not in APPROVAL_STATUSES:
            raise LocalMlopsError(
                f"unknown approval status {status!r}", f"use one of {', '.join(APPROVAL_STATUSES)}"
            )
        doc = self.describe(arn_or_group_version)
        doc["ModelApprovalStatus"] = status
        if description is not None:
            doc["ApprovalDescription"] = description
        doc["LastModifiedTime"] = _now()
        doc.setdefault("ApprovalHistory", []).append(
            approval_event(status, description, doc["LastModifiedTime"])
        )
        self._write(
            self._version_key(doc["ModelPackageGroupName"], doc["ModelPackageVersion"]), doc
        )
        return doc
