"""Request bodies to model inputs: images, ``.npy`` arrays and JSON instances, checked first.

Parsing is split in two so the server can keep cheap work on its event loop and send expensive
work to a decode thread: :func:`parse_body` reads the container format (JSON, base64, the npy
header, the image header: sizes are checked here, before any pixel is decoded), and
:func:`to_batch` decodes the pixels into one float32 NCHW batch in 0..1, the model's input.
Every problem is an :class:`~mlops_container.errors.HTTPError` with status 400 or 415.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from .. import contract
from ..errors import HTTPError
from ..images import to_rgb_array

IMAGE_TYPES = ("image/png", "image/jpeg", "application/x-image")
NPY_TYPE = "application/x-npy"
JSON_TYPE = "application/json"
LINES_TYPE = contract.TRANSFORM_PACKED_CONTENT_TYPE
# The same types, in this order, are the contract's (what the model package registers).
CONTENT_TYPES = contract.CONTENT_TYPES
IMAGE_FORMATS = ("PNG", "JPEG")
# A sane image for a classifier (a 16-megapixel photo): larger ones are refused before decoding,
# so a small file that claims a huge size (a decompression bomb) costs nothing.
MAX_IMAGE_PIXELS = 4096 * 4096
ARRAY_DTYPES = ("uint8", "float16", "float32", "float64")
FLOAT_TOLERANCE = 1e-6

Item = np.ndarray | Image.Image  # an NHWC array already checked, or an opened, unloaded image


def media_type(content_type: str) -> str:
    """``image/png; charset=x`` -> ``image/png``."""
    return content_type.split(";", 1)[0].strip().lower()


def check_content_type(content_type: str) -> str:
    """The media type when the server reads it, else HTTPError 415."""
    media = media_type(content_type)
    if media not in CONTENT_TYPES:
        shown = content_type or "(none)"
        raise HTTPError(
            415, f"unsupported Content-Type {shown!r}; use one of {', '.join(CONTENT_TYPES)}"
        )
    return media


def parse_body(content_type: str, body: bytes, size: int) -> list[Item]:
    """Split a request body into checked instances (arrays or opened images), in order."""
    media = check_content_type(content_type)
    if not body:
        raise HTTPError(400, "empty request body; send an image, an .npy array or JSON instances")
    if media in IMAGE_TYPES:
        return [open_image(body, "the image")]
    if media == NPY_TYPE:
        return [parse_npy(body, size)]
    return parse_json(body, size)


def parse_lines(body: bytes, size: int) -> list[tuple[str, np.ndarray | HTTPError]]:
    """JSON Lines of ``{"name", "b64"}`` (a packed transform's records): per line its name and
    the decoded image (a batch of one, NHWC), or the error that line's answer reports (one bad line spoils no
    other)."""
    if not body.strip():
        raise HTTPError(400, 'empty request body; send lines of {"name": ..., "b64": ...}')
    records: list[tuple[str, np.ndarray | HTTPError]] = []
    for number, line in enumerate(line for line in body.splitlines() if line.strip()):
        name = f"line {number}"
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or not isinstance(record.get("b64"), str):
                raise HTTPError(400, f'{name} is not {{"name": ..., "b64": <base64 image>}}')
            name = str(record.get("name") or name)
            payload = base64.b64decode(record["b64"], validate=True)
            label = f"image {name}"
            records.append((name, _decode(open_image(payload, label), label, size)[None]))
        except HTTPError as error:
            records.append((name, error))
        except (ValueError, binascii.Error, RecursionError) as error:
            records.append((name, HTTPError(400, f"{name} is not valid JSON/base64 ({error})")))
    return records


def open_image(payload: bytes, name: str) -> Image.Image:
    """Open (header only) a PNG or JPEG and refuse it when it is too large to decode."""
    if not payload:
        raise HTTPError(400, f"{name} is empty; send a PNG or JPEG")
    try:
        image = Image.open(io.BytesIO(payload), formats=IMAGE_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise HTTPError(400, f"{name} is too large to decode ({error})") from error
    except Exception as error:  # Pillow raises many types for garbage; all are the input's fault
        raise HTTPError(
            400, f"{name} is not a readable PNG or JPEG ({type(error).__name__}); send one"
        ) from error
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS or width < 1 or height < 1:
        raise HTTPError(
            400,
            f"{name} is {width}x{height} pixels, more than the {MAX_IMAGE_PIXELS:,} this server "
            "decodes; resize it first",
        )
    return image


def parse_npy(payload: bytes, size: int) -> np.ndarray:
    """An ``.npy`` body: one HWC image or an NHWC batch, uint8 0..255 or float 0..1."""
    stream = io.BytesIO(payload)
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except (ValueError, OSError, SyntaxError, TypeError) as error:
        raise HTTPError(400, f"the body is not a readable .npy array ({error})") from error
    if dtype.name not in ARRAY_DTYPES:
        raise HTTPError(400, f"array dtype {dtype} is not one of {', '.join(ARRAY_DTYPES)}")
    batch_shape = _batch_shape(tuple(shape), size, "the array")
    data = memoryview(payload)[stream.tell() :]
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        raise HTTPError(
            400, f"the .npy header announces {expected} bytes of data but the body has {len(data)}"
        )
    array = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    return check_values(array.reshape(batch_shape), "the array")


def parse_json(body: bytes, size: int) -> list[Item]:
    """``{"instances": [...]}``: base64 strings, ``{"b64": ...}`` objects or nested HWC arrays."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as error:
        raise HTTPError(400, f"the body is not valid JSON ({error})") from error
    instances = document.get("instances") if isinstance(document, dict) else None
    if not isinstance(instances, list) or not instances:
        raise HTTPError(
            400, 'JSON body must be {"instances": [<base64 image> | {"b64": ...} | <HWC array>]}'
        )
    return [_instance(item, number, size) for number, item in enumerate(instances)]


