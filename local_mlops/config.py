"""Settings: one frozen, typed object, and the only place that reads the environment.

Precedence, highest first: CLI flag > environment (``LOCAL_MLOPS_*`` and the standard ``AWS_*``)
> ``local-mlops.toml`` > default. ``Settings.sources`` records where each value came from, which
``local-mlops config show`` prints.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from local_mlops import __version__
from local_mlops.errors import LocalMlopsError

CONFIG_FILE_NAME = "local-mlops.toml"
ENV_PREFIX = "LOCAL_MLOPS_"

Target = Literal["local", "cloud"]
DEPLOYMENT_TRAFFIC = ("all-at-once", "canary", "linear")

# Standard AWS variables that also set a field (checked after LOCAL_MLOPS_<FIELD>).
AWS_ENV = {
    "region": ("AWS_REGION", "AWS_DEFAULT_REGION"),
    "s3_endpoint": ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
    "profile": ("AWS_PROFILE",),
}


def _default_state_dir() -> str:
    return str(Path.home() / ".local-mlops")


@dataclass(frozen=True)
class Settings:
    """Every setting the orchestration reads. Build it with ``load_settings``."""

    target: Target = "local"
    region: str = "us-east-1"
    profile: str = ""
    bucket: str = "local-mlops"
    # Empty: use the dev environment's emulator if it runs, else start an embedded one.
    s3_endpoint: str = ""
    emulator_port: int = 4566
    role_arn: str = "arn:aws:iam::000000000000:role/LocalMlopsExecutionRole"
    # The role EventBridge Scheduler assumes to start scheduled monitoring jobs (empty: role_arn;
    # it must trust scheduler.amazonaws.com and may pass role_arn to SageMaker).
    scheduler_role_arn: str = ""
    image_name: str = "local-mlops-runtime"
    image_tag: str = __version__
    # Set to an ECR repository URI (ACCOUNT.dkr.ecr.REGION.amazonaws.com/NAME) for the cloud.
    image_repository: str = ""
    # The serving image (endpoints, batch transform): same tag, its own repository.
    serving_image_name: str = "local-mlops-serving"
    serving_image_repository: str = ""
    base_image: str = "python:3.11-slim-bookworm"
    torch_index_url: str = "https://download.pytorch.org/whl/cpu"
    pip_index_url: str = "https://pypi.org/simple"
    ca_bundle: str = ""
    processing_instance_type: str = "ml.m5.large"
    training_instance_type: str = "ml.m5.xlarge"
    dataset: str = "digits"
    data: str = ""
    accuracy_threshold: float = 0.9
    backbone: str = "resnet18"
    epochs: int = 6
    learning_rate: float = 0.001
    # none | imagenet | a state-dict file path or s3:// URI (see weights.py)
    weights: str = "none"
    model_package_group: str = "local-mlops-image-classifier"
    approval_status: str = "PendingManualApproval"
    pipeline_name: str = "local-mlops-pipeline"
    # Cores the local jobs of all runs on this machine share (0: all of this machine's cores).
    local_cores: int = 0
    # Approving a version deploys it; a finished run approves its new version. Unset: on for
    # the local target, off for the cloud (see load_settings).
    auto_approve: bool = False
    # After auto_approve deploys a local endpoint: a few dozen clean requests and one monitoring
    # job, so the main job ends with a monitoring report (monitoring/first_report.py).
    first_report: bool = True
    endpoint_name: str = "local-mlops-endpoint"
    # The image endpoints run; empty: the serving image (serving_image_uri).
    endpoint_image: str = ""
    endpoint_instance_type: str = "ml.m5.large"
    endpoint_instance_count: int = 1
    # Batch transform (`local-mlops transform --cloud`).
    transform_instance_type: str = "ml.m5.large"
    # The local SageMaker Runtime router listens on 127.0.0.1:router_port.
    router_port: int = 8090
    data_capture: bool = True
    capture_sampling_percentage: int = 100
    # Blue/green updates: all-at-once | canary | linear; step size in percent; bake per step.
    deployment_traffic: str = "all-at-once"
    deployment_step_percent: int = 10
    deployment_bake_seconds: float = 10.0
    rollback_error_rate: float = 0.05
    endpoint_ping_timeout: float = 120.0
    # Name prefix (and tag value) of everything `local-mlops cloud init` creates in the account.
    project: str = "local-mlops"
    state_dir: str = field(default_factory=_default_state_dir)
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def image_uri(self) -> str:
        """The runtime image name; the ECR URI when a repository is configured."""
        repository = self.image_repository or self.image_name
        return f"{repository}:{self.image_tag}"

    @property
    def serving_image_uri(self) -> str:
        """The serving image name; the ECR URI when a serving repository is configured."""
        repository = self.serving_image_repository or self.serving_image_name
        return f"{repository}:{self.image_tag}"

    @property
    def endpoint_image_uri(self) -> str:
        """The image endpoints run: ``endpoint_image``, else the lean serving image."""
        return self.endpoint_image or self.serving_image_uri

    @property
    def state_path(self) -> Path:
        return Path(self.state_dir).expanduser()

    def source_of(self, name: str) -> str:
        return self.sources.get(name, "default")

    def public_items(self) -> list[tuple[str, Any, str]]:
        """(name, value, source) for every field, for display."""
        return [
            (f.name, getattr(self, f.name), self.source_of(f.name))
            for f in dataclasses.fields(self)
            if f.name != "sources"
        ]


FIELDS = {f.name: f for f in dataclasses.fields(Settings) if f.name != "sources"}


def _coerce(name: str, raw: Any, origin: str) -> Any:
    """Turn a raw value from a file, the environment or a flag into the field's type."""
    default = Settings.__dataclass_fields__[name].default
    kind = type(default) if default is not dataclasses.MISSING else str
    try:
        if kind is bool:
            if isinstance(raw, bool):
                return raw
            return str(raw).strip().lower() in {"1", "true", "yes", "on"}
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
        return str(raw)
    except (TypeError, ValueError) as exc:
        raise LocalMlopsError(
            f"setting {name!r} from {origin} is {raw!r}, which is not a {kind.__name__}",
            f"set {name} to a {kind.__name__}",
        ) from exc


