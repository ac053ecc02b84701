"""Blue/green updates against fake model servers behind the real router."""

from __future__ import annotations

import json
import threading
import time

import pytest
from serving_fakes import FakeInstances, RouterThread

from local_mlops.errors import LocalMlopsError
from local_mlops.serving import state as st
from local_mlops.serving.deploy import LocalEndpoints, ModelSpec
from local_mlops.serving.loadgen import SteadyLoad
from local_mlops.serving.policy import DeploymentPolicy

CAPTURE = st.DataCapture(False, 100, "")


def spec(version: int) -> ModelSpec:
    return ModelSpec(version, f"arn:aws:sagemaker:r:0:model-package/g/{version}", "/models", "img")


def controller(
    store: st.EndpointStore, instances: FakeInstances, router: RouterThread
) -> LocalEndpoints:
    return LocalEndpoints(store, instances, router)


def steady_load(router: RouterThread) -> SteadyLoad:
    url = f"{router.url}/endpoints/digits/invocations"
    return SteadyLoad(url, b"img", threads=4, read=lambda body: json.loads(body)["version"])


def test_create_then_update_under_load_fails_no_request(
    store: st.EndpointStore, instances: FakeInstances, router: RouterThread
) -> None:
    endpoints = controller(store, instances, router)
    endpoints.deploy("digits", spec(1), DeploymentPolicy(), CAPTURE, instance_count=2)
    load = steady_load(router)
    try:
        time.sleep(0.3)
        policy = DeploymentPolicy("linear", 34, bake_seconds=0.3)
        endpoint = endpoints.deploy("digits", spec(2), policy, CAPTURE)
        time.sleep(0.3)
    finally:
        load.finish()
    assert load.failures == []
    assert load.ok > 20
    assert endpoint.status == st.IN_SERVICE and endpoint.version == 2
    assert endpoint.last_deployment["status"] == "Succeeded"
    assert load.answers[0] == 1 and load.answers[-1] == 2
    assert len(instances.models) == 2  # the blue fleet is gone
    assert store.get("digits").variants[0].fleets[0].version == 2


def test_an_erroring_version_rolls_back_by_itself_and_says_why(
    store: st.EndpointStore, instances: FakeInstances, router: RouterThread
) -> None:
    endpoints = controller(store, instances, router)
    endpoints.deploy("digits", spec(1), DeploymentPolicy(), CAPTURE)
    instances.broken.add(2)
    load = steady_load(router)
    try:
        with pytest.raises(LocalMlopsError) as error:
            endpoints.deploy(
                "digits", spec(2), DeploymentPolicy("canary", 50, bake_seconds=5), CAPTURE
            )
    finally:
        load.finish()
    assert "rolled back: error rate" in error.value.message
    assert "still serves version 1" in (error.value.fix or "")
    endpoint = store.get("digits")
    assert endpoint.status == st.IN_SERVICE and endpoint.version == 1
    assert endpoint.last_deployment["status"] == "RolledBack"
    assert "above the 5% limit" in endpoint.last_deployment["reason"]
    assert len(instances.models) == 1


def test_a_new_fleet_that_never_gets_healthy_rolls_back_before_any_traffic(
    store: st.EndpointStore, instances: FakeInstances, router: RouterThread
) -> None:
    endpoints = controller(store, instances, router)
    endpoints.deploy("digits", spec(1), DeploymentPolicy(), CAPTURE)
    instances.unhealthy.add(2)
    with pytest.raises(LocalMlopsError) as error:
        endpoints.deploy("digits", spec(2), DeploymentPolicy(ping_timeout=1), CAPTURE)
    assert "failed its health check" in error.value.message
    assert "did not answer /ping within 1 s" in error.value.message
    assert store.get("digits").version == 1


def test_a_failing_health_check_during_bake_rolls_back(
    store: st.EndpointStore, instances: FakeInstances, router: RouterThread
) -> None:
    endpoints = controller(store, instances, router)
    endpoints.deploy("digits", spec(1), DeploymentPolicy(), CAPTURE)

    def sicken() -> None:
        time.sleep(0.6)
        for name, model in instances.models.items():
            if "-v2-" in name:
                model.healthy = False

    threading.Thread(target=sicken, daemon=True).start()
    with pytest.raises(LocalMlopsError) as error:
        endpoints.deploy("digits", spec(2), DeploymentPolicy(bake_seconds=5), CAPTURE)
    assert "health check failed on" in error.value.message
    assert store.get("digits").version == 1


def test_traffic_steps_follow_the_deployment_config() -> None:
    assert DeploymentPolicy().steps() == [1.0]
    assert DeploymentPolicy("canary", 10).steps() == [0.1, 1.0]
    assert DeploymentPolicy("linear", 25).steps() == [0.25, 0.5, 0.75, 1.0]
    assert DeploymentPolicy("linear", 40).steps() == [0.4, 0.8, 1.0]
    with pytest.raises(LocalMlopsError, match="out of range"):
        DeploymentPolicy("canary", 0)


def test_delete_removes_containers_and_the_route(
    store: st.EndpointStore, instances: FakeInstances, router: RouterThread
) -> None:
    endpoints = controller(store, instances, router)
    endpoints.deploy("digits", spec(1), DeploymentPolicy(), CAPTURE, instance_count=2)
    endpoints.delete("digits")
    assert instances.models == {} and store.names() == []
    assert "digits" not in router.router.routes
    with pytest.raises(LocalMlopsError, match="no local endpoint named"):
        endpoints.delete("digits")


def test_an_interrupted_update_is_undone_by_up(
    store: st.EndpointStore, instances: FakeInstances, router: RouterThread
) -> None:
    endpoints = controller(store, instances, router)
    endpoint = endpoints.deploy("digits", spec(1), DeploymentPolicy(), CAPTURE)
    green = st.Fleet(
        "v2-dead",
        2,
        "arn",
        "/m",
        "img",
        instances.start("digits", st.Fleet("v2-dead", 2, "", "", ""), 1),
        0.5,
    )
    endpoint.variants[0].fleets.append(green)
    endpoint.status = st.UPDATING
    store.put(endpoint)
    assert endpoints.up() == ["digits"]
    endpoint = store.get("digits")
    assert endpoint.status == st.IN_SERVICE and endpoint.version == 1
    assert len(endpoint.variants[0].fleets) == 1 and len(instances.models) == 1


def test_bad_names_and_counts_are_refused(
    store: st.EndpointStore, instances: FakeInstances, router: RouterThread
) -> None:
    endpoints = controller(store, instances, router)
    with pytest.raises(LocalMlopsError, match="not a valid endpoint name"):
        endpoints.deploy("bad_name!", spec(1), DeploymentPolicy(), CAPTURE)
    with pytest.raises(LocalMlopsError, match="at least 1"):
        endpoints.deploy("digits", spec(1), DeploymentPolicy(), CAPTURE, instance_count=0)
