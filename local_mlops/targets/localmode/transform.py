"""Local mode's batch transform job, brought closer to SageMaker's.

The SDK's ``_LocalTransformJob`` (2.257.7) starts the model's serving container, reads
``/execution-parameters`` and posts each record — but it ignores ``MaxConcurrentTransforms``
(one request at a time), runs ``docker info`` before every request (``get_docker_host`` in
``invoke_endpoint``), polls ``/ping`` every 5 s, mounts the model from a 0700 temp folder (the
serving image's unprivileged user cannot read it) and writes its outputs under an extra
``<job name>/`` prefix. ``ExtendedLocalTransformJob`` keeps the SDK's flow and request shapes
and changes these things:

- the model is extracted into a folder readable by all (``chmod -R a+rX``) and mounted from there;
- the serving container is started with the docker SDK and removed at the end (``ModelServer``),
  not through ``docker compose up`` in a thread;
- ``/ping`` is polled every 0.2 s; a container that exits first fails the job with its log;
- ``MaxConcurrentTransforms`` requests are in flight at once (the job's value, else the
  container's ``/execution-parameters``), each thread on its own keep-alive connection, so the
  server's dynamic batcher merges them into one forward — SageMaker's way of batching records
  that are whole files (``SplitType`` None);
- ``SplitType`` Line (JSON Lines shards): an object's lines are grouped into requests within
  ``MaxPayloadInMB`` (MultiRecord) and the answers joined a line each, in order (``AssembleWith``
  Line);
- each input object ``PREFIX/REL`` becomes ``S3OutputPath/REL.out``, as SageMaker names it;
- a callback (the session's ``on_transform_record(done, total, key)``) reports progress;
- the input objects are downloaded ahead of the records that need them (``Prefetch``), starting
  while the container starts, so the records phase posts and writes instead of waiting on GETs.

A record the container answers with a status other than 200 fails the job with the file's name
and the answer, as on SageMaker.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sagemaker.local.entities import _LocalTransformJob

from local_mlops.devenv.processes import container_labels
from local_mlops.serving.fleet import CONTAINER_PORT, MODEL_MOUNT, fetch_model, free_port
from local_mlops.targets.localmode.runs import remove_containers

logger = logging.getLogger(__name__)

PING_INTERVAL_SECONDS = 0.2
INSTANCE_HOST = "127.0.0.1"  # the container's port is published on loopback only
# Inputs downloaded ahead of the records: GETs at once, and bodies held at most.
PREFETCH_THREADS = 8
PREFETCH_WINDOW = 256
PING_TIMEOUT_SECONDS = 180.0
DEFAULT_MAX_PAYLOAD_MB = 6
# Records in flight at most, whatever MaxConcurrentTransforms says (threads of this process).
MAX_RECORD_THREADS = 64
Progress = Callable[[int, int, str], None]


def output_key(input_prefix: str, key: str, output_prefix: str) -> str:
    """SageMaker's name for the output of ``key``: the output prefix, its path below the input
    prefix's folder, and ``.out``."""
    folder = (
        input_prefix
        if input_prefix.endswith("/") or not input_prefix
        else (input_prefix.rsplit("/", 1)[0] + "/" if "/" in input_prefix else "")
    )
    relative = key[len(folder) :].lstrip("/")
    base = output_prefix.strip("/")
    return f"{base}/{relative}.out" if base else f"{relative}.out"


