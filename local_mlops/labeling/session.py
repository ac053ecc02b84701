"""One labeling job: the state a person builds up, replayed from the journal, and the manifest.

Every action goes to the journal first (fsynced), then the manifest is rewritten atomically
(temp file + rename), so a reader never sees a half-written manifest and a crash never loses a
confirmed label. Undo is an action too: it is journaled and replayed like the others.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from local_mlops.errors import LocalMlopsError
from local_mlops.labeling.journal import Journal, fsync_dir
from local_mlops.labeling.sources import CLASSES_FILE, MANIFEST_FILE, ImageSource

JOURNAL_PATH = ".labeling/journal.jsonl"
LABEL_TYPE = "groundtruth/image-classification"
JOB_PREFIX = "labeling-job/"


def now() -> str:
    """Ground Truth's creation-date format (UTC, no offset)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def check_classes(classes: list[str]) -> list[str]:
    names = [name.strip() for name in classes if name.strip()]
    if len(names) < 2:
        raise LocalMlopsError(
            "labeling needs at least two classes", "pass --classes cat,dog (or --classes-file)"
        )
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise LocalMlopsError(
            f"duplicate class names: {', '.join(duplicates)}", "list each class once"
        )
    return names


@dataclass(frozen=True)
class Label:
    index: int
    at: str


@dataclass(frozen=True)
class Action:
    """What undo must restore: the item's label and skip mark before the action."""

    op: str
    key: str
    before_label: Label | None
    before_skipped: bool


