"""Image shifts for drifted traffic: the ``traffic --drift`` kinds and the drift benchmark's.

Each kind takes a strength; its documented default is a shift a person would notice on a
few images but a model might not (the drift benchmark measures detection at these).
``class-shift`` changes which images are sent, not the images: a share ``strength`` of the
requests comes from the first class, the rest from the whole split.

    rng = np.random.default_rng(0)
    images, labels = shifted_sample(test_images, test_labels, 200, "blur", None, rng)
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

# kind -> (default strength, what the strength means)
SHIFTS: dict[str, tuple[float, str]] = {
    "brightness": (0.1, "added to every pixel, on the 0..1 scale"),
    "contrast": (0.3, "share of each pixel's distance to the image mean that is removed"),
    "noise": (0.05, "standard deviation of added Gaussian noise, on the 0..1 scale"),
    "blur": (1.0, "Gaussian blur radius in pixels"),
    "rotate": (20.0, "rotation in degrees, clockwise or anticlockwise at random"),
    "class-shift": (0.3, "share of requests drawn from the first class alone"),
}


def check_shift(kind: str, strength: float | None) -> float:
    """The strength to use for ``kind`` (its default when None); ValueError on bad input."""
    if kind not in SHIFTS:
        raise ValueError(f"unknown shift {kind!r}; choose one of {', '.join(SHIFTS)}")
    value = SHIFTS[kind][0] if strength is None else float(strength)
    upper = 360.0 if kind == "rotate" else 100.0 if kind == "blur" else 1.0
    if not 0 <= value <= upper:
        raise ValueError(f"--strength for {kind} must be in [0, {upper:g}], got {value:g}")
    return value


def shift_image(
    image: np.ndarray, kind: str, strength: float, rng: np.random.Generator
) -> np.ndarray:
    """One uint8 H×W×3 image shifted by ``kind`` (``class-shift`` leaves it as it is)."""
    pixels = image.astype(np.float64)
    if kind == "brightness":
        pixels = pixels + strength * 255.0
    elif kind == "contrast":
        mean = pixels.mean(axis=(0, 1), keepdims=True)
        pixels = mean + (pixels - mean) * (1.0 - strength)
    elif kind == "noise":
        pixels = pixels + rng.normal(0.0, strength * 255.0, size=pixels.shape)
    elif kind in ("blur", "rotate"):
        picture = Image.fromarray(image)
        if kind == "blur":
            picture = picture.filter(ImageFilter.GaussianBlur(radius=strength))
        else:
            angle = strength if rng.random() < 0.5 else -strength
            picture = picture.rotate(angle, resample=Image.Resampling.BILINEAR)
        return np.asarray(picture, dtype=np.uint8)
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def sample_indices(
    labels: np.ndarray, count: int, kind: str, strength: float, rng: np.random.Generator
) -> np.ndarray:
    """Which images to send: uniform over the split, or skewed to the first class."""
    indices = rng.integers(0, len(labels), size=count)
    if kind == "class-shift":
        first = np.flatnonzero(labels == labels.min())
        skewed = rng.random(count) < strength
        indices[skewed] = rng.choice(first, size=int(skewed.sum()))
    return indices


def shifted_sample(
    images: np.ndarray,
    labels: np.ndarray,
    count: int,
    kind: str | None,
    strength: float | None,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` images drawn from a split (N×H×W×3 uint8) and shifted, with their labels."""
    if kind is None:
        picked = rng.integers(0, len(labels), size=count)
        return images[picked], labels[picked]
    value = check_shift(kind, strength)
    picked = sample_indices(labels, count, kind, value, rng)
    shifted = np.stack([shift_image(images[i], kind, value, rng) for i in picked])
    return shifted, labels[picked]


def png_bytes(image: np.ndarray) -> bytes:
    """A uint8 H×W×3 image as PNG bytes (what a client sends)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()
