"""Sources the importer reads: sklearn digits, the CIFAR-10 archive, image folders.

Each loader returns a :class:`SourceDataset`: ordered class names and samples whose
pixels are decoded lazily, so a large image folder is never held in memory at once.
"""

from __future__ import annotations

import csv
import json
import pickle
import socket
import tarfile
import tempfile
import urllib.error
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image

from .errors import UserError

CIFAR_DIR = "cifar-10-batches-py"
CIFAR_BATCHES = [f"data_batch_{n}" for n in range(1, 6)] + ["test_batch"]
CIFAR_META = "batches.meta"
CIFAR_DEFAULT_PER_CLASS = 500
CIFAR_OFFLINE_MESSAGE = (
    "CIFAR-10 could not be downloaded (offline?); download cifar-10-python.tar.gz elsewhere "
    "and pass --data PATH (--source PATH when running the importer directly)"
)
DOWNLOAD_TIMEOUT_SECONDS = 20.0
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm"}


@dataclass(frozen=True)
class Sample:
    """One image of a source: its class, a file stem, and a loader for its pixels."""

    class_name: str
    name: str
    load: Callable[[], Image.Image]
    path: str = ""  # the source file, for messages (empty for images decoded from arrays)


@dataclass
class SourceDataset:
    """Class names in label order, the labelled samples, and images left unlabelled."""

    classes: list[str]
    samples: list[Sample]
    unlabeled: list[str] = field(default_factory=list)
    human_annotated: bool = False


