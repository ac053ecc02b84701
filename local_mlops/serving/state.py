"""Local endpoints as documents: what each endpoint serves, on which containers, with which weights.

One JSON file per endpoint under ``<state_dir>/serving/endpoints/``. The CLI writes them (under a
per-endpoint file lock) and the router reads them on reload, so an endpoint survives the CLI, a
``down`` and a reboot: ``up`` starts what the documents describe.

An endpoint has production variants (SageMaker's ``ProductionVariants``, weighted); a variant has
one fleet, or two while a blue/green update shifts traffic between them (weighted within the
variant); a fleet has instances, each one container on ``127.0.0.1:<port>`` and, for the router,
on a Unix socket in a folder of the state dir.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local_mlops.errors import LocalMlopsError

NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")  # SageMaker's endpoint names
DEFAULT_VARIANT = "AllTraffic"
JSON_CONTENT_TYPES = ("application/json",)
# SageMaker's EndpointStatus values the local lifecycle uses.
CREATING, UPDATING, ROLLING_BACK, IN_SERVICE, DELETING, FAILED, OUT_OF_SERVICE = (
    "Creating",
    "Updating",
    "RollingBack",
    "InService",
    "Deleting",
    "Failed",
    "OutOfService",
)


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise LocalMlopsError(
            f"{name!r} is not a valid endpoint name",
            "use up to 63 letters, digits and hyphens, starting with a letter or digit",
        )
    return name


@dataclass
class Instance:
    name: str  # the container's name
    port: int  # on 127.0.0.1
    # The host path of the Unix socket it also listens on ("" = none): the router's way in.
    socket: str = ""


@dataclass
class Fleet:
    """Containers of one model version (blue or green during an update)."""

    id: str
    version: int
    model_package_arn: str
    model_dir: str
    image: str
    instances: list[Instance] = field(default_factory=list)
    weight: float = 1.0


@dataclass
class Variant:
    name: str
    instance_count: int
    weight: float = 1.0
    fleets: list[Fleet] = field(default_factory=list)

    @property
    def serving(self) -> Fleet | None:
        """The fleet with the most traffic (the one the variant is 'on')."""
        return max(self.fleets, key=lambda f: f.weight, default=None)


@dataclass
class DataCapture:
    """SageMaker's ``DataCaptureConfig`` for one endpoint."""

    enabled: bool = True
    sampling_percentage: int = 100
    destination: str = ""  # s3://BUCKET/datacapture
    json_content_types: list[str] = field(default_factory=lambda: list(JSON_CONTENT_TYPES))


@dataclass
class Endpoint:
    name: str
    status: str
    variants: list[Variant]
    data_capture: DataCapture
    creation_time: str = field(default_factory=now)
    last_modified_time: str = field(default_factory=now)
    failure_reason: str = ""
    # The last deployment: {"version", "status": Succeeded|RolledBack|Failed, "reason", ...}.
    last_deployment: dict[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> int | None:
        fleet = self.variants[0].serving if self.variants else None
        return fleet.version if fleet else None

    def variant(self, name: str) -> Variant:
        for variant in self.variants:
            if variant.name == name:
                return variant
        raise LocalMlopsError(f"endpoint {self.name} has no variant {name!r}")

    def instances(self) -> list[Instance]:
        return [i for v in self.variants for f in v.fleets for i in f.instances]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Endpoint:
        variants = [
            Variant(
                name=v["name"],
                instance_count=int(v["instance_count"]),
                weight=float(v.get("weight", 1.0)),
                fleets=[
                    Fleet(
                        **{k: f[k] for k in f if k != "instances"},
                        instances=[Instance(**i) for i in f.get("instances", [])],
                    )
                    for f in v.get("fleets", [])
                ],
            )
            for v in doc.get("variants", [])
        ]
        return cls(
            name=doc["name"],
            status=doc["status"],
            variants=variants,
            data_capture=DataCapture(**doc.get("data_capture", {})),
            creation_time=doc.get("creation_time", now()),
            last_modified_time=doc.get("last_modified_time", now()),
            failure_reason=doc.get("failure_reason", ""),
            last_deployment=doc.get("last_deployment", {}),
        )


class EndpointStore:
    """The endpoint documents in the state dir."""

    def __init__(self, state_path: Path) -> None:
        self.root = state_path / "serving" / "endpoints"

    def _path(self, name: str) -> Path:
        return self.root / f"{check_name(name)}.json"

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.stem for p in self.root.glob("*.json"))

    def list(self) -> list[Endpoint]:
        found = []
        for name in self.names():
            endpoint = self.find(name)
            if endpoint:
                found.append(endpoint)
        return found

    def find(self, name: str) -> Endpoint | None:
        try:
            return Endpoint.from_dict(json.loads(self._path(name).read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            raise LocalMlopsError(
                f"the state of endpoint {name} is unreadable ({exc})",
                f"delete {self._path(name)} and deploy again",
            ) from exc

    def get(self, name: str) -> Endpoint:
        endpoint = self.find(name)
        if endpoint is None:
            raise LocalMlopsError(
                f"no local endpoint named {name!r}",
                "list them with `local-mlops endpoints list`, or `local-mlops deploy` one",
            )
        return endpoint

    def put(self, endpoint: Endpoint) -> None:
        """Write atomically (the router may read at any moment)."""
        endpoint.last_modified_time = now()
        path = self._path(endpoint.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = path.with_suffix(f".{os.getpid()}.tmp")
        scratch.write_text(json.dumps(endpoint.to_dict(), indent=1))
        scratch.replace(path)

    def remove(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """One writer per endpoint: a second deploy waits for the first to finish or fail."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / f".{check_name(name)}.lock").open("w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise LocalMlopsError(
                    f"endpoint {name} is being changed by another command",
                    "wait for it to finish, then retry",
                ) from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