def _instance(item: Any, number: int, size: int) -> Item:
    name = f"instance {number}"
    if isinstance(item, dict) and set(item) == {"b64"}:
        item = item["b64"]
    if isinstance(item, str):
        try:
            payload = base64.b64decode(item, validate=True)
        except (binascii.Error, ValueError) as error:
            raise HTTPError(400, f"{name} is not valid base64 ({error})") from error
        return open_image(payload, name)
    if isinstance(item, list):
        return _nested_array(item, name, size)
    raise HTTPError(
        400, f"{name} is a {type(item).__name__}; use a base64 string, {{'b64': ...}} or an array"
    )


def _nested_array(item: list[Any], name: str, size: int) -> np.ndarray:
    try:
        array = np.asarray(item)
    except (ValueError, TypeError, RecursionError) as error:
        raise HTTPError(400, f"{name} is not a rectangular array ({error})") from error
    if array.dtype.kind == "i" or array.dtype.kind == "u":
        if array.size and (array.min() < 0 or array.max() > 255):
            raise HTTPError(400, f"{name} has integers outside 0..255")
        array = array.astype(np.uint8)
    elif array.dtype.kind != "f":
        raise HTTPError(400, f"{name} holds {array.dtype} values; use numbers")
    if array.ndim != 3:
        raise HTTPError(400, f"{name} has shape {array.shape}; send one HWC image per instance")
    return check_values(array.reshape(_batch_shape(array.shape, size, name)), name)


def _batch_shape(shape: tuple[int, ...], size: int, name: str) -> tuple[int, int, int, int]:
    """(N, size, size, C) for an HWC or NHWC shape of the model's size, else HTTPError 400."""
    full = (1, *shape) if len(shape) == 3 else shape
    if len(full) != 4 or full[1:3] != (size, size) or full[3] not in (1, 3) or full[0] < 1:
        raise HTTPError(
            400,
            f"{name} has shape {shape}; this model takes ({size}, {size}, 3) HWC or "
            f"(N, {size}, {size}, 3) NHWC (1 channel is also accepted)",
        )
    return (full[0], full[1], full[2], full[3])


def check_values(array: np.ndarray, name: str) -> np.ndarray:
    """Refuse NaN/inf and floats outside 0..1 (the model's input range)."""
    if array.dtype.kind == "f":
        if not np.isfinite(array).all():
            raise HTTPError(400, f"{name} holds NaN or infinite values")
        if array.min() < -FLOAT_TOLERANCE or array.max() > 1 + FLOAT_TOLERANCE:
            raise HTTPError(400, f"{name} holds floats outside 0..1; scale pixels to 0..1")
    return array


def pixel_count(items: Sequence[Item]) -> int:
    """Pixels still to decode (opened images only): decides where :func:`to_batch` runs."""
    return sum(item.size[0] * item.size[1] for item in items if isinstance(item, Image.Image))


def to_batch(items: Sequence[Item], size: int) -> np.ndarray:
    """Decode and stack every instance into a float32 NCHW batch in 0..1."""
    parts = []
    for number, item in enumerate(items):
        if isinstance(item, Image.Image):
            name = "the image" if len(items) == 1 else f"instance {number}"
            parts.append(_decode(item, name, size)[None])
        else:
            parts.append(item if item.shape[-1] == 3 else np.repeat(item, 3, axis=-1))
    if all(part.dtype == np.uint8 for part in parts):
        stacked = np.concatenate(parts) if len(parts) > 1 else parts[0]
        batch = stacked.transpose(0, 3, 1, 2).astype(np.float32)
        batch *= np.float32(1 / 255)
        return batch
    floats = [p.astype(np.float32) / 255 if p.dtype == np.uint8 else p for p in parts]
    return np.ascontiguousarray(np.concatenate(floats).transpose(0, 3, 1, 2), dtype=np.float32)


def _decode(image: Image.Image, name: str, size: int) -> np.ndarray:
    try:
        with image:
            image.load()
            return to_rgb_array(image, size)
    except Exception as error:  # truncated or corrupt pixel data: the input's fault
        raise HTTPError(
            400, f"{name} cannot be decoded ({error}); send a valid PNG or JPEG"
        ) from error
