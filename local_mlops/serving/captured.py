"""The images an endpoint captured, read back from its data capture (for labeling and datasets).

``capture.py`` writes one record per invocation; this module turns the records back into one
``CapturedImage`` per image a request carried (an image body is one, a JSON ``{"instances":
[...]}`` body one per instance), with the endpoint's answer for it (the labeling page's
suggestion) and the key ground truth joins on: the capture's ``inferenceId``, else its
``eventId``, as SageMaker's merge job joins them. A record that holds no decodable image is kept
with the reason, so the user sees the list instead of a crash.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from local_mlops.config import Settings
from local_mlops.errors import LocalMlopsError, brief_error
from local_mlops.serving.capture import CAPTURE_PREFIX, capture_keys, split_destination
from local_mlops.serving.state import EndpointStore, check_name

IMAGE_TYPES = ("image/png", "image/jpeg", "application/x-image")
JSON_TYPE = "application/json"
# Formats every browser shows as they are; anything else Pillow reads is re-encoded as PNG.
BROWSER_FORMATS = {"PNG": ".png", "JPEG": ".jpg", "GIF": ".gif", "WEBP": ".webp", "BMP": ".bmp"}
WINDOW = re.compile(r"^(\d+)([mhd])$")
UNITS = {"m": "minutes", "h": "hours", "d": "days"}


@dataclass(frozen=True)
class CapturedImage:
    """One image of a captured request; ``problem`` says why it cannot be shown ("" if it can)."""

    key: str  # VARIANT/2026-12-01T20-01-48Z-EVENTID[-N].png: unique, sorts by time
    join_key: str  # what ground truth is keyed by (inferenceId, else eventId)
    position: int  # index of the image in its request
    count: int  # images in the request
    event_id: str
    time: str  # the capture's inferenceTime
    capture_uri: str  # the capture file holding the record
    data: bytes = b""  # the image as a browser shows it
    problem: str = ""
    suggestion: tuple[str, float] | None = None  # the endpoint's answer: (label, probability)
    classes: tuple[str, ...] = ()  # the model's classes in order, from the answer


@dataclass(frozen=True)
class CaptureLocation:
    endpoint: str
    bucket: str
    prefix: str  # the capture prefix (``datacapture``); files are under PREFIX/ENDPOINT/
    known: bool  # a local endpoint of this name exists

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}/{self.endpoint}/"


def parse_window(text: str, flag: str = "--window") -> timedelta:
    """``30m`` / ``1h`` / ``7d`` as a timedelta (``flag`` names the option in the error)."""
    match = WINDOW.match(text.strip())
    if not match or int(match[1]) == 0:
        raise LocalMlopsError(
            f"{flag} {text!r} is not a duration", "use minutes, hours or days: 30m, 1h, 7d"
        )
    return timedelta(**{UNITS[match[2]]: int(match[1])})


def capture_location(settings: Settings, endpoint: str) -> CaptureLocation:
    """Where an endpoint's captures are: its DataCaptureConfig, else the default prefix."""
    check_name(endpoint)
    found = EndpointStore(settings.state_path).find(endpoint)
    destination = found.data_capture.destination if found else ""
    if not destination:
        destination = f"s3://{settings.bucket}/{CAPTURE_PREFIX}"
    bucket, prefix = split_destination(destination)
    return CaptureLocation(endpoint, bucket, prefix.strip("/"), found is not None)


def no_captures_error(location: CaptureLocation, since: datetime | None) -> LocalMlopsError:
    """The error for an endpoint without captured requests (or an endpoint that never was)."""
    if since is not None:
        return LocalMlopsError(
            f"no requests of endpoint {location.endpoint} captured since "
            f"{since:%Y-%m-%d %H:%M} UTC (under {location.uri})",
            "widen --window, or check the name with `local-mlops endpoints list`",
        )
    if not location.known:
        return LocalMlopsError(
            f"no endpoint named {location.endpoint!r} and no data captured under {location.uri}",
            "check the name with `local-mlops endpoints list`",
        )
    return LocalMlopsError(
        f"endpoint {location.endpoint} has captured no requests (under {location.uri})",
        "send it requests (`local-mlops predict`) with data capture on (`deploy` without "
        "--no-capture)",
    )


def _payload(part: dict[str, Any]) -> bytes:
    data = part.get("data", "")
    if str(part.get("encoding", "")).upper() == "BASE64":
        return base64.b64decode(data, validate=True)
    return data.encode() if isinstance(data, str) else json.dumps(data).encode()


def _media(content_type: str) -> str:
    return content_type.split(";")[0].strip().lower()


