"""The boto3 session for the account commands, and AWS failures as one line that names the fix.

Credentials come only from boto3's standard chain (environment, shared config and credentials
files, SSO, instance roles); nothing here reads, prints or stores a secret.
"""

from __future__ import annotations

import difflib
from typing import Any

from local_mlops.config import Settings
from local_mlops.errors import LocalMlopsError, brief_error

CREDENTIALS_FIX = (
    "configure AWS credentials: `aws configure`, `aws sso login --profile NAME` with "
    "--profile NAME (or AWS_PROFILE), or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
)
PERMISSIONS_FIX = "the README section 'Going to SageMaker' lists what your credentials need"
DENIED = {
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "AuthorizationError",
    "InsufficientCapabilitiesException",
}
BAD_CREDENTIALS = {
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "InvalidAccessKeyId",
    "ExpiredToken",
    "ExpiredTokenException",
    "RequestExpired",
}


def session(settings: Settings) -> Any:
    """A boto3 session for the settings' profile and region, after checking the region exists."""
    import boto3
    from botocore.exceptions import ProfileNotFound

    try:
        found = boto3.Session(region_name=settings.region, profile_name=settings.profile or None)
    except ProfileNotFound as exc:
        raise LocalMlopsError(
            f"the AWS profile {settings.profile!r} is not in your AWS config",
            "pick one from `aws configure list-profiles`, or drop --profile / AWS_PROFILE",
        ) from exc
    check_region(found, settings.region)
    return found


def check_region(session: Any, region: str) -> None:
    """Refuse a region where SageMaker does not run (a typo, usually) before any call."""
    known: set[str] = set()
    for partition in session.get_available_partitions():
        known.update(session.get_available_regions("sagemaker", partition_name=partition))
    if region in known:
        return
    close = difflib.get_close_matches(region, sorted(known), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise LocalMlopsError(
        f"{region!r} is not an AWS region where SageMaker runs{hint}",
        "pass --region with a region such as us-east-1 or eu-west-1 (or set AWS_REGION)",
    )


def error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def translate(exc: Exception, doing: str, action: str) -> LocalMlopsError:
    """The LocalMlopsError for a boto3 failure while ``doing`` (``action`` is the IAM action)."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
        TokenRetrievalError,
        UnauthorizedSSOTokenError,
    )

    brief = brief_error(exc)
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return LocalMlopsError(f"{doing}: no AWS credentials found", CREDENTIALS_FIX)
    if isinstance(exc, TokenRetrievalError | UnauthorizedSSOTokenError):
        return LocalMlopsError(
            f"{doing}: the SSO session has expired ({brief})", "aws sso login --profile NAME"
        )
    if isinstance(exc, NoRegionError):
        return LocalMlopsError(f"{doing}: no AWS region", "pass --region or set AWS_REGION")
    if isinstance(exc, EndpointConnectionError):
        return LocalMlopsError(
            f"{doing}: cannot reach AWS ({brief})",
            "check your network, and that --region / AWS_REGION is a region you use",
        )
    if isinstance(exc, ClientError):
        code = error_code(exc)
        if code in BAD_CREDENTIALS:
            return LocalMlopsError(
                f"{doing}: AWS refused the credentials ({brief})",
                f"refresh or replace them; {CREDENTIALS_FIX}",
            )
        if code in DENIED or "not authorized" in brief:
            return LocalMlopsError(
                f"{doing}: your credentials may not call {action} ({brief})",
                f"allow {action} for your IAM user or role; {PERMISSIONS_FIX}",
            )
    return LocalMlopsError(f"{doing} failed ({brief})", f"retry; if it persists, {doing} by hand")


def call(doing: str, action: str, function: Any, /, **kwargs: Any) -> Any:
    """``function(**kwargs)``, with any AWS failure turned into one error naming the fix."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return function(**kwargs)
    except (BotoCoreError, ClientError) as exc:
        raise translate(exc, doing, action) from exc


def identity(session: Any) -> dict[str, str]:
    """Account and ARN of the caller (STS GetCallerIdentity works whatever the permissions)."""
    found = call(
        "checking your AWS credentials",
        "sts:GetCallerIdentity",
        session.client("sts").get_caller_identity,
    )
    return {"account": str(found["Account"]), "arn": str(found["Arn"])}


def paginate(client: Any, operation: str, key: str, **kwargs: Any) -> list[Any]:
    """Every item under ``key`` across the pages of a list call."""
    items: list[Any] = []
    for page in client.get_paginator(operation).paginate(**kwargs):
        items.extend(page.get(key, []))
    return items