def load_digits_source() -> SourceDataset:
    """sklearn's 1,797 8×8 digits (0..16 scaled to 0..255), classes "0".."9"; offline."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = np.clip(np.rint(digits.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    classes = [str(n) for n in range(10)]
    samples = [
        Sample(classes[int(label)], f"digit_{index:04d}", _array_loader(pixels[index], "L"))
        for index, label in enumerate(digits.target)
    ]
    return SourceDataset(classes, samples)


def _array_loader(array: np.ndarray, mode: str) -> Callable[[], Image.Image]:
    return lambda: Image.fromarray(array, mode=mode)


# Everything a CIFAR-10 pickle refers to by name: numpy's array and dtype rebuilders (under
# numpy 1 and numpy 2 module names) and the bytes encoder of protocol-2 pickles. Dicts, lists,
# bytes, str and numbers need no name.
CIFAR_PICKLE_GLOBALS = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),
    }
)


class CifarUnpickler(pickle.Unpickler):
    """Reads CIFAR-10's pickles without running code: any other global is refused.

    A pickle can name any callable (``os.system``...) and unpickling calls it; the official
    format only needs the names in ``CIFAR_PICKLE_GLOBALS``.
    """

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in CIFAR_PICKLE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"it refers to {module}.{name}, which a CIFAR-10 pickle never holds "
            "(unpickling it could run code)"
        )


def _load_cifar_pickle(handle: IO[bytes], where: str) -> dict[bytes, Any]:
    try:
        value = CifarUnpickler(handle, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
        raise UserError(
            f"{where} is not a CIFAR-10 pickle, refused: {error}; use the official "
            "cifar-10-python.tar.gz"
        ) from error
    if not isinstance(value, dict):
        raise UserError(f"{where} holds a {type(value).__name__}, not a CIFAR-10 batch dict")
    return value


def _read_cifar_pickles(source: Path) -> dict[str, dict[bytes, Any]]:
    """Read the official pickles from the tar.gz or the extracted directory (see CifarUnpickler)."""
    names = [CIFAR_META, *CIFAR_BATCHES]
    result: dict[str, dict[bytes, Any]] = {}
    if source.is_dir():
        folder = source / CIFAR_DIR if (source / CIFAR_DIR).is_dir() else source
        for name in names:
            if (folder / name).is_file():
                with (folder / name).open("rb") as handle:
                    result[name] = _load_cifar_pickle(handle, str(folder / name))
    elif source.is_file():
        try:
            with tarfile.open(source, "r:*") as archive:
                for member in archive.getmembers():
                    base = Path(member.name).name
                    member_file = archive.extractfile(member) if base in names else None
                    if member_file is not None:
                        where = f"{member.name} in {source}"
                        result[base] = _load_cifar_pickle(member_file, where)
        except tarfile.TarError as error:
            raise UserError(f"{source} is not a readable CIFAR-10 tar archive: {error}") from error
    else:
        raise UserError(f"CIFAR-10 source not found: {source}")
    if CIFAR_META not in result or not any(name in result for name in CIFAR_BATCHES):
        raise UserError(
            f"{source} does not look like the CIFAR-10 python archive "
            f"(needs {CIFAR_META} and data_batch_*/test_batch)"
        )
    return result


def load_cifar10_source(source: Path | None, per_class: int | None, seed: int) -> SourceDataset:
    """A seeded subset of ``per_class`` CIFAR-10 images per class (train and test batches)."""
    if source is None:
        source = _download_cifar10()
    pickles = _read_cifar_pickles(source)
    classes = [name.decode() for name in pickles[CIFAR_META][b"label_names"]]
    images: list[np.ndarray] = []
    labels: list[int] = []
    names: list[str] = []
    for batch in CIFAR_BATCHES:
        if batch in pickles:
            data = np.asarray(pickles[batch][b"data"], dtype=np.uint8)
            images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            labels.extend(int(v) for v in pickles[batch][b"labels"])
            names.extend(f"{batch}_{i:05d}" for i in range(len(data)))
    pixels = np.concatenate(images)
    label_array = np.asarray(labels)
    rng = np.random.default_rng(seed)
    keep = per_class or CIFAR_DEFAULT_PER_CLASS
    chosen: list[int] = []
    for label in range(len(classes)):
        indices = np.flatnonzero(label_array == label)
        chosen.extend(sorted(rng.permutation(indices)[:keep].tolist()))
    samples = [
        Sample(classes[labels[i]], names[i], _array_loader(pixels[i], "RGB")) for i in chosen
    ]
    return SourceDataset(classes, samples)


def _download_cifar10() -> Path:
    """Fetch CIFAR-10 with torchvision into a temp dir, failing fast when offline."""
    from torchvision.datasets import CIFAR10

    target = Path(tempfile.mkdtemp(prefix="cifar10-"))
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_SECONDS)
    try:
        CIFAR10(root=str(target), download=True)
    except (OSError, urllib.error.URLError, RuntimeError) as error:
        raise UserError(f"{CIFAR_OFFLINE_MESSAGE} ({error})") from error
    finally:
        socket.setdefaulttimeout(previous)
    return target


def _image_files(folder: Path) -> Iterator[Path]:
    return (
        p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )


def _file_loader(path: Path) -> Callable[[], Image.Image]:
    def load() -> Image.Image:
        with Image.open(path) as image:
            image.load()
            return image.copy()

    return load


def load_imagefolder_source(source: Path, per_class: int | None) -> SourceDataset:
    """A folder with one subfolder per class (sorted names give the label order)."""
    if not source.is_dir():
        raise UserError(f"image folder not found: {source}")
    classes = sorted(p.name for p in source.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise UserError(f"{source} has no class subfolders (expected <source>/<class>/<image>)")
    samples: list[Sample] = []
    for class_name in classes:
        files = list(_image_files(source / class_name))[: per_class or None]
        samples.extend(Sample(class_name, f.stem, _file_loader(f), str(f)) for f in files)
    return SourceDataset(classes, samples)


def read_label_file(path: Path) -> dict[str, str]:
    """Labels for unlabelled images: a ``filename,class`` CSV or a JSONL manifest."""
    if not path.is_file():
        raise UserError(f"labels file not found: {path}")
    labels: dict[str, str] = {}
    if path.suffix.lower() in {".jsonl", ".manifest", ".json"}:
        for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if text.strip():
                labels.update(_label_from_manifest_line(path, number, text))
        return labels
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.reader(handle):
            if len(row) < 2 or row[0].strip().lower() in {"filename", "file", ""}:
                continue  # header or blank row
            labels[Path(row[0].strip()).name] = row[1].strip()
    return labels


def _label_from_manifest_line(path: Path, number: int, text: str) -> dict[str, str]:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as error:
        raise UserError(f"{path}:{number}: not valid JSON ({error.msg})") from error
    metadata: object = next((v for k, v in obj.items() if k.endswith("-metadata")), {})
    class_name = metadata.get("class-name") if isinstance(metadata, dict) else None
    ref = obj.get("source-ref")
    if not isinstance(ref, str) or not class_name:
        raise UserError(f"{path}:{number}: needs 'source-ref' and '<label>-metadata.class-name'")
    return {ref.rsplit("/", 1)[-1]: str(class_name)}


def load_unlabeled_source(source: Path, labels_file: Path | None) -> SourceDataset:
    """A flat image folder plus a labels file; unlabelled images are reported, not imported."""
    if not source.is_dir():
        raise UserError(f"image folder not found: {source}")
    if labels_file is None:
        raise UserError("--dataset unlabeled needs --labels FILE (CSV filename,class or JSONL)")
    labels = read_label_file(labels_file)
    for class_name in set(labels.values()):
        if "/" in class_name or class_name in {".", ".."}:
            raise UserError(f"class name {class_name!r} in {labels_file} cannot be a folder name")
    classes = sorted(set(labels.values()))
    samples, unlabeled = [], []
    for file in _image_files(source):
        if file.name in labels:
            samples.append(Sample(labels[file.name], file.stem, _file_loader(file), str(file)))
        else:
            unlabeled.append(file.name)
    return SourceDataset(classes, samples, unlabeled, human_annotated=True)
