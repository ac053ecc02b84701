"""The validation step: one bad input per rule, each with the message a user sees."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import BASE_URI, make_dataset, pattern_image, read_json

from mlops_container import validate


def run(root: Path, tmp_path: Path, *extra: str) -> tuple[int, dict, str]:
    out = tmp_path / "report"
    code = validate.main(["--input-dir", str(root), "--output-dir", str(out), *extra])
    return code, read_json(out / "report.json"), ""


def rewrite(root: Path, change) -> None:
    """Apply ``change(lines)`` to the manifest's parsed lines and write them back."""
    path = root / "manifest.jsonl"
    lines = [json.loads(text) for text in path.read_text().splitlines()]
    lines = change(lines) or lines
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def rules(items: list[dict]) -> set[str]:
    return {item["rule"] for item in items}


def test_valid_dataset_passes(dataset: Path, tmp_path: Path) -> None:
    code, report, _ = run(dataset, tmp_path)
    assert code == 0
    assert report["status"] == "passed" and report["errors"] == []
    assert report["counts"]["per_class"] == {"c0": 12, "c1": 12, "c2": 12}


def failing(root: Path, tmp_path: Path, capsys, *extra: str) -> tuple[dict, str]:
    code = validate.main(["--input-dir", str(root), "--output-dir", str(tmp_path / "r"), *extra])
    assert code == 2
    report = read_json(tmp_path / "r" / "report.json")
    assert report["status"] == "failed"
    message = (Path(__import__("os").environ["SAGEMAKER_BASE_DIR"]) / "output/message").read_text()
    assert message.startswith("validation failed")
    assert message.strip() in capsys.readouterr().err
    return report, message


def test_unparseable_line(dataset: Path, tmp_path: Path, capsys) -> None:
    with (dataset / "manifest.jsonl").open("a") as handle:
        handle.write("{not json\n")
    report, message = failing(dataset, tmp_path, capsys)
    assert rules(report["errors"]) == {"manifest-parse"}
    assert "line 37: not valid JSON" in message


def test_missing_image(dataset: Path, tmp_path: Path, capsys) -> None:
    (dataset / "images/c1/img_004.png").unlink()
    report, message = failing(dataset, tmp_path, capsys)
    assert rules(report["errors"]) == {"missing-image"}
    assert f"{BASE_URI}/images/c1/img_004.png: image file not found" in message


def test_corrupt_image(dataset: Path, tmp_path: Path, capsys) -> None:
    path = dataset / "images/c0/img_002.png"
    path.write_bytes(path.read_bytes()[:40])  # truncated PNG
    report, message = failing(dataset, tmp_path, capsys)
    assert "corrupt-image" in rules(report["errors"])
    assert "img_002.png: image cannot be decoded" in message


def test_label_outside_class_list(dataset: Path, tmp_path: Path, capsys) -> None:
    rewrite(dataset, lambda lines: lines[0].update({"label": 7}))
    report, message = failing(dataset, tmp_path, capsys, "--min-per-class", "1")
    assert "label-range" in rules(report["errors"])
    assert "label 7 is outside the 3 classes" in message


def test_class_name_mismatch(dataset: Path, tmp_path: Path, capsys) -> None:
    rewrite(dataset, lambda lines: lines[0]["label-metadata"].update({"class-name": "c2"}))
    report, message = failing(dataset, tmp_path, capsys, "--min-per-class", "1")
    assert "class-name-mismatch" in rules(report["errors"])
    assert "is class 'c0' in classes.json but the line says class-name 'c2'" in message


