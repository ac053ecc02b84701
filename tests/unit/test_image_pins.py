"""The host's ``container`` extra pins what the images install (one version per package)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from local_mlops.config import load_settings
from local_mlops.devenv import image

ROOT = Path(__file__).resolve().parents[2]


def pins(lines: list[str]) -> dict[str, str]:
    found = {}
    for line in lines:
        name, sep, version = line.split("#")[0].strip().partition("==")
        if sep:
            found[name.lower()] = version
    return found


def test_container_extra_matches_the_image_requirements() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extra = pins(project["optional-dependencies"]["container"])
    settings = load_settings(config_file=ROOT / "tests" / "data" / "empty.toml", environ={})
    images = {}
    for spec in (image.runtime_spec(settings), image.serving_spec(settings)):
        for path in spec.requirement_files():
            images |= pins(path.read_text().splitlines())
    assert {"onnxruntime", "uvicorn", "torch", "numpy", "pillow"} <= set(images)
    assert {name: version for name, version in extra.items() if name in images} == {
        name: images[name] for name in extra if name in images
    }
    assert set(extra) & set(images) >= {"torch", "torchvision", "onnx", "onnxruntime", "uvicorn"}


def test_the_runtime_image_includes_the_serving_requirements() -> None:
    settings = load_settings(config_file=ROOT / "tests" / "data" / "empty.toml", environ={})
    runtime = [p.name for p in image.runtime_spec(settings).requirement_files()]
    assert runtime == ["requirements.txt", "requirements-serving.txt"]
    assert image.serving_spec(settings).dockerfile == "Dockerfile.serving"


def test_both_images_install_the_server_at_the_same_locked_versions() -> None:
    """The serving image installs from its own lock; every package in it (the server, ONNX
    Runtime and what they pull in) is at the runtime image's locked version."""
    settings = load_settings(config_file=ROOT / "tests" / "data" / "empty.toml", environ={})
    serving, runtime = image.serving_spec(settings), image.runtime_spec(settings)
    assert serving.requirements.name == "requirements-serving.lock"
    served = pins(serving.requirements.read_text().splitlines())
    locked = pins(runtime.requirements.read_text().splitlines())
    assert {"onnxruntime", "uvicorn", "numpy", "pillow", "protobuf"} <= set(served)
    assert "torch" not in served
    assert {name: locked.get(name) for name in served} == served
