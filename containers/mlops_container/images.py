"""Image helpers shared by preprocessing, validation and serving (one resize, one hash)."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
from PIL import Image

# The same filter in preprocess and serve keeps training and inference inputs identical.
RESIZE_FILTER = Image.Resampling.BILINEAR


def open_image(path: Path) -> Image.Image:
    """Open and fully decode an image file (raises OSError/ValueError when corrupt)."""
    with Image.open(path) as probe:
        probe.verify()  # checks the container structure; the image is unusable afterwards
    image = Image.open(path)
    image.load()  # decodes the pixels: catches truncated data that verify() misses
    return image


def decode_bytes(payload: bytes) -> Image.Image:
    """Decode an in-memory image (e.g. a request body) and load its pixels."""
    image = Image.open(io.BytesIO(payload))
    image.load()
    return image


def content_hash(image: Image.Image) -> str:
    """A hash of the decoded pixels: re-encoded copies of one image hash the same."""
    digest = hashlib.sha256(f"{image.mode}:{image.size}".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def to_rgb_array(image: Image.Image, size: int) -> np.ndarray:
    """Convert to RGB (grayscale to 3 channels) and resize to ``size``×``size`` uint8 HWC."""
    rgb = image.convert("RGB")
    if rgb.size != (size, size):
        rgb = rgb.resize((size, size), RESIZE_FILTER)
    return np.asarray(rgb, dtype=np.uint8)