def _viewable(raw: bytes) -> tuple[bytes, str, str]:
    """(bytes a browser shows, suffix, problem) for one image payload."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(raw)) as opened:
            opened.load()
            suffix = BROWSER_FORMATS.get(opened.format or "")
            if suffix:
                return raw, suffix, ""
            plain = opened.mode in ("1", "L", "LA", "P", "RGB", "RGBA")
            image = opened if plain else opened.convert("RGB")
            out = io.BytesIO()
            image.save(out, format="PNG")
            return out.getvalue(), ".png", ""
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        return b"", "", f"not a decodable image ({exc})"


def _instances(content_type: str, body: bytes) -> list[bytes] | str:
    """The image payloads of a request body, or why there are none."""
    media = _media(content_type)
    if media in IMAGE_TYPES:
        return [body]
    if media != JSON_TYPE:
        return f"the request is {content_type or 'untyped'}, not an image"
    try:
        instances = json.loads(body)["instances"]
        if not isinstance(instances, list) or not instances:
            raise TypeError("no instances")
    except (ValueError, KeyError, TypeError) as exc:
        return f'the JSON request has no {{"instances": [...]}} ({exc})'
    payloads = []
    for item in instances:
        text = item.get("b64") if isinstance(item, dict) else item
        try:
            payloads.append(base64.b64decode(text, validate=True) if isinstance(text, str) else b"")
        except (binascii.Error, ValueError):
            payloads.append(b"")
    return payloads


Answer = tuple[str, float]


def _answers(output: dict[str, Any], count: int) -> tuple[list[Answer | None], tuple[str, ...]]:
    """The endpoint's (label, probability) per image, and the model's classes in order."""
    try:
        predictions = json.loads(_payload(output))["predictions"]
        answers = [(str(p["label"]), float(p.get("probability", 0.0))) for p in predictions]
        classes = tuple(str(name) for name in (predictions[0].get("probabilities") or {}))
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, binascii.Error):
        return [None] * count, ()
    padded: list[Answer | None] = [*answers, *([None] * count)]
    return padded[:count], classes


def parse_time(value: Any) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def images_of_record(record: Any, capture_uri: str, variant: str, line: int) -> list[CapturedImage]:
    """Every image of one capture record (one entry with a ``problem`` when it has none)."""
    record = record if isinstance(record, dict) else {}
    meta = record.get("eventMetadata") if isinstance(record.get("eventMetadata"), dict) else {}
    event_id = str(meta.get("eventId") or f"line-{line}")
    when = parse_time(meta.get("inferenceTime"))
    stamp = when.strftime("%Y-%m-%dT%H-%M-%SZ") if when else "unknown-time"
    join_key = str(meta.get("inferenceId") or event_id)
    time = str(meta.get("inferenceTime") or "")

    def entry(position: int, count: int, suffix: str = "", **rest: Any) -> CapturedImage:
        tail = f"-{position}" if count > 1 else ""
        key = f"{variant}/{stamp}-{event_id}{tail}{suffix}"
        return CapturedImage(key, join_key, position, count, event_id, time, capture_uri, **rest)

    capture = record.get("captureData")
    if not isinstance(capture, dict) or not isinstance(capture.get("endpointInput"), dict):
        return [entry(0, 1, problem=f"line {line} is not a capture record")]
    source = capture["endpointInput"]
    try:
        payloads = _instances(str(source.get("observedContentType", "")), _payload(source))
    except (binascii.Error, ValueError) as exc:
        payloads = f"the captured body is not valid base64 ({exc})"
    if isinstance(payloads, str):
        return [entry(0, 1, problem=payloads)]
    answers, classes = _answers(capture.get("endpointOutput") or {}, len(payloads))
    images = []
    for position, (raw, answer) in enumerate(zip(payloads, answers, strict=True)):
        data, suffix, problem = _viewable(raw) if raw else (b"", "", "not a base64 image")
        images.append(
            entry(
                position,
                len(payloads),
                suffix,
                data=data,
                problem=problem,
                suggestion=answer,
                classes=classes,
            )
        )
    return images


def _file_hour(key: str) -> datetime | None:
    """The hour a capture file's path names (capture files never span hours)."""
    try:
        year, month, day, hour = (int(p) for p in key.split("/")[-5:-1])
        return datetime(year, month, day, hour, tzinfo=UTC)
    except ValueError:
        return None


def read_captured(
    client: Any, location: CaptureLocation, since: datetime | None = None
) -> list[CapturedImage]:
    """The captured images of an endpoint (those at or after ``since``), file by file."""
    from botocore.exceptions import BotoCoreError, ClientError

    images: list[CapturedImage] = []
    try:
        keys = capture_keys(client, location.bucket, location.endpoint, location.prefix)
        for key in keys:
            hour = _file_hour(key)
            if since and hour and hour + timedelta(hours=1) <= since:
                continue
            body = client.get_object(Bucket=location.bucket, Key=key)["Body"].read()
            uri = f"s3://{location.bucket}/{key}"
            variant = key.split("/")[-6] if key.count("/") >= 6 else "AllTraffic"
            for line, text in enumerate(body.decode("utf-8", errors="replace").splitlines(), 1):
                if not text.strip():
                    continue
                try:
                    record = json.loads(text)
                except ValueError:
                    record = None
                found = images_of_record(record, uri, variant, line)
                when = parse_time(found[0].time) if found[0].time else None
                if since is None or when is None or when >= since:
                    images.extend(found)
    except (BotoCoreError, ClientError) as exc:
        raise LocalMlopsError(
            f"cannot read the captures under {location.uri}: {brief_error(exc)}",
            "check `local-mlops status` and the bucket name",
        ) from exc
    return images


def model_classes(images: list[CapturedImage]) -> list[str]:
    """The model's classes, in order, from the newest answer that lists them."""
    for image in reversed(images):
        if image.classes:
            return list(image.classes)
    return []
