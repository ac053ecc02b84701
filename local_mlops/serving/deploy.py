"""The local deployment controller: create, blue/green update with auto-rollback, delete, up/down.

An update follows SageMaker's blue/green ``DeploymentConfig``::

    start the green fleet ─> all /ping ─> shift traffic step by step (bake each step) ─> retire blue
                                │                 │ error rate above the limit, or a failed
                                │                 │ health check during a bake
                                └─────────────────┴─> roll back: all traffic to blue, retire green

Traffic moves by rewriting the endpoint's document and reloading the router, which swaps its
routing table whole; a fleet is stopped only after its in-flight requests finish, so a
successful update under load fails no request. Rollbacks say why, in the error and in the
endpoint's ``last_deployment``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from local_mlops.errors import LocalMlopsError
from local_mlops.serving import state as st
from local_mlops.serving.fleet import Instances, wait_healthy
from local_mlops.serving.policy import DeploymentPolicy

TRANSITIONAL = (st.CREATING, st.UPDATING, st.ROLLING_BACK, st.DELETING)
DRAIN_TIMEOUT = 70.0  # longer than SageMaker's 60 s model limit


class RouterControl(Protocol):
    def reload(self) -> None: ...

    def stats(self) -> dict[str, Any]: ...

    def flush(self) -> int: ...


@dataclass(frozen=True)
class ModelSpec:
    """What a fleet serves: one model package version."""

    version: int
    package_arn: str
    model_dir: str
    image: str


class LocalEndpoints:
    """Endpoints on this machine: documents in ``store``, containers via ``backend``."""

    def __init__(
        self,
        store: st.EndpointStore,
        backend: Instances,
        router: RouterControl,
        say: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.store = store
        self.backend = backend
        self.router = router
        self.say = say

    def _put(self, endpoint: st.Endpoint, reload: bool = True) -> None:
        self.store.put(endpoint)
        if reload:
            self.router.reload()

    # create or update
    def deploy(
        self,
        name: str,
        model: ModelSpec,
        policy: DeploymentPolicy,
        capture: st.DataCapture,
        instance_count: int | None = None,
        create_count: int = 1,
    ) -> st.Endpoint:
        """Create the endpoint, or update it blue/green to ``model``.

        ``instance_count`` (None: ``create_count`` for a new endpoint, the current size for an
        update) is the new fleet's size.
        """
        st.check_name(name)
        if instance_count is not None and instance_count < 1:
            raise LocalMlopsError("--instance-count must be at least 1")
        with self.store.lock(name):
            endpoint = self.store.find(name)
            if endpoint is not None and endpoint.status in TRANSITIONAL:
                endpoint = self._recover(endpoint)
            if endpoint is None or endpoint.status == st.FAILED or endpoint.version is None:
                return self._create(name, model, policy, capture, instance_count or create_count)
            endpoint.data_capture = capture
            return self._update(endpoint, model, policy, instance_count)

    def _fleet(self, model: ModelSpec, weight: float) -> st.Fleet:
        return st.Fleet(
            id=f"v{model.version}-{secrets.token_hex(2)}",
            version=model.version,
            model_package_arn=model.package_arn,
            model_dir=model.model_dir,
            image=model.image,
            weight=weight,
        )

    def _create(
        self,
        name: str,
        model: ModelSpec,
        policy: DeploymentPolicy,
        capture: st.DataCapture,
        count: int,
    ) -> st.Endpoint:
        fleet = self._fleet(model, 1.0)
        variant = st.Variant(st.DEFAULT_VARIANT, count, 1.0, [fleet])
        endpoint = st.Endpoint(name, st.CREATING, [variant], capture)
        self._put(endpoint, reload=False)
        self.say(f"Starting {count} instance(s) of version {model.version} for {name} ...")
        fleet.instances = self.backend.start(name, fleet, count)
        self._put(endpoint, reload=False)
        problem = wait_healthy(self.backend, fleet.instances, policy.ping_timeout)
        if problem:
            self.backend.stop(fleet.instances)
            fleet.instances = []
            endpoint.status, endpoint.failure_reason = st.FAILED, problem
            endpoint.last_deployment = _record(model.version, "Failed", problem)
            self._put(endpoint)
            raise LocalMlopsError(
                f"endpoint {name} failed to start version {model.version}: {problem}",
                f"see `local-mlops endpoints logs {name}`; fix the model, then deploy again",
            )
        endpoint.status, endpoint.failure_reason = st.IN_SERVICE, ""
        endpoint.last_deployment = _record(model.version, "Succeeded", "created")
        self._put(endpoint)
        return endpoint

    def _update(
        self,
        endpoint: st.Endpoint,
        model: ModelSpec,
        policy: DeploymentPolicy,
        instance_count: int | None,
    ) -> st.Endpoint:
        variant = endpoint.variants[0]
        blue = variant.serving
        assert blue is not None
        count = instance_count or variant.instance_count
        green = self._fleet(model, 0.0)
        variant.fleets = [blue, green]
        endpoint.status = st.UPDATING
        endpoint.last_deployment = {
            **_record(model.version, "InProgress", policy.describe()),
            "from_version": blue.version,
        }
        self._put(endpoint, reload=False)
        self.say(f"Blue/green: starting {count} instance(s) of version {model.version} ...")
        green.instances = self.backend.start(endpoint.name, green, count)
        self._put(endpoint, reload=False)
        problem = wait_healthy(self.backend, green.instances, policy.ping_timeout)
        if problem:
            return self._roll_back(
                endpoint, blue, green, f"the new fleet failed its health check: {problem}"
            )
        for share in policy.steps():
            green.weight, blue.weight = share, round(1 - share, 6)
            self._put(endpoint)
            self.say(
                f"{share:.0%} of traffic on version {model.version}; baking {policy.bake_seconds:g} s"
            )
            problem = self._bake(endpoint.name, green, policy)
            if problem:
                return self._roll_back(endpoint, blue, green, problem)
        variant.fleets, variant.instance_count = [green], count
        green.weight = 1.0
        self._put(endpoint)
        self._retire(endpoint.name, blue)
        endpoint.status = st.IN_SERVICE
        endpoint.last_deployment = {
            **_record(model.version, "Succeeded", policy.describe()),
            "from_version": blue.version,
        }
        self._put(endpoint)
        return endpoint

    def _fleet_stats(self, endpoint: str, fleet: st.Fleet) -> dict[str, int]:
        for row in self.router.stats().get("fleets", []):
            if row["endpoint"] == endpoint and row["fleet"] == fleet.id:
                return dict(row)
        return {"requests": 0, "errors": 0, "inflight": 0}

    def _bake(self, endpoint: str, green: st.Fleet, policy: DeploymentPolicy) -> str | None:
        """Watch the new fleet for one bake period; the reason to roll back, if any."""
        deadline = time.monotonic() + policy.bake_seconds
        next_ping = 0.0
        while True:
            stats = self._fleet_stats(endpoint, green)
            requests, errors = stats["requests"], stats["errors"]
            if errors and errors / max(requests, 1) > policy.max_error_rate:
                return (
                    f"error rate {errors / requests:.0%} on the new fleet ({errors} of {requests} "
                    f"requests failed) is above the {policy.max_error_rate:.0%} limit"
                )
            if time.monotonic() >= next_ping:
                for instance in green.instances:
                    problem = self.backend.health(instance)
                    if problem:
                        return f"health check failed on {instance.name}: {problem}"
                next_ping = time.monotonic() + 1.0
            if time.monotonic() >= deadline:
                return None
            time.sleep(min(0.25, max(0.0, deadline - time.monotonic())))

    def _roll_back(
        self, endpoint: st.Endpoint, blue: st.Fleet, green: st.Fleet, reason: str
    ) -> st.Endpoint:
        self.say(f"Rolling back to version {blue.version}: {reason}")
        endpoint.status = st.ROLLING_BACK
        blue.weight, green.weight = 1.0, 0.0
        self._put(endpoint)
        self._retire(endpoint.name, green)
        endpoint.variants[0].fleets = [blue]
        endpoint.status = st.IN_SERVICE
        endpoint.last_deployment = {
            **_record(green.version, "RolledBack", reason),
            "from_version": blue.version,
        }
        self._put(endpoint)
        raise LocalMlopsError(
            f"the update of {endpoint.name} to version {green.version} rolled back: {reason}",
            f"{endpoint.name} still serves version {blue.version}; "
            f"see `local-mlops endpoints describe {endpoint.name}`",
        )

    def _retire(self, endpoint: str, fleet: st.Fleet) -> None:
        """Stop a fleet once the router has no request in flight on it."""
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while self._fleet_stats(endpoint, fleet)["inflight"] and time.monotonic() < deadline:
            time.sleep(0.05)
        self.backend.stop(fleet.instances)
        fleet.instances = []

    def _recover(self, endpoint: st.Endpoint) -> st.Endpoint | None:
        """An endpoint left mid-change by an interrupted command: back to its blue fleet."""
        self.say(f"{endpoint.name} was left {endpoint.status}; restoring its serving fleet")
        if endpoint.status == st.DELETING:
            self._delete_locked(endpoint)
            return None
        variant = endpoint.variants[0]
        keep = variant.fleets[0]
        for fleet in variant.fleets[1:]:
            self.backend.stop(fleet.instances)
        variant.fleets, keep.weight = [keep], 1.0
        endpoint.status = st.IN_SERVICE if keep.instances else st.FAILED
        self._put(endpoint)
        return endpoint

    # delete, up, down
    def delete(self, name: str) -> None:
        """Stop routing, flush captured data, remove the containers and the document."""
        with self.store.lock(name):
            self._delete_locked(self.store.get(name))

    def _delete_locked(self, endpoint: st.Endpoint) -> None:
        endpoint.status = st.DELETING
        self._put(endpoint)
        self.router.flush()
        for variant in endpoint.variants:
            for fleet in variant.fleets:
                self._retire(endpoint.name, fleet)
        self.store.remove(endpoint.name)
        self.router.reload()

    def up(self, timeout: float = 120.0) -> list[str]:
        """Start every endpoint's containers that are not running; the endpoints brought back."""
        brought = []
        for endpoint in self.store.list():
            if endpoint.status in TRANSITIONAL:
                with self.store.lock(endpoint.name):
                    recovered = self._recover(endpoint)
                if recovered is None:
                    continue
                endpoint = recovered
            if endpoint.status != st.IN_SERVICE:
                continue
            for variant in endpoint.variants:
                for fleet in variant.fleets:
                    self.backend.ensure(endpoint.name, fleet)
            problem = wait_healthy(self.backend, endpoint.instances(), timeout)
            if problem:
                self.say(f"endpoint {endpoint.name} is not healthy yet: {problem}")
            brought.append(endpoint.name)
        self.router.reload()
        return brought


def _record(version: int, status: str, detail: str) -> dict[str, Any]:
    return {"version": version, "status": status, "reason": detail, "time": st.now()}
