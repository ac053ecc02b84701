"""The cloud account side: what ``--cloud`` needs, as one CloudFormation stack, and back to zero.

    init     stack.deploy (create, update or leave alone) -> verify every promise of the template
             -> write role_arn, bucket, image_repository, serving_image_repository, region into local-mlops.toml
    status   the stack, its promises, and what the project has running or stored, with costs
    down     teardown.plan (found by tags) -> the caller confirms -> teardown.tear_down

Parts: ``stack.yaml`` (the template, usable with the AWS CLI alone), ``stack`` (CloudFormation),
``verify`` (promises read back), ``inventory`` (tagged resources and costs), ``prices.toml``
(the dated price table), ``teardown``, ``settings_file``, ``tags``, ``aws`` (session, errors).
Depends only on config, errors and boto3.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local_mlops.account import aws, inventory, settings_file, stack, teardown, verify
from local_mlops.config import FIELDS, Settings, config_path
from local_mlops.errors import LocalMlopsError

Say = Callable[[str], None]
Confirm = Callable[[str], bool]


@dataclass
class InitResult:
    action: str  # created | updated | unchanged
    stack: stack.Stack
    promises: list[verify.Promise]
    emulated: bool
    settings_file: Path
    written: dict[str, str] = field(default_factory=dict)

    @property
    def gaps(self) -> list[verify.Promise]:
        return verify.gaps(self.promises)

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "stack": self.stack.name,
            "status": self.stack.status,
            "outputs": self.stack.outputs,
            "settings_file": str(self.settings_file),
            "written": self.written,
            "emulated": self.emulated,
            "gaps": [p.as_dict() for p in self.gaps],
        }


def emulated(session: Any) -> bool:
    """Whether the endpoint is not AWS itself (an emulator such as moto, via AWS_ENDPOINT_URL)."""
    url = str(session.client("cloudformation").meta.endpoint_url)
    host = url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    return not (host.endswith(".amazonaws.com") or host.endswith(".amazonaws.com.cn"))


def open_session(settings: Settings) -> tuple[Any, dict[str, str]]:
    """The session and the caller's identity, or one error naming what to fix."""
    session = aws.session(settings)
    return session, aws.identity(session)


def init(
    settings: Settings, say: Say, confirm: Confirm, config_file: Path | None = None
) -> InitResult:
    """Create or update the stack, check its promises, write its names into the settings file."""
    session, who = open_session(settings)
    say(f"Account {who['account']} in {settings.region}, as {who['arn']}.")
    action, deployed = stack.deploy(session, settings, say, confirm)
    promises = verify.check(session, settings, deployed)
    is_emulated = emulated(session)
    gaps = verify.gaps(promises)
    if gaps and not is_emulated:
        listed = "; ".join(f"{g.resource}: {g.what}" for g in gaps)
        raise LocalMlopsError(
            f"the stack {deployed.name} is {deployed.status} but the account lacks: {listed}",
            "someone changed these by hand, or a policy blocks them: run `local-mlops cloud init`"
            " again, and compare the stack's drift in the CloudFormation console",
        )
    values = stack.settings_values(deployed, set(FIELDS))
    values["region"] = settings.region
    path = settings_file.target_file(config_path(config_file))
    current = dict(_file_values(path))
    changed = {k: v for k, v in values.items() if current.get(k) != v}
    if changed:
        settings_file.update(path, changed)
    return InitResult(action, deployed, promises, is_emulated, path, changed)


def _file_values(path: Path) -> dict[str, Any]:
    import tomllib

    if not path.is_file():
        return {}
    data = tomllib.loads(path.read_text())
    values = data.get("local-mlops", data)
    return values if isinstance(values, dict) else {}


def status(settings: Settings) -> dict[str, Any]:
    """The stack, its promises and the project's resources with their costs (for --json)."""
    session, who = open_session(settings)
    found = stack.describe(session, settings)
    if found is not None:
        stack.owned(settings, found)
    promises = verify.check(session, settings, found) if found else []
    bucket = found.outputs.get("BucketName", "") if found else ""
    contents = inventory.collect(session, settings, bucket)
    return {
        "account": who["account"],
        "stack": dataclasses.asdict(found) if found else None,
        "emulated": emulated(session),
        "gaps": [p.as_dict() for p in verify.gaps(promises)],
        "promises_checked": len(promises),
        **contents.as_dict(),
    }


def plan_down(settings: Settings, keep_data: bool) -> tuple[Any, teardown.Plan]:
    session, _ = open_session(settings)
    return session, teardown.plan(session, settings, keep_data)


def down(session: Any, settings: Settings, found: teardown.Plan, say: Say) -> dict[str, Any]:
    """Carry out a confirmed plan, then look again: anything left is reported, not hidden."""
    report = teardown.tear_down(session, settings, found, say)
    left = teardown.plan(session, settings, found.keep_data).lines()
    return {"done": report.done, "kept": report.kept, "left": left}
