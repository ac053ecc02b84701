"""A one-host job's container started with ``docker run`` instead of ``docker-compose up``.

Local mode writes a compose file for every job and runs ``docker-compose up --build
--abort-on-container-exit``, then streams that command's output. For one container, compose v1
costs about 1.0 s a job against 0.45 s for ``docker run`` of the same container (its own
Python start, the project and network checks, ``Creating ...`` / ``Attaching ...`` lines with
ANSI codes in the job's output). ``docker_run_command`` turns the compose file's one service
into the equivalent ``docker run``: same image, name, entrypoint or command, volumes,
environment (in a file beside the compose file, as the compose file holds it), network and
alias, labels and GPUs, a TTY as compose gives it (stdout and stderr in one ordered log).
The container is left stopped as compose leaves it, labelled with compose's working-dir
label, so finding, inspecting and removing a job's containers is the same for both.

A job with network isolation (the pipeline's processing steps, which read and write only their
mounted folders) runs with no network, as SageMaker runs it. Several hosts (distributed training)
keep compose, and their network: ``--abort-on-container-exit`` across
containers is what stops the others when one fails. A service with a key this does not
translate keeps compose too, so nothing the SDK asks for is dropped.
"""

from __future__ import annotations

import os
import subprocess
import threading

WORKING_DIR_LABEL = "com.docker.compose.project.working_dir"
ENV_FILE = "job.env"
NETWORK = "sagemaker-local"

# The service keys local mode writes for a job (2.257.7 ``_create_docker_host``) plus ``labels``
# from the session's ``local.container_config``; anything else goes through compose.
TRANSLATED = frozenset(
    (
        "image",
        "container_name",
        "stdin_open",
        "tty",
        "volumes",
        "environment",
        "command",
        "entrypoint",
        "networks",
        "deploy",
        "labels",
    )
)

_network_lock = threading.Lock()
_network_ready = False


def docker_run_command(
    compose_data: dict, container_root: str, isolated: bool = False
) -> list[str] | None:
    """``docker run`` for the compose file's one service, or None when compose must run it.

    ``isolated``: the job asked for SageMaker's network isolation (``EnableNetworkIsolation``):
    the container gets no network at all (``--network none``), which also spares the engine
    setting up its interface, ~0.1 s a container here.
    """
    services = compose_data.get("services") or {}
    if len(services) != 1:
        return None
    ((host, service),) = services.items()
    if set(service) - TRANSLATED:
        return None
    environment = [str(item) for item in service.get("environment") or []]
    if any("\n" in item or "\r" in item for item in environment):
        return None  # an env file holds one line a variable
    networks = service.get("networks") or {}
    if set(networks) - {NETWORK}:
        return None
    argv = ["docker", "run", "--name", str(service["container_name"])]
    if service.get("tty"):
        argv.append("--tty")
    labels = dict(service.get("labels") or {})
    labels[WORKING_DIR_LABEL] = container_root
    for key, value in labels.items():
        argv += ["--label", f"{key}={value}"]
    if isolated:
        argv += ["--network", "none"]
    elif networks:
        argv += ["--network", NETWORK]
        for alias in (networks[NETWORK] or {}).get("aliases") or [host]:
            argv += ["--network-alias", str(alias)]
    for volume in service.get("volumes") or []:
        argv += ["--volume", str(volume)]
    if environment:
        env_file = os.path.join(container_root, ENV_FILE)
        fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write("".join(f"{item}\n" for item in environment))
        argv += ["--env-file", env_file]
    if service.get("deploy"):
        argv += ["--gpus", "all"]  # the only deploy block local mode writes (local_gpu)
    entrypoint = service.get("entrypoint")
    if entrypoint:
        parts = [entrypoint] if isinstance(entrypoint, str) else [str(p) for p in entrypoint]
        argv += ["--entrypoint", parts[0], str(service["image"]), *parts[1:]]
    else:
        argv.append(str(service["image"]))
        command = service.get("command")
        if command:
            argv += command.split() if isinstance(command, str) else [str(c) for c in command]
    return argv


def ensure_network() -> None:
    """Create the ``sagemaker-local`` bridge network if it is missing, as compose would (once a
    process; a network made by compose is used as it is)."""
    global _network_ready
    with _network_lock:
        if _network_ready:
            return
        found = subprocess.run(
            ["docker", "network", "inspect", NETWORK],
            capture_output=True,
            timeout=30,
            check=False,
        )
        if found.returncode != 0:
            made = subprocess.run(
                ["docker", "network", "create", NETWORK],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            # Another process may have made it in between: that is as good.
            if made.returncode != 0 and "already exists" not in made.stderr:
                raise RuntimeError(
                    f"could not create the Docker network {NETWORK}: {made.stderr.strip()}"
                )
        _network_ready = True


def forget_network() -> None:
    """Look the network up again before the next job (it was removed from outside)."""
    global _network_ready
    with _network_lock:
        _network_ready = False
