"""The local SageMaker Runtime: ``POST /endpoints/{name}/invocations`` routed to containers.

A plain ASGI app (served by uvicorn) with one pooled aiohttp client to the instances. It speaks
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

import aiohttp
from yarl import URL

from local_mlops.serving.capture import Capture, CaptureWriter
from local_mlops.serving.metrics import Timeline
from local_mlops.serving.state import IN_SERVICE, ROLLING_BACK, UPDATING, Endpoint

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

ADMIN = "/_local-mlops/"
FORWARDED = ("content-type", "accept", "x-amzn-sagemaker-custom-attributes")
INFERENCE_ID = "x-amzn-sagemaker-inference-id"
TARGET_VARIANT = "x-amzn-sagemaker-target-variant"
UPSTREAM_TIMEOUT = aiohttp.ClientTimeout(total=60, connect=2)  # SageMaker's 60 s model limit
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
    urls: list[URL]  # parsed once: yarl parsing is a visible share of a request's cost
    cycle: Any = None

    def __post_init__(self) -> None:
        self.cycle = itertools.cycle(range(len(self.urls))) if self.urls else None

    def ordered(self) -> list[URL]:
        """Instances in the order to try: the round-robin pick first, then the others."""
        start = next(self.cycle) if self.cycle else 0
        return self.urls[start:] + self.urls[:start]


@dataclass
class VariantRoute:
    name: str
    weight: float
    fleets: list[FleetRoute]

    def pick(self) -> FleetRoute | None:
        live = [f for f in self.fleets if f.weight > 0 and f.urls]
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
                        [URL(f"http://127.0.0.1:{i.port}/invocations") for i in f.instances],
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
        self._client: aiohttp.ClientSession | None = None
        self.reload()

    def reload(self) -> int:
        routes = {e.name: EndpointRoute.of(e) for e in self._load()}
        self.routes = routes  # one assignment: requests see the old table or the new one
        return len(routes)

    async def client(self) -> aiohttp.ClientSession:
        if self._client is None or self._client.closed:
            connector = aiohttp.TCPConnector(
                limit=0, keepalive_timeout=60, enable_cleanup_closed=True
            )
            self._client = aiohttp.ClientSession(
                connector=connector, timeout=UPSTREAM_TIMEOUT, auto_decompress=False
            )
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()

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
            await self.invoke(parts[1], _headers(scope), body, send)
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

    async def invoke(self, name: str, headers: dict[str, str], body: bytes, send: Send) -> None:
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
        target = headers.get(TARGET_VARIANT)
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
        stats = self.stats.setdefault((name, fleet.id), FleetStats())
        stats.requests += 1
        stats.inflight += 1
        began = time.perf_counter()
        try:
            answer = await self._forward(fleet, headers, body)
        finally:
            stats.inflight -= 1
        if answer is None:
            stats.errors += 1
            await _error(
                send,
                503,
                "ServiceUnavailable",
                f"No instance of endpoint {name} answered; try again.",
            )
            self.timeline.record(name, variant.name, fleet.id, time.perf_counter() - began, True)
            return
        status, response_type, response_body, attributes = answer
        failed = status >= 500 or status == 0
        if failed:
            stats.errors += 1
        if status >= 400:
            await _model_error(send, name, variant.name, status, response_body)
            self.timeline.record(name, variant.name, fleet.id, time.perf_counter() - began, failed)
            return
        extra = [(b"x-amzn-invoked-production-variant", variant.name.encode())]
        if attributes:
            extra.append((b"x-amzn-sagemaker-custom-attributes", attributes.encode()))
        await _respond(send, 200, response_type, response_body, extra)
        self.timeline.record(name, variant.name, fleet.id, time.perf_counter() - began, False)
        if route.capture and self.capture and random.random() * 100 < route.sampling:
            self.capture.record(
                Capture(
                    endpoint=name,
                    variant=variant.name,
                    destination=route.destination,
                    json_types=route.json_types,
                    request_type=headers.get("content-type", "application/octet-stream"),
                    request_body=body,
                    response_type=response_type,
                    response_body=response_body,
                    inference_id=headers.get(INFERENCE_ID, ""),
                    time=dt.datetime.now(dt.UTC),
                )
            )

    async def _forward(
        self, fleet: FleetRoute, headers: dict[str, str], body: bytes
    ) -> tuple[int, str, bytes, str] | None:
        client = await self.client()
        upstream = {k: v for k, v in headers.items() if k in FORWARDED or k == INFERENCE_ID}
        for url in fleet.ordered():
            try:
                async with client.post(url, data=body, headers=upstream) as reply:
                    data = await reply.read()
                    return (
                        reply.status,
                        reply.headers.get("Content-Type", "application/octet-stream"),
                        data,
                        reply.headers.get("X-Amzn-SageMaker-Custom-Attributes", ""),
                    )
            except aiohttp.ClientConnectorError:
                continue  # refused: nothing reached the model, try the next instance
            except (TimeoutError, aiohttp.ClientError) as exc:
                return 0, "text/plain", f"connection to the model failed: {exc!r}".encode(), ""
        return None


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


async def _respond(
    send: Send,
    status: int,
    content_type: str,
    body: bytes,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"x-amzn-requestid", str(uuid.uuid4()).encode()),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


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
