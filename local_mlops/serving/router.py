"""The local SageMaker Runtime: ``POST /endpoints/{name}/invocations`` routed to containers.

A plain ASGI app (served by uvicorn, ``listener.py``) with a pool of keep-alive connections to
the instances (``upstream.py``). It speaks
SageMaker Runtime's REST API closely enough that ``boto3.client("sagemaker-runtime",
endpoint_url=...)`` and the SageMaker SDK's ``Predictor`` work unchanged:

- request headers ``Content-Type``, ``Accept``, ``X-Amzn-SageMaker-Custom-Attributes``,
  ``X-Amzn-SageMaker-Target-Variant``, ``X-Amzn-SageMaker-Inference-Id``;
- response headers ``Content-Type``, ``x-Amzn-Invoked-Production-Variant`` and the model's
  custom attributes;
- errors as botocore parses them (``x-amzn-ErrorType`` + a JSON body): an unknown endpoint or
  variant is ``ValidationError`` (400); a 4xx/5xx from the model is ``ModelError`` (424) with
  ``OriginalStatusCode`` and ``OriginalMessage``; no instance reachable is ``ServiceUnavailable``.

Traffic goes to a variant by weight (or the target variant), then to a fleet by weight (two
fleets during a blue/green update), then round-robin over the fleet's instances. A refused
connection is retried on another instance: nothing was sent, so nothing runs twice. Routes are
swapped whole on reload, so a request never sees half a deployment. Captured invocations go to
a ``CaptureWriter`` after the response is sent.

Admin routes (127.0.0.1 only, like the router): ``GET /_local-mlops/health``,
``GET /_local-mlops/stats``, ``GET /_local-mlops/metrics`` (requests, errors and latency over
time, ``metrics.Timeline``), ``POST /_local-mlops/reload``, ``POST /_local-mlops/flush``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import random
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from local_mlops.serving.capture import Capture, CaptureWriter
from local_mlops.serving.metrics import Timeline
from local_mlops.serving.state import IN_SERVICE, ROLLING_BACK, UPDATING, Endpoint
from local_mlops.serving.upstream import NotSent, Reply, Upstream, UpstreamError

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

ADMIN = "/_local-mlops/"
CONTENT_TYPE = b"content-type"
INFERENCE_ID = b"x-amzn-sagemaker-inference-id"
TARGET_VARIANT = b"x-amzn-sagemaker-target-variant"
# What goes on to the model, as the client sent it.
FORWARDED = frozenset(
    (CONTENT_TYPE, b"accept", b"x-amzn-sagemaker-custom-attributes", INFERENCE_ID)
)
INSTANCE_HOST = "127.0.0.1"
ACCOUNT = "000000000000"
SERVING = (IN_SERVICE, UPDATING, ROLLING_BACK)


@dataclass
class FleetStats:
    requests: int = 0
    errors: int = 0
    inflight: int = 0


@dataclass
class FleetRoute:
    id: str
    weight: float
    ports: list[int]  # the instances, on INSTANCE_HOST
    sockets: list[str] = field(default_factory=list)  # their Unix sockets ("" = port only)
    cycle: Any = None

    def __post_init__(self) -> None:
        self.cycle = itertools.cycle(range(len(self.ports))) if self.ports else None
        sockets = self.sockets or [""] * len(self.ports)
        # Per instance: (port, socket, the request line and Host header encoded once).
        self.targets = [
            (port, path, f"POST /invocations HTTP/1.1\r\nhost: {INSTANCE_HOST}:{port}\r\n".encode())
            for port, path in zip(self.ports, sockets, strict=True)
        ]

    def ordered(self) -> list[tuple[int, str, bytes]]:
        """Instances in the order to try: the round-robin pick first, then the others."""
        start = next(self.cycle) if self.cycle else 0
        return self.targets[start:] + self.targets[:start]


@dataclass
class VariantRoute:
    name: str
    weight: float
    fleets: list[FleetRoute]

    def pick(self) -> FleetRoute | None:
        live = [f for f in self.fleets if f.weight > 0 and f.ports]
        if not live:
            return None
        return random.choices(live, weights=[f.weight for f in live])[0]


@dataclass
class EndpointRoute:
    name: str
    status: str
    variants: list[VariantRoute]
    capture: bool
    sampling: float
    destination: str
    json_types: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def of(cls, endpoint: Endpoint) -> EndpointRoute:
        variants = [
            VariantRoute(
                v.name,
                v.weight,
                [
                    FleetRoute(
                        f.id,
                        f.weight,
                        [i.port for i in f.instances],
                        [i.socket for i in f.instances],
                    )
                    for f in v.fleets
                ],
            )
            for v in endpoint.variants
        ]
        dc = endpoint.data_capture
        return cls(
            endpoint.name,
            endpoint.status,
            variants,
            dc.enabled and bool(dc.destination),
            dc.sampling_percentage,
            dc.destination,
            tuple(dc.json_content_types),
        )

    def pick(self, target: str | None) -> VariantRoute | None:
        if target:
            return next((v for v in self.variants if v.name == target), None)
        live = [v for v in self.variants if v.weight > 0]
        return random.choices(live, weights=[v.weight for v in live])[0] if live else None


class Router:
    """The ASGI app. ``load`` swaps the routing table; ``stats`` counts per fleet."""

    def __init__(
        self,
        load: Callable[[], list[Endpoint]],
        capture: CaptureWriter | None = None,
    ) -> None:
        self._load = load
        self.capture = capture
        self.routes: dict[str, EndpointRoute] = {}
        self.stats: dict[tuple[str, str], FleetStats] = {}
        self.timeline = Timeline()
        self.upstream = Upstream()
        self.reload()

    def reload(self) -> int:
        routes = {e.name: EndpointRoute.of(e) for e in self._load()}
        self.routes = routes  # one assignment: requests see the old table or the new one
        return len(routes)

    async def close(self) -> None:
        self.upstream.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        method: str = scope["method"]
        if path.startswith(ADMIN):
            await self._admin(method, path[len(ADMIN) :], send)
            return
        parts = path.strip("/").split("/")
        if (
            method == "POST"
            and len(parts) == 3
            and parts[0] == "endpoints"
            and parts[2] == "invocations"
        ):
            body = await _read_body(receive)
            await self.invoke(parts[1], Request(scope["headers"]), body, send)
            return
        await _error(send, 404, "UnknownOperationException", f"no operation {method} {path}")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                # Requests have drained. Flush capture here: uvicorn re-raises the SIGTERM it
                # caught once serve() returns, so code after it never runs.
                await self.close()
                if self.capture is not None:
                    await asyncio.to_thread(self.capture.close)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _admin(self, method: str, action: str, send: Send) -> None:
        if action == "health":
            await _json(send, 200, {"status": "healthy", "endpoints": sorted(self.routes)})
        elif action == "stats":
            stats = [
                {"endpoint": e, "fleet": f, **vars(s)} for (e, f), s in sorted(self.stats.items())
            ]
            pending = self.capture.pending if self.capture else 0
            await _json(send, 200, {"fleets": stats, "capture_pending": pending})
        elif action == "metrics":
            await _json(send, 200, self.timeline.snapshot())
        elif action == "reload" and method == "POST":
            await _json(send, 200, {"endpoints": self.reload()})
        elif action == "flush" and method == "POST":
            written = await asyncio.to_thread(self.capture.flush) if self.capture else 0
            await _json(send, 200, {"written": written})
        else:
            await _error(send, 404, "UnknownOperationException", f"no admin route {action}")

    async def invoke(self, name: str, request: Request, body: bytes, send: Send) -> None:
        """InvokeEndpoint: pick variant, fleet, instance; forward; translate errors; capture."""
        route = self.routes.get(name)
        if route is None:
            await _error(
                send, 400, "ValidationError", f"Endpoint {name} of account {ACCOUNT} not found."
            )
            return
        if route.status not in SERVING:
            await _error(
                send, 400, "ValidationError", f"Endpoint {name} is {route.status}, not InService."
            )
            return
        target = request.target
        variant = route.pick(target)
        if variant is None:
            message = (
                f"Variant {target} not found for endpoint {name}."
                if target
                else f"Endpoint {name} has no variant in service."
            )
            await _error(send, 400, "ValidationError", message)
            return
        fleet = variant.pick()
        if fleet is None:
            await _error(send, 400, "ValidationError", f"Endpoint {name} is not in service.")
            return
        stats = self.stats.get((name, fleet.id))
        if stats is None:
            stats = self.stats[(name, fleet.id)] = FleetStats()
        stats.requests += 1
        stats.inflight += 1
        began = time.perf_counter()
        try:
            reply = await self._forward(fleet, request.forwarded, body)
        finally:
            stats.inflight -= 1
        if reply is None:
            stats.errors += 1
            await _error(
                send,
                503,
                "ServiceUnavailable",
                f"No instance of endpoint {name} answered; try again.",
            )
            self.timeline.record(name, variant.name, fleet.id, time.perf_counter() - began, True)
            return
        status = reply.status
        failed = status >= 500 or status == 0
        if failed:
            stats.errors += 1
        if status >= 400 or status == 0:
            await _model_error(send, name, variant.name, status, reply.body)
            self.timeline.record(name, variant.name, fleet.id, time.perf_counter() - began, failed)
            return
        extra = [(b"x-amzn-invoked-production-variant", variant.name.encode())]
        if reply.custom_attributes:
            extra.append((b"x-amzn-sagemaker-custom-attributes", reply.custom_attributes.encode()))
        await _respond(send, 200, reply.content_type, reply.body, extra)
        self.timeline.record(name, variant.name, fleet.id, time.perf_counter() - began, False)
        if route.capture and self.capture and random.random() * 100 < route.sampling:
            self.capture.record(
                Capture(
                    endpoint=name,
                    variant=variant.name,
                    destination=route.destination,
                    json_types=route.json_types,
                    request_type=request.content_type or "application/octet-stream",
                    request_body=body,
                    response_type=reply.content_type,
                    response_body=reply.body,
                    inference_id=request.inference_id,
                    time=dt.datetime.now(dt.UTC),
                )
            )

    async def _forward(self, fleet: FleetRoute, headers: bytes, body: bytes) -> Reply | None:
        """The first instance that takes the request answers it; None if none could be reached."""
        length = b"content-length: %d\r\n" % len(body)
        for port, path, line in fleet.ordered():
            head = b"".join((line, length, headers, b"\r\n"))
            try:
                return await self.upstream.post(INSTANCE_HOST, port, head, body, path)
            except NotSent:
                continue  # nothing reached the model, try the next instance
            except UpstreamError as exc:
                return Reply(0, "text/plain", "", f"connection to the model failed: {exc}".encode())
        return None


class Request:
    """What the router reads from an invocation's headers, in one pass (names are lowercase)."""

    __slots__ = ("forwarded", "content_type", "target", "inference_id")

    def __init__(self, headers: list[tuple[bytes, bytes]]) -> None:
        forwarded: list[bytes] = []
        content_type = target = inference_id = b""
        for name, value in headers:
            if name in FORWARDED:
                forwarded += (name, b": ", value, b"\r\n")
                if name == CONTENT_TYPE:
                    content_type = value
                elif name == INFERENCE_ID:
                    inference_id = value
            elif name == TARGET_VARIANT:
                target = value
        self.forwarded = b"".join(forwarded)
        self.content_type = content_type.decode("latin-1")
        self.target = target.decode("latin-1")
        self.inference_id = inference_id.decode("latin-1")


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _respond(
    send: Send,
    status: int,
    content_type: str,
    body: bytes,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", b"%d" % len(body)),
        (b"x-amzn-requestid", _request_id()),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


_REQUEST_IDS = itertools.count()
_REQUEST_ID_PREFIX = str(uuid.uuid4())[:24].encode()


def _request_id() -> bytes:
    """A UUID-shaped id, unique in this process, without a random draw per request."""
    return b"%s%012x" % (_REQUEST_ID_PREFIX, next(_REQUEST_IDS) % (1 << 48))


async def _json(send: Send, status: int, value: Any) -> None:
    await _respond(send, status, "application/json", json.dumps(value).encode())


async def _error(send: Send, status: int, code: str, message: str, **fields: Any) -> None:
    body = json.dumps({"Message": message, **fields}).encode()
    await _respond(send, status, "application/json", body, [(b"x-amzn-errortype", code.encode())])


async def _model_error(send: Send, endpoint: str, variant: str, status: int, body: bytes) -> None:
    """A model's 4xx/5xx as SageMaker Runtime reports it: ModelError, HTTP 424."""
    original = body.decode("utf-8", "replace")
    kind = "client" if 400 <= status < 500 else "server"
    log_stream = f"arn:aws:logs:local:{ACCOUNT}:log-group:/aws/sagemaker/Endpoints/{endpoint}"
    message = (
        f'Received {kind} error ({status}) from {variant} with message "{original}". '
        f"See `local-mlops endpoints logs {endpoint}` for more information."
    )
    await _error(
        send,
        424,
        "ModelError",
        message,
        ErrorCode=f"{kind.upper()}_ERROR_FROM_MODEL",
        OriginalStatusCode=status,
        OriginalMessage=original,
        LogStreamArn=log_stream,
    )