def find_config_file(start: Path | None = None) -> Path | None:
    """``local-mlops.toml`` in the current directory or one of its parents."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / CONFIG_FILE_NAME
        if candidate.is_file():
            return candidate
    return None


def _read_file(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise LocalMlopsError(f"cannot read {path}: {exc}", f"fix or remove {path}") from exc
    values = data.get("local-mlops", data)
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise LocalMlopsError(
            f"{path} has unknown settings: {', '.join(unknown)}",
            "see `local-mlops config show` for the valid names",
        )
    return values


def config_path(
    config_file: Path | None = None, environ: Mapping[str, str] | None = None
) -> Path | None:
    """The settings file in use: --config, else $LOCAL_MLOPS_CONFIG, else the nearest one."""
    env = os.environ if environ is None else environ
    path = config_file
    if path is None and env.get(ENV_PREFIX + "CONFIG"):
        path = Path(env[ENV_PREFIX + "CONFIG"])
    if path is None:
        return find_config_file()
    if not path.is_file():
        raise LocalMlopsError(f"config file {path} does not exist", "create it or drop --config")
    return path


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve every setting from flags, environment, config file and defaults."""
    env = os.environ if environ is None else environ
    path = config_path(config_file, env)
    file_values = _read_file(path) if path else {}

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name in FIELDS:
        flag = (overrides or {}).get(name)
        env_names = (ENV_PREFIX + name.upper(), *AWS_ENV.get(name, ()))
        env_hit = next((n for n in env_names if env.get(n)), None)
        if flag is not None:
            values[name], sources[name] = _coerce(name, flag, "a flag"), "flag"
        elif env_hit:
            values[name] = _coerce(name, env[env_hit], f"${env_hit}")
            sources[name] = f"env {env_hit}"
        elif name in file_values:
            values[name] = _coerce(name, file_values[name], str(path))
            sources[name] = f"file {path}"
    if "ca_bundle" not in values:
        for var in ("SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE"):
            if env.get(var):
                values["ca_bundle"], sources["ca_bundle"] = env[var], f"env {var}"
                break
    if "auto_approve" not in values:
        values["auto_approve"] = values.get("target", "local") == "local"
        sources["auto_approve"] = "default (on for local, off for cloud)"
    settings = Settings(**values, sources=sources)
    if settings.target not in ("local", "cloud"):
        raise LocalMlopsError(f"unknown target {settings.target!r}", "use local or cloud")
    if settings.deployment_traffic not in DEPLOYMENT_TRAFFIC:
        raise LocalMlopsError(
            f"unknown deployment_traffic {settings.deployment_traffic!r}",
            f"use one of {', '.join(DEPLOYMENT_TRAFFIC)}",
        )
    return settings


def process_environ() -> dict[str, str]:
    """A copy of the environment, for starting subprocesses."""
    return dict(os.environ)
