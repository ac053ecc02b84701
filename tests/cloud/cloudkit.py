"""What the cloud tests share: the account's names, the network log and a Docker engine double."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from local_mlops import __version__

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's account
ROLE_NAME = "LocalMlopsExecutionRole"
BUCKET = "local-mlops-cloud-test"
ECR_REPOSITORY = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/local-mlops-runtime"
SERVING_REPOSITORY = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/local-mlops-serving"
LOOPBACK = {"127.0.0.1", "::1", "localhost"}
PIPELINE = "local-mlops-pipeline"
IMAGE_URI = f"{ECR_REPOSITORY}:{__version__}"
SERVING_URI = f"{SERVING_REPOSITORY}:{__version__}"


@dataclass
class NetworkLog:
    """What the code under test tried to reach."""

    moto_url: str
    refused: list[str] = field(default_factory=list)  # off-loopback lookups and connections
    botocore_urls: list[str] = field(default_factory=list)

    def off_emulator(self) -> list[str]:
        return [u for u in self.botocore_urls if not u.startswith(self.moto_url)]


class FakeImage:
    def __init__(self, engine: FakeEngine, name: str) -> None:
        self.engine = engine
        self.name = name

    @property
    def attrs(self) -> dict[str, Any]:
        return {"Id": "sha256:" + "1" * 64, "RepoDigests": list(self.engine.repo_digests)}

    def tag(self, repository: str, tag: str | None = None) -> bool:
        self.engine.tags.append((self.name, f"{repository}:{tag}"))
        return True


class FakeImages:
    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine

    def get(self, name: str) -> FakeImage:
        from docker.errors import ImageNotFound

        if name not in self.engine.local_images:
            raise ImageNotFound(f"No such image: {name}")
        return FakeImage(self.engine, name)


class FakeAPI:
    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine

    def push(self, repository: str, tag: str | None = None, **kwargs: Any) -> Iterator[dict]:
        self.engine.pushes.append({"repository": repository, "tag": tag, **kwargs})
        return iter(self.engine.push_stream)


@dataclass
class FakeEngine:
    """Records what a Docker engine was asked to do; answers as an engine with no route to the
    registry would (``login_error``) or with the chunks of ``push_stream``."""

    local_images: set[str] = field(default_factory=set)
    repo_digests: list[str] = field(default_factory=list)
    login_error: str = ""
    push_stream: list[dict[str, Any]] = field(default_factory=list)
    logins: list[dict[str, Any]] = field(default_factory=list)
    tags: list[tuple[str, str]] = field(default_factory=list)
    pushes: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.images = FakeImages(self)
        self.api = FakeAPI(self)

    def login(self, username: str, password: str, registry: str, **kwargs: Any) -> dict:
        from docker.errors import APIError

        self.logins.append({"username": username, "password": password, "registry": registry})
        if self.login_error:
            raise APIError("500 Server Error", explanation=self.login_error)
        return {"Status": "Login Succeeded"}


def image_already_in_ecr(aws: Any, engine: FakeEngine) -> str:
    """ECR holds the tag of both images, and the local images record those digests (as after
    an earlier push)."""
    ecr = aws.client("ecr")
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {},
        "layers": [],
    }
    digest = ""
    engine.repo_digests = []
    for repository in (ECR_REPOSITORY, SERVING_REPOSITORY):
        name = repository.split("/", 1)[1]
        ecr.create_repository(repositoryName=name)
        pushed = ecr.put_image(
            repositoryName=name, imageManifest=json.dumps(manifest), imageTag=__version__
        )
        digest = str(pushed["image"]["imageId"]["imageDigest"])
        engine.repo_digests.append(f"{repository}@{digest}")
    return digest


def flat(text: str) -> str:
    """CLI output with rich's line wrapping undone."""
    return " ".join(text.split())