def split_s3_uri(uri: str) -> tuple[str, str]:
    """(bucket, key or prefix) of an ``s3://`` URI."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def list_keys(s3: Any, uri: str) -> list[str]:
    """Every object key under an S3 prefix (folders' placeholder keys left out), sorted."""
    bucket, prefix = split_s3_uri(uri)
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(
            item["Key"] for item in page.get("Contents", []) if not item["Key"].endswith("/")
        )
    return sorted(keys)


class Prefetch:
    """The input objects' bodies, downloaded in ``keys`` order ahead of the records that take
    them (at most ``window`` held): a record waits for its GET only when the downloads lag."""

    def __init__(self, s3: Any, bucket: str, keys: list[str], threads: int, window: int) -> None:
        self.s3, self.bucket, self.keys = s3, bucket, keys
        self._bodies: dict[str, Future[bytes]] = {key: Future() for key in keys}
        self._slots = threading.Semaphore(window)
        self._stopped = threading.Event()
        self._pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix="transform-get")
        self._feeder = threading.Thread(target=self._feed, name="transform-prefetch", daemon=True)
        self._feeder.start()

    def _feed(self) -> None:
        for key in self.keys:
            while not self._slots.acquire(timeout=0.2):
                if self._stopped.is_set():
                    return
            if self._stopped.is_set():
                return
            self._pool.submit(self._get, key, self._bodies[key])

    def _get(self, key: str, future: Future[bytes]) -> None:
        try:
            future.set_result(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())
        except BaseException as error:  # the record that takes it raises it
            future.set_exception(error)

    def take(self, key: str) -> bytes:
        """The body of ``key`` (waiting for its download); frees its place in the window."""
        try:
            return self._bodies[key].result()
        finally:
            # Only after its GET was submitted (the feeder reads the entry before that) and done.
            del self._bodies[key]
            self._slots.release()

    def close(self) -> None:
        self._stopped.set()
        self._feeder.join(timeout=5)
        self._pool.shutdown(wait=True, cancel_futures=True)