class LabelingSession:
    """Thread-safe labeling state over one image source."""

    def __init__(self, source: ImageSource, classes: list[str] | None, job_name: str) -> None:
        self.source = source
        self.job_name = job_name
        self.keys = source.list_keys()
        if not self.keys:
            raise LocalMlopsError(
                f"no images found in {source.description}",
                "point at a folder with .png/.jpg/... files",
            )
        self._known = set(self.keys)
        self._given_classes = check_classes(classes) if classes else None
        self.classes: list[str] = []
        self.labels: dict[str, Label] = {}
        self.skipped: set[str] = set()
        self.history: list[Action] = []
        self.journal = Journal(source.workdir / JOURNAL_PATH)
        self.manifest_path = source.workdir / MANIFEST_FILE
        self.classes_path = source.workdir / CLASSES_FILE
        self.notes: list[str] = []
        self._lock = threading.RLock()
        self._workdir_lock: TextIO | None = None

    # -- start -----------------------------------------------------------------------------

    def open(self) -> None:
        """Replay the journal (or adopt an existing manifest), then write the outputs."""
        self._lock_workdir()
        try:
            self._load()
        except BaseException:
            self.journal.close()
            self._unlock_workdir()
            raise

    def _load(self) -> None:
        events = self.journal.replay()
        if self.journal.repaired:
            self.notes.append("dropped an unfinished last journal line (an interrupted write)")
        for number, event in enumerate(events, 1):
            try:
                self._apply(event)
            except (KeyError, TypeError, ValueError) as exc:
                raise LocalMlopsError(
                    f"line {number} of the labeling journal {self.journal.path} is not a valid "
                    f"event ({exc!r})",
                    f"restore the file from a backup, or delete line {number} to continue",
                ) from exc
        if not events:
            self._start_fresh()
        elif self._given_classes and self._given_classes != self.classes:
            self._extend_classes(self._given_classes)
        missing = sorted(set(self.labels) - self._known)
        if missing:
            self.notes.append(
                f"{len(missing)} labelled image(s) are no longer in {self.source.description}; "
                "their labels stay in the journal but not in the manifest"
            )
        self._write_outputs(with_classes=True)

    def _lock_workdir(self) -> None:
        """One labeling process per folder: two would interleave their journals."""
        path = self.journal.path.parent / "lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            handle.close()
            raise LocalMlopsError(
                f"{self.source.description} is already being labelled (process {holder})",
                "use the page that process serves, or stop it with Ctrl-C first",
            ) from exc
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._workdir_lock = handle

    def _unlock_workdir(self) -> None:
        if self._workdir_lock is not None:
            self._workdir_lock.close()  # closing releases the flock
            self._workdir_lock = None

    def _start_fresh(self) -> None:
        saved = self._read_saved_classes()
        classes = self._given_classes or saved
        if not classes:
            raise LocalMlopsError(
                f"no classes for {self.source.description}",
                "pass --classes cat,dog,... or --classes-file classes.json",
            )
        self._record({"op": "start", "job": self.job_name, "classes": saved or classes})
        if saved and classes != saved:
            self._extend_classes(classes)
        self._adopt_manifest()

    def _read_saved_classes(self) -> list[str] | None:
        if not self.classes_path.is_file():
            return None
        try:
            value = json.loads(self.classes_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise LocalMlopsError(
                f"cannot read {self.classes_path}: {exc}", "fix it or remove it"
            ) from exc
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise LocalMlopsError(
                f"{self.classes_path} is not a JSON list of class names", "fix it or remove it"
            )
        return check_classes(value)

    def _extend_classes(self, wanted: list[str]) -> None:
        current = self.classes
        if wanted[: len(current)] != current:
            raise LocalMlopsError(
                f"{self.source.description} is being labelled with the classes "
                f"{', '.join(current)}; new classes can only be added at the end",
                f"use --classes {','.join(current)},... or omit --classes to continue",
            )
        self._record({"op": "classes", "classes": wanted})

    def _adopt_manifest(self) -> None:
        """Labels in a manifest made before this journal existed become the starting point."""
        if not self.manifest_path.is_file():
            return
        backup = self.journal.path.parent / f"manifest-before-{now().replace(':', '')}.jsonl"
        backup.write_bytes(self.manifest_path.read_bytes())
        key_of = {self.source.source_ref(key): key for key in self.keys}
        adopted = 0
        for line in self.manifest_path.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(ValueError, AttributeError):
                obj = json.loads(line)
                key, label = key_of.get(obj.get("source-ref")), obj.get("label")
                if key and isinstance(label, int) and 0 <= label < len(self.classes):
                    meta = obj.get("label-metadata") or {}
                    self._record(
                        {"op": "seed", "key": key, "label": label, "at": meta.get("creation-date")}
                    )
                    adopted += 1
        self.notes.append(f"adopted {adopted} label(s) from the existing {self.manifest_path.name}")

    # -- actions ---------------------------------------------------------------------------

    def _record(self, event: dict[str, Any]) -> None:
        if not event.get("at"):
            event["at"] = now()
        self.journal.append(event)
        self._apply(event)

    def _apply(self, event: dict[str, Any]) -> None:
        """The one state machine, shared by live actions and replay."""
        op, key = event["op"], event.get("key", "")
        if op in ("start", "classes"):
            self.classes = list(event["classes"])
        elif op in ("label", "seed"):
            if op == "label":
                self.history.append(Action(op, key, self.labels.get(key), key in self.skipped))
            self.labels[key] = Label(int(event["label"]), str(event["at"]))
            self.skipped.discard(key)
        elif op == "skip":
            self.history.append(Action(op, key, self.labels.get(key), key in self.skipped))
            self.skipped.add(key)
        elif op == "undo" and self.history:
            action = self.history.pop()
            if action.before_label is None:
                self.labels.pop(action.key, None)
            else:
                self.labels[action.key] = action.before_label
            if action.before_skipped:
                self.skipped.add(action.key)
            else:
                self.skipped.discard(action.key)

    def _check_key(self, key: Any) -> str:
        if not isinstance(key, str) or key not in self._known:
            raise KeyError(f"unknown image key {key!r}")
        return key

    def label(self, key: Any, label: Any) -> dict[str, Any]:
        """Give ``key`` the class ``label`` (an index into ``classes``)."""
        key = self._check_key(key)
        if not isinstance(label, int) or isinstance(label, bool):
            raise ValueError(f"label must be a class index, got {label!r}")
        with self._lock:
            if not 0 <= label < len(self.classes):
                raise ValueError(f"label {label} is not one of the {len(self.classes)} classes")
            self._record({"op": "label", "key": key, "label": label, "class": self.classes[label]})
            self._write_outputs()
            return self.item(key)

    def skip(self, key: Any) -> dict[str, Any]:
        """Mark ``key`` as skipped (not in the manifest; resume starts after it)."""
        key = self._check_key(key)
        with self._lock:
            self._record({"op": "skip", "key": key})
            return self.item(key)

    def undo(self) -> dict[str, Any] | None:
        """Revert the last label or skip still in effect (across restarts); None if none."""
        with self._lock:
            if not self.history:
                return None
            action = self.history[-1]
            self._record({"op": "undo", "key": action.key})
            if action.op == "label":
                self._write_outputs()
            return {"op": action.op, "item": self.item(action.key)}

    # -- views -----------------------------------------------------------------------------

    def item(self, key: str) -> dict[str, Any]:
        label = self.labels.get(key)
        item: dict[str, Any] = {
            "key": key,
            "label": label.index if label else None,
            "skipped": key in self.skipped,
        }
        suggested = self.source.suggestion(key)
        if suggested is not None:
            name, probability = suggested
            index = self.classes.index(name) if name in self.classes else None
            item["suggestion"] = {"class": name, "label": index, "probability": probability}
        return item

    def counts(self) -> dict[str, int]:
        with self._lock:
            return self._counts()

    def _counts(self) -> dict[str, int]:
        labeled = sum(1 for key in self.keys if key in self.labels)
        skipped = sum(1 for key in self.keys if key in self.skipped)
        return {"labeled": labeled, "skipped": skipped, "total": len(self.keys)}

    def resume_position(self) -> int:
        """Where the person left off: the first image neither labelled nor skipped."""
        fresh = [
            i for i, k in enumerate(self.keys) if k not in self.labels and k not in self.skipped
        ]
        unlabeled = [i for i, k in enumerate(self.keys) if k not in self.labels]
        return (fresh or unlabeled or [0])[0]

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "job": self.job_name,
                "source": self.source.description,
                "classes": self.classes,
                "items": [self.item(key) for key in self.keys],
                "counts": self.counts(),
                "position": self.resume_position(),
                "can_undo": bool(self.history),
                "manifest": str(self.manifest_path),
            }

    # -- outputs ---------------------------------------------------------------------------

    def entries(self) -> list[dict[str, Any]]:
        """The manifest lines, in image order."""
        lines = []
        for key in self.keys:
            label = self.labels.get(key)
            if label is None:
                continue
            lines.append(
                {
                    "source-ref": self.source.source_ref(key),
                    "label": label.index,
                    "label-metadata": {
                        "class-name": self.classes[label.index],
                        "confidence": 1.0,
                        "type": LABEL_TYPE,
                        "human-annotated": "yes",
                        "creation-date": label.at,
                        "job-name": JOB_PREFIX + self.job_name,
                    },
                }
            )
        return lines

    def _write_outputs(self, with_classes: bool = False) -> None:
        self._write_manifest(with_classes)
        # Every label in the journal, also of images no longer listed (a narrower window).
        named = {
            key: (self.classes[label.index], label.at)
            for key, label in self.labels.items()
            if 0 <= label.index < len(self.classes)
        }
        self.source.labels_changed(named)

    def _write_manifest(self, with_classes: bool) -> None:
        text = "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in self.entries())
        try:
            write_atomic(self.manifest_path, text)
            if with_classes:
                write_atomic(self.classes_path, json.dumps(self.classes, indent=1) + "\n")
        except OSError as exc:
            raise LocalMlopsError(
                f"the label is saved in the journal, but {self.manifest_path} could not be "
                f"written: {exc}",
                "free disk space or fix permissions; the manifest is rebuilt on the next action "
                "or restart",
            ) from exc

    def close(self) -> dict[str, Any]:
        """Final write and publish; returns the summary the CLI prints."""
        with self._lock:
            try:
                self._write_outputs(with_classes=True)
            finally:
                self.journal.close()
                self._unlock_workdir()
            published = self.source.publish(self.manifest_path, self.classes_path)
            return {
                "source": self.source.description,
                "manifest": published,
                "classes": self.classes,
                "job_name": JOB_PREFIX + self.job_name,
                **self.counts(),
                "remaining": len(self.keys) - self.counts()["labeled"],
                "journal": str(self.journal.path),
            }


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so readers see the old or the new file, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)
