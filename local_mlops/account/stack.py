"""The project's CloudFormation stack (``stack.yaml``): create or update it, read its outputs, delete it.

    describe        DescribeStacks: absent, or its status, tags, parameters and outputs
    deploy          absent -> CreateStack; same template and parameters -> nothing; else UpdateStack
    wait            poll DescribeStacks until the status leaves *_IN_PROGRESS; a failure reports
                    the first failed resource's reason from DescribeStackEvents
    delete          DeleteStack, then wait for DELETE_COMPLETE

The template is the same file an AWS CLI user deploys by hand (see its Description).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from local_mlops.account import aws, tags
from local_mlops.config import Settings
from local_mlops.errors import LocalMlopsError, brief_error

Say = Callable[[str], None]
Confirm = Callable[[str], bool]
CAPABILITIES = ["CAPABILITY_NAMED_IAM"]
POLL_SECONDS = 5.0
TIMEOUT_SECONDS = 30 * 60
CREATED_BY = "local-mlops cloud init"
# The stack's outputs and the settings they become (only the fields config.Settings has).
OUTPUT_SETTINGS = {
    "ExecutionRoleArn": "role_arn",
    "BucketName": "bucket",
    "RuntimeRepositoryUri": "image_repository",
    "ServingRepositoryUri": "serving_image_repository",
    "SchedulerRoleArn": "scheduler_role_arn",
    "ScheduleGroupName": "schedule_group",
}


@dataclass(frozen=True)
class Stack:
    """What DescribeStacks says about the project's stack."""

    name: str
    stack_id: str
    status: str
    tags: dict[str, str] = field(default_factory=dict)
    parameters: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)

    @property
    def busy(self) -> bool:
        return self.status.endswith("_IN_PROGRESS")

    @property
    def healthy(self) -> bool:
        return self.status in ("CREATE_COMPLETE", "UPDATE_COMPLETE")


def template_body() -> str:
    return (resources.files("local_mlops.account") / "stack.yaml").read_text()


def stack_name(settings: Settings) -> str:
    return settings.project


def parameters(settings: Settings) -> dict[str, str]:
    """The template's parameters for these settings (the rest keep their defaults)."""
    return {"ProjectName": settings.project}


def check_names(settings: Settings) -> None:
    """The execution role's policy covers names with the project's prefix: refuse any other."""
    prefix = f"{settings.project}-"
    for name in ("pipeline_name", "model_package_group", "image_name"):
        value = getattr(settings, name)
        if not value.startswith(prefix):
            raise LocalMlopsError(
                f"{name} is {value!r}, which does not start with {prefix!r}: the execution role "
                "only covers resources named with the project's prefix",
                f"rename it to {prefix}..., or set project to its prefix",
            )


def describe(session: Any, settings: Settings, stack_id: str = "") -> Stack | None:
    """The stack, or None when there is none by that name (or it was deleted)."""
    from botocore.exceptions import BotoCoreError, ClientError

    client = session.client("cloudformation")
    try:
        found = client.describe_stacks(StackName=stack_id or stack_name(settings))["Stacks"]
    except ClientError as exc:
        if "does not exist" in brief_error(exc):
            return None
        raise aws.translate(exc, "looking up the stack", "cloudformation:DescribeStacks") from exc
    except BotoCoreError as exc:
        raise aws.translate(exc, "looking up the stack", "cloudformation:DescribeStacks") from exc
    if not found or found[0]["StackStatus"] == "DELETE_COMPLETE":
        return None
    raw = found[0]
    return Stack(
        name=raw["StackName"],
        stack_id=raw["StackId"],
        status=raw["StackStatus"],
        tags=tags.as_dict(raw.get("Tags")),
        parameters={
            p["ParameterKey"]: p.get("ParameterValue", "") for p in raw.get("Parameters", [])
        },
        outputs={o["OutputKey"]: o["OutputValue"] for o in raw.get("Outputs", [])},
    )


def owned(settings: Settings, stack: Stack) -> Stack:
    """The stack, after checking the project created it (its tags say so)."""
    if not tags.is_project(settings, stack.tags):
        raise LocalMlopsError(
            f"a stack named {stack.name!r} exists in this account that local-mlops did not "
            f"create (no {tags.PROJECT}={settings.project} tag); leaving it alone",
            "set project in local-mlops.toml to another name",
        )
    return stack


def _confirmed(confirm: Confirm, question: str) -> None:
    if not confirm(question):
        raise LocalMlopsError("nothing was changed", "answer yes, or pass --yes")