class ModelServer:
    """The model's serving container for one job: ``docker run -d IMAGE serve`` with the model
    mounted read-only, published on a free port of 127.0.0.1 and labelled with the job, as the
    endpoint fleet starts its instances (``serving/fleet.py``).

    Not local mode's ``_SageMakerContainer.serve``: that runs ``docker compose up`` in a thread
    whose stderr nobody reads (a compose failure shows as exit 1 with no message), and its
    teardown waits for compose to stop the container. Here the start is one API call, a failure
    is the engine's own message, and the stop one forced removal once every record is answered."""

    def __init__(self, session: Any, image: str, instance_type: str, job_name: str) -> None:
        self.session = session
        self.image = image
        self.instance_type = instance_type
        self.job_name = job_name
        self.port = free_port()
        self.container: Any = None

    def start(self, model_dir: Path, environment: dict[str, str]) -> None:
        from docker.errors import APIError, ImageNotFound

        from local_mlops.devenv.dockerhost import docker_client

        labels = container_labels(getattr(self.session, "project", ""), self.job_name)
        try:
            self.container = docker_client().containers.run(
                self.image,
                "serve",
                name=f"{self.job_name}-algo-1"[:128],
                detach=True,
                labels=labels,
                environment={**environment, "SAGEMAKER_BIND_TO_PORT": str(CONTAINER_PORT)},
                ports={f"{CONTAINER_PORT}/tcp": (INSTANCE_HOST, self.port)},
                volumes={str(model_dir): {"bind": MODEL_MOUNT, "mode": "ro"}},
            )
        except ImageNotFound as exc:
            raise RuntimeError(
                f"the serving image {self.image} is not on this machine: `local-mlops build`"
            ) from exc
        except APIError as exc:
            raise RuntimeError(
                f"cannot start the serving container of {self.job_name}: {exc.explanation or exc}"
            ) from exc

    def wait_until_healthy(self, timeout: float = PING_TIMEOUT_SECONDS) -> str:
        """The host the container answers on, once ``/ping`` says 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                status, _ = request(INSTANCE_HOST, self.port, "GET", "/ping", timeout=2)
                if status == 200:
                    return INSTANCE_HOST
            except OSError:
                pass
            if self._exited():
                raise RuntimeError(
                    f"the serving container of {self.job_name} exited before /ping answered"
                    f"{self._log_tail()}"
                )
            time.sleep(PING_INTERVAL_SECONDS)
        raise RuntimeError(
            f"the serving container of {self.job_name} did not answer /ping within "
            f"{timeout:g} s{self._log_tail()}"
        )

    def _exited(self) -> bool:
        from docker.errors import NotFound

        try:
            self.container.reload()
        except NotFound:
            return True
        return str(self.container.status) in ("exited", "dead")

    def exit_reason(self) -> str:
        """How the container ended, with its last log lines; "" while it runs."""
        from docker.errors import NotFound

        if self.container is None:
            return ""
        try:
            self.container.reload()
        except NotFound:
            return ": its container is gone (removed from outside the job)"
        state = self.container.attrs.get("State") or {}
        if self.container.status not in ("exited", "dead"):
            return ""
        code = state.get("ExitCode")
        how = " (killed)" if code == 137 or state.get("OOMKilled") else ""
        return f": it exited with code {code}{how}{self._log_tail()}"

    def _log_tail(self) -> str:
        try:
            text = self.container.logs(tail=10).decode("utf-8", "replace").strip()
        except Exception:  # the container may be gone; the error above says enough
            return ""
        return f"\nLast log lines:\n{text}" if text else ""

    def stop(self) -> None:
        from docker.errors import NotFound

        if self.container is None:
            remove_containers(self.job_name)  # a start that failed midway may have left one
            return
        with contextlib.suppress(NotFound):
            self.container.remove(force=True)


def request(
    host: str,
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 60,
    connection: http.client.HTTPConnection | None = None,
) -> tuple[int, bytes]:
    """(status, body) of one request, on ``connection`` when given (kept alive)."""
    own = connection is None
    conn = connection or http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        if own:
            conn.close()


class ExtendedLocalTransformJob(_LocalTransformJob):
    """A transform job with SageMaker's concurrency, output names and a readable model."""

    def start(  # type: ignore[override]
        self,
        input_data: dict[str, Any],
        output_data: dict[str, Any],
        transform_resources: dict[str, Any],
        **kwargs: Any,
    ) -> None:
        self.transform_resources = transform_resources
        self.input_data = input_data
        self.output_data = output_data
        session = self.local_session
        source = input_data["DataSource"]["S3DataSource"]
        if source.get("S3DataType", "S3Prefix") != "S3Prefix":
            raise ValueError("local transform jobs take an S3Prefix input only")
        if input_data.get("SplitType", "None") not in ("None", None, "Line"):
            raise ValueError("local transform jobs split by Line or not at all (SplitType None)")
        environment = self._get_container_environment(**kwargs)
        work = Path(_work_folder(session)) / f"transform-{self.name}"
        server = ModelServer(
            session, self.primary_container["Image"], transform_resources["InstanceType"], self.name
        )
        self.start_time = _now()
        s3 = _s3_for_threads(session, PREFETCH_THREADS + MAX_RECORD_THREADS)
        in_bucket, _ = split_s3_uri(source["S3Uri"])
        keys = list_keys(s3, source["S3Uri"])
        inputs = Prefetch(s3, in_bucket, keys, PREFETCH_THREADS, PREFETCH_WINDOW)
        try:
            model_dir = fetch_model(
                session.s3_client, self.primary_container["ModelDataUrl"], work / "model"
            )
            _readable_by_all(model_dir)
            server.start(model_dir, environment)
            host = server.wait_until_healthy()
            parameters = self._execution_parameters(host, server.port)
            for setting in ("BatchStrategy", "MaxPayloadInMB", "MaxConcurrentTransforms"):
                if setting not in kwargs and setting in parameters:
                    kwargs[setting] = parameters[setting]
            kwargs.update(self._get_required_defaults(**kwargs))
            self.batch_strategy = kwargs["BatchStrategy"]
            self.environment = dict(kwargs.get("Environment") or {})
            self.max_concurrent = max(1, int(kwargs.get("MaxConcurrentTransforms") or 1))
            try:
                self._transform_all(host, server.port, int(kwargs["MaxPayloadInMB"]), inputs)
            except (OSError, http.client.HTTPException) as exc:
                raise RuntimeError(
                    f"the serving container of {self.name} stopped answering ({exc})"
                    f"{server.exit_reason()}"
                ) from exc
        finally:
            inputs.close()
            server.stop()
            _remove_tree(work)
        self.end_time = _now()
        self.state = self._COMPLETED

    def _get_container_environment(self, **kwargs: Any) -> dict[str, str]:
        environment: dict[str, str] = super()._get_container_environment(**kwargs)
        if kwargs.get("MaxConcurrentTransforms"):
            # The SDK forces 1 here; this job honours the value.
            environment["SAGEMAKER_MAX_CONCURRENT_TRANSFORMS"] = str(
                kwargs["MaxConcurrentTransforms"]
            )
        return environment

    def describe(self) -> dict[str, Any]:
        response: dict[str, Any] = super().describe()
        response["MaxConcurrentTransforms"] = getattr(self, "max_concurrent", 1)
        return response

    def _execution_parameters(self, host: str, port: int) -> dict[str, Any]:
        status, body = request(host, port, "GET", "/execution-parameters")
        if status != 200:
            return {}
        parameters: dict[str, Any] = json.loads(body)
        if parameters.get("BatchStrategy") in ("MULTI_RECORD", "SINGLE_RECORD"):
            # The container answers with the environment's spelling; the API's is CamelCase.
            parameters["BatchStrategy"] = (
                "MultiRecord" if parameters["BatchStrategy"] == "MULTI_RECORD" else "SingleRecord"
            )
        return parameters

    def _transform_all(
        self, host: str, port: int, max_payload_mb: int, inputs: Prefetch | None = None
    ) -> None:
        """Post every input object, ``max_concurrent`` at a time; write each answer as ``.out``.
        ``inputs``: the objects' downloads, started earlier (else they start now)."""
        input_uri = self.input_data["DataSource"]["S3DataSource"]["S3Uri"]
        in_bucket, in_prefix = split_s3_uri(input_uri)
        out_bucket, out_prefix = split_s3_uri(self.output_data["S3OutputPath"])
        if inputs is None:
            s3 = _s3_for_threads(self.local_session, PREFETCH_THREADS + MAX_RECORD_THREADS)
            inputs = Prefetch(
                s3, in_bucket, list_keys(s3, input_uri), PREFETCH_THREADS, PREFETCH_WINDOW
            )
            with contextlib.closing(inputs):
                self._transform_all(host, port, max_payload_mb, inputs)
            return
        s3, keys = inputs.s3, inputs.keys
        headers = {"Content-Type": self.input_data.get("ContentType") or "application/x-image"}
        if self.output_data.get("Accept"):
            headers["Accept"] = self.output_data["Accept"]
        limit = max_payload_mb * 1024 * 1024 if max_payload_mb else None
        progress: Progress | None = getattr(self.local_session, "on_transform_record", None)
        local = threading.local()
        done = [0]
        lock = threading.Lock()
        by_line = self.input_data.get("SplitType") == "Line"

        def post(key: str, body: bytes) -> bytes:
            if getattr(local, "connection", None) is None:
                local.connection = http.client.HTTPConnection(host, port, timeout=120)
            try:
                status, answer = request(
                    host, port, "POST", "/invocations", body, headers, connection=local.connection
                )
            except (OSError, http.client.HTTPException):
                local.connection.close()
                local.connection = None
                raise
            if status != 200:
                raise RuntimeError(
                    f"the model answered {status} for s3://{in_bucket}/{key}: {answer[:300]!r}"
                )
            return answer

        def count(records: int, key: str, total: int = len(keys)) -> None:
            with lock:
                done[0] += records
                so_far = done[0]
            if progress is not None:
                progress(so_far, total, key)

        def one(key: str) -> None:
            body = inputs.take(key)
            if limit is not None and len(body) > limit:
                raise RuntimeError(
                    f"{key} is {len(body)} bytes, over MaxPayloadInMB={max_payload_mb}"
                )
            answer = post(key, body)
            s3.put_object(
                Bucket=out_bucket, Key=output_key(in_prefix, key, out_prefix), Body=answer
            )
            count(1, key)

        threads = min(self.max_concurrent, MAX_RECORD_THREADS)
        with ThreadPoolExecutor(threads, thread_name_prefix="transform") as pool:
            if not by_line:
                for future in [pool.submit(one, key) for key in keys]:
                    future.result()
                return
            # SplitType Line: each object's lines grouped into payloads within MaxPayloadInMB
            # (MultiRecord), posted concurrently; the answers joined, a line each, in order.
            # Progress counts records (lines) as their request is answered.
            split = [(key, line_payloads(inputs.take(key), limit, key)) for key in keys]
            records = sum(payload.count(b"\n") for _, payloads in split for payload in payloads)

            def answered(key: str, payload: bytes) -> bytes:
                answer = post(key, payload)
                count(payload.count(b"\n"), key, records)
                return answer

            submitted = [
                (key, [pool.submit(answered, key, payload) for payload in payloads])
                for key, payloads in split
            ]
            for key, answers in submitted:
                lines = [future.result().rstrip(b"\n") for future in answers]
                s3.put_object(
                    Bucket=out_bucket,
                    Key=output_key(in_prefix, key, out_prefix),
                    Body=b"\n".join(lines) + b"\n",
                )