def test_unexpected_mode_and_size_are_warnings(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    make_dataset(root, mode="RGBA", size=6)
    code, report, _ = run(root, tmp_path)
    assert code == 0 and report["status"] == "passed"
    assert rules(report["warnings"]) == {"image-mode", "image-size"}
    assert "mode RGBA not in ['L', 'RGB']" in report["warnings"][0]["message"]


def copy_image(root: Path, src: str, dst_class: str, label: int, **fields) -> None:
    """Add a manifest line pointing to a byte-identical copy of an existing image."""
    target = root / f"images/{dst_class}/copy.png"
    target.write_bytes((root / src).read_bytes())
    line = {
        "source-ref": f"{BASE_URI}/images/{dst_class}/copy.png",
        "label": label,
        "label-metadata": {"class-name": dst_class},
        **fields,
    }
    with (root / "manifest.jsonl").open("a") as handle:
        handle.write(json.dumps(line) + "\n")


def test_duplicate_same_label_is_a_warning(dataset: Path, tmp_path: Path) -> None:
    copy_image(dataset, "images/c0/img_000.png", "c0", 0)
    code, report, _ = run(dataset, tmp_path)
    assert code == 0
    assert rules(report["warnings"]) == {"duplicate-image"}
    assert "same image as" in report["warnings"][0]["message"]


def test_duplicate_with_different_labels_fails(dataset: Path, tmp_path: Path, capsys) -> None:
    copy_image(dataset, "images/c0/img_000.png", "c1", 1)
    report, message = failing(dataset, tmp_path, capsys)
    assert rules(report["errors"]) == {"duplicate-conflicting-labels"}
    assert "images/c1/copy.png: same image as" in message and "label 1 vs 0" in message


def test_duplicate_across_splits_fails(dataset: Path, tmp_path: Path, capsys) -> None:
    rewrite(dataset, lambda lines: [line.update({"split": "train"}) for line in lines] and None)
    copy_image(dataset, "images/c0/img_000.png", "c0", 0, split="test")
    report, message = failing(dataset, tmp_path, capsys)
    assert rules(report["errors"]) == {"split-leak"}
    assert "in split 'train' and here in split 'test'" in message


def test_a_single_class_cannot_train_a_classifier(tmp_path: Path, capsys) -> None:
    root = tmp_path / "ds"
    make_dataset(root, classes=1, per_class=20)
    report, message = failing(root, tmp_path, capsys)
    assert rules(report["errors"]) == {"min-classes"}
    assert "found 1 class (c0: 20 images); a classifier needs at least 2 classes" in message


def test_the_default_minimum_is_what_the_seeded_split_needs(tmp_path: Path, capsys) -> None:
    root = tmp_path / "ds"
    make_dataset(root, classes=2, per_class=6)
    report, message = failing(root, tmp_path, capsys)
    assert "class 'c0' has 6 examples, fewer than --min-per-class 7" in message


def test_class_with_too_few_examples(tmp_path: Path, capsys) -> None:
    root = tmp_path / "ds"
    make_dataset(root, per_class=3)
    report, message = failing(root, tmp_path, capsys, "--min-per-class", "4")
    assert rules(report["errors"]) == {"min-per-class"}
    assert "class 'c0' has 3 examples, fewer than --min-per-class 4" in message


def test_empty_manifest(dataset: Path, tmp_path: Path, capsys) -> None:
    (dataset / "manifest.jsonl").write_text("\n")
    report, message = failing(dataset, tmp_path, capsys)
    assert rules(report["errors"]) == {"empty-manifest"}
    assert "has no records" in message


def test_message_lists_only_first_five(dataset: Path, tmp_path: Path, capsys) -> None:
    for i in range(7):
        (dataset / f"images/c2/img_{i:03d}.png").unlink()
    report, message = failing(dataset, tmp_path, capsys, "--min-per-class", "1")
    assert len(report["errors"]) == 7
    assert message.count("[missing-image]") == 5 and "and 2 more (see report.json)" in message


@pytest.mark.parametrize("missing", ["manifest.jsonl", "classes.json"])
def test_missing_dataset_files_are_user_errors(
    dataset: Path, tmp_path: Path, capsys, missing: str
) -> None:
    (dataset / missing).unlink()
    assert validate.main(["--input-dir", str(dataset), "--output-dir", str(tmp_path / "r")]) == 2
    assert missing in capsys.readouterr().err


def test_pattern_images_are_distinct() -> None:
    assert pattern_image(0, 1).tobytes() != pattern_image(0, 2).tobytes()