def deploy(session: Any, settings: Settings, say: Say, confirm: Confirm) -> tuple[str, Stack]:
    """Create the stack, or update it when the template or parameters changed (after asking).

    Returns ("created" | "updated" | "unchanged", the stack).
    """
    check_names(settings)
    client = session.client("cloudformation")
    name = stack_name(settings)
    body = template_body()
    wanted = parameters(settings)
    arguments: dict[str, Any] = {
        "StackName": name,
        "TemplateBody": body,
        "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in wanted.items()],
        "Capabilities": CAPABILITIES,
        "Tags": tags.project_tags(settings, CREATED_BY),
    }
    current = describe(session, settings)
    if current is None:
        _confirmed(
            confirm,
            f"Create the CloudFormation stack {name} (roles, bucket, ECR repositories; free "
            "while empty, storage is billed per GB-month)?",
        )
        say(f"Creating the CloudFormation stack {name} ...")
        created = aws.call(
            "creating the stack",
            "cloudformation:CreateStack",
            client.create_stack,
            OnFailure="DELETE",
            **arguments,
        )
        return "created", wait(session, settings, created["StackId"], "create", say)
    owned(settings, current)
    if current.busy:
        raise LocalMlopsError(
            f"the stack {name} is busy ({current.status})",
            "wait until it settles (local-mlops cloud status), then run the command again",
        )
    if not current.healthy:
        raise LocalMlopsError(
            f"the stack {name} is in state {current.status}",
            "local-mlops cloud down --yes removes it; then run local-mlops cloud init again",
        )
    deployed = aws.call(
        "reading the stack's template",
        "cloudformation:GetTemplate",
        client.get_template,
        StackName=name,
    )["TemplateBody"]
    if str(deployed).strip() == body.strip() and all(
        current.parameters.get(k) == v for k, v in wanted.items()
    ):
        return "unchanged", current
    # Parameters set by hand (aws cloudformation deploy --parameter-overrides) keep their value.
    arguments["Parameters"] += [
        {"ParameterKey": k, "UsePreviousValue": True} for k in current.parameters if k not in wanted
    ]
    _confirmed(confirm, f"Update the CloudFormation stack {name} to this version's template?")
    say(f"Updating the CloudFormation stack {name} ...")
    from botocore.exceptions import ClientError

    try:
        client.update_stack(**arguments)
    except ClientError as exc:
        if "No updates are to be performed" in brief_error(exc):
            return "unchanged", current
        raise aws.translate(exc, "updating the stack", "cloudformation:UpdateStack") from exc
    return "updated", wait(session, settings, current.stack_id, "update", say)


def wait(session: Any, settings: Settings, stack_id: str, verb: str, say: Say) -> Stack:
    """Poll until the stack settles; a failed create/update/delete raises with its reason."""
    deadline = time.monotonic() + TIMEOUT_SECONDS
    pause = 0.25  # an emulator settles at once; CloudFormation takes minutes
    while True:
        stack = describe(session, settings, stack_id)
        if stack is None:
            if verb == "delete":
                return Stack(stack_name(settings), stack_id, "DELETE_COMPLETE")
            raise failure(session, settings, stack_id, verb)
        if not stack.busy:
            break
        if time.monotonic() > deadline:
            raise LocalMlopsError(
                f"the stack {stack.name} is still {stack.status} after {TIMEOUT_SECONDS // 60} min",
                "watch it in the CloudFormation console; local-mlops cloud status shows it too",
            )
        time.sleep(pause)
        pause = min(pause * 2, POLL_SECONDS)
    if stack.healthy:
        return stack
    raise failure(session, settings, stack_id, verb, stack.status)


def failure(
    session: Any, settings: Settings, stack_id: str, verb: str, status: str = "deleted"
) -> LocalMlopsError:
    """The error for a stack that did not ``verb``: the first failed resource and its reason."""
    reason = first_failure(session, stack_id)
    fix = (
        f"allow the action named above for your IAM user or role; {aws.PERMISSIONS_FIX}"
        if "not authorized" in reason or "AccessDenied" in reason
        else "read the stack's events in the CloudFormation console, fix the cause, run again"
    )
    return LocalMlopsError(
        f"the stack {stack_name(settings)} did not {verb} ({status}): {reason or 'no reason given'}",
        fix,
    )


def first_failure(session: Any, stack_id: str) -> str:
    """'Resource: reason' of the earliest failed event, or '' when none can be read."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        events = aws.paginate(
            session.client("cloudformation"),
            "describe_stack_events",
            "StackEvents",
            StackName=stack_id,
        )
    except (BotoCoreError, ClientError):
        return ""
    failed = [e for e in events if str(e.get("ResourceStatus", "")).endswith("_FAILED")]
    if not failed:
        return ""
    earliest = failed[-1]  # events come newest first
    return f"{earliest.get('LogicalResourceId', '?')}: {earliest.get('ResourceStatusReason', '')}"


def delete(session: Any, settings: Settings, stack: Stack, say: Say) -> None:
    """Delete the (owned) stack and wait until it is gone."""
    owned(settings, stack)
    say(f"Deleting the CloudFormation stack {stack.name} ...")
    client = session.client("cloudformation")
    aws.call(
        "deleting the stack",
        "cloudformation:DeleteStack",
        client.delete_stack,
        StackName=stack.stack_id,
    )
    wait(session, settings, stack.stack_id, "delete", say)


def settings_values(stack: Stack, known: set[str]) -> dict[str, str]:
    """The stack's outputs as setting name -> value, for the settings config.Settings has."""
    return {
        setting: stack.outputs[output]
        for output, setting in OUTPUT_SETTINGS.items()
        if setting in known and output in stack.outputs
    }