def line_payloads(body: bytes, limit: int | None, key: str) -> list[bytes]:
    """An object's non-empty lines grouped into request bodies of at most ``limit`` bytes each
    (MultiRecord), every line ending in a newline; a single line over the limit fails the job."""
    payloads: list[bytes] = []
    current: list[bytes] = []
    size = 0
    for line in body.splitlines():
        if not line.strip():
            continue
        record = line + b"\n"
        if limit is not None and len(record) > limit:
            raise RuntimeError(f"a record of {key} is {len(record)} bytes, over MaxPayloadInMB")
        if current and limit is not None and size + len(record) > limit:
            payloads.append(b"".join(current))
            current, size = [], 0
        current.append(record)
        size += len(record)
    if current:
        payloads.append(b"".join(current))
    return payloads


def _s3_for_threads(session: Any, threads: int) -> Any:
    """The session's S3 client, or one like it whose connection pool fits ``threads`` (boto3
    keeps 10 connections; more threads would each open and discard their own)."""
    s3 = session.s3_client
    if threads <= 10 or getattr(session, "boto_session", None) is None:
        return s3
    from botocore.config import Config

    return session.boto_session.client(
        "s3",
        endpoint_url=s3.meta.endpoint_url,
        config=s3.meta.config.merge(Config(max_pool_connections=threads)),
    )


