"""A real ``docker push`` by the Docker engine, to a registry on loopback (``registry.py``).

moto has no registry (see test_push.py), so this proves the other half: ``image.push`` drives a
real engine through tag + push, reads its progress stream and returns the digest the registry
stored. A repository that is not ECR needs no ECR calls, so this test needs no AWS emulator.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator

import pytest
from registry import running_registry

from local_mlops.config import load_settings
from local_mlops.devenv import dockerhost
from local_mlops.targets import cloud

pytestmark = pytest.mark.docker


@pytest.fixture
def tiny_image() -> Iterator[str]:
    """A one-file image made with ``docker import`` (nothing to pull)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = b"local-mlops push test\n"
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    client = dockerhost.docker_client()
    answer = client.api.import_image_from_data(
        buffer.getvalue(), repository="local-mlops-push-test"
    )
    image_id = str(json.loads(answer.strip().splitlines()[-1])["status"])
    yield image_id
    client.images.remove(image_id, force=True)


def test_push_to_a_real_registry(tiny_image: str) -> None:
    client = dockerhost.docker_client()
    with running_registry() as (host, store):
        settings = load_settings(
            {
                "target": "cloud",
                "image_repository": f"{host}/local-mlops-runtime",
                "image_tag": "t1",
            }
        )
        client.images.get(tiny_image).tag(f"{host}/local-mlops-runtime", tag="t1")
        said: list[str] = []
        layers: list[tuple[str, str]] = []

        result = cloud.push_runtime_image(
            settings, said.append, lambda layer, status, *_: layers.append((layer, status))
        )

        assert not result.skipped
        assert result.uri == f"{host}/local-mlops-runtime:t1"
        manifest = store.manifests[("local-mlops-runtime", "t1")]
        assert result.digest.startswith("sha256:")
        assert ("local-mlops-runtime", result.digest) in store.manifests
        assert manifest == store.manifests[("local-mlops-runtime", result.digest)]
        layer_digests = [layer["digest"] for layer in json.loads(manifest)["layers"]]
        assert layer_digests and all(d in store.blobs for d in layer_digests)
        assert any(status == "Pushed" for _, status in layers)
        # The engine now records the pushed digest (what the ECR skip check compares against).
        repo_digests = client.images.get(result.uri).attrs["RepoDigests"]
        assert f"{host}/local-mlops-runtime@{result.digest}" in repo_digests
        assert any("Pushing" in line for line in said) and any("Pushed" in line for line in said)
        client.images.remove(result.uri)