class TransformJobs:
    """Mixed into a local client: ``create_transform_job`` runs ``ExtendedLocalTransformJob``."""

    sagemaker_session: Any

    def create_transform_job(
        self,
        TransformJobName: str,  # noqa: N803 - the API's names
        ModelName: str,  # noqa: N803
        TransformInput: dict,  # noqa: N803
        TransformOutput: dict,  # noqa: N803
        TransformResources: dict,  # noqa: N803
        **kwargs: Any,
    ) -> None:
        """SageMaker's concurrency and output names; no telemetry."""
        from sagemaker.local.local_session import LocalSagemakerClient

        job = ExtendedLocalTransformJob(TransformJobName, ModelName, self.sagemaker_session)
        LocalSagemakerClient._transform_jobs[TransformJobName] = job
        job.start(TransformInput, TransformOutput, TransformResources, **kwargs)


def _work_folder(session: Any) -> str:
    import tempfile

    configured = ((session.config or {}).get("local") or {}).get("container_root")
    return os.path.abspath(configured) if configured else tempfile.gettempdir()


def _readable_by_all(folder: Path) -> None:
    """The serving image runs as an unprivileged user: it must read every file of the model."""
    for path in [folder, *_walk(folder)]:
        path.chmod(path.stat().st_mode | (0o555 if path.is_dir() else 0o444))


def _walk(folder: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(folder):
        for name in [*dirs, *files]:
            yield Path(root) / name


def _remove_tree(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


def _now() -> Any:
    import datetime as dt

    return dt.datetime.now()
