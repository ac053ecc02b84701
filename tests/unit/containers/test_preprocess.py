"""The preprocess step: deterministic stratified splits, npz layout, monitoring baseline."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
from conftest import make_dataset, read_json

from mlops_container import preprocess
from mlops_container.features import FEATURE_NAMES


def run(root: Path, out: Path, *extra: str) -> int:
    return preprocess.main(
        ["--input-dir", str(root), "--output-dir", str(out), "--image-size", "16", *extra]
    )


def refs(out: Path, split: str) -> list[str]:
    with np.load(out / split / "data.npz") as data:
        return data["source_refs"].tolist()


def test_same_seed_same_split_other_seed_differs(dataset: Path, tmp_path: Path) -> None:
    assert run(dataset, tmp_path / "a") == 0
    assert run(dataset, tmp_path / "b") == 0
    assert run(dataset, tmp_path / "c", "--seed", "7") == 0
    for split in ("train", "validation", "test"):
        assert refs(tmp_path / "a", split) == refs(tmp_path / "b", split)
    assert refs(tmp_path / "a", "test") != refs(tmp_path / "c", "test")


def test_splits_are_stratified_disjoint_and_resized(tmp_path: Path, capsys) -> None:
    root = tmp_path / "ds"
    make_dataset(root, classes=4, per_class=20)
    out = tmp_path / "out"
    assert run(root, out, "--val-fraction", "0.2", "--test-fraction", "0.2") == 0
    assert "splits train=48 validation=16 test=16" in capsys.readouterr().out
    seen: set[str] = set()
    for split, per_class in (("train", 12), ("validation", 4), ("test", 4)):
        with np.load(out / split / "data.npz") as data:
            assert data["images"].shape[1:] == (16, 16, 3) and data["images"].dtype == np.uint8
            assert data["labels"].dtype == np.int64
            assert Counter(data["labels"].tolist()) == dict.fromkeys(range(4), per_class)
        assert not seen & set(refs(out, split))
        seen |= set(refs(out, split))
        assert read_json(out / split / "classes.json") == ["c0", "c1", "c2", "c3"]
        assert set(read_json(out / split / "normalization.json")) == {"mean", "std"}


def test_duplicates_are_removed(dataset: Path, tmp_path: Path, capsys) -> None:
    manifest = dataset / "manifest.jsonl"
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join(lines + lines[:3]) + "\n")
    assert run(dataset, tmp_path / "out") == 0
    assert "duplicates_removed=3" in capsys.readouterr().out
    total = sum(len(refs(tmp_path / "out", s)) for s in ("train", "validation", "test"))
    assert total == 36


def test_normalization_comes_from_train_split(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run(dataset, out) == 0
    with np.load(out / "train" / "data.npz") as data:
        expected = (data["images"].reshape(-1, 3) / 255.0).mean(axis=0)
    norm = read_json(out / "meta" / "normalization.json")
    assert np.allclose(norm["mean"], expected, atol=1e-5)


def test_baseline_in_model_monitor_format(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run(dataset, out) == 0
    stats = read_json(out / "baseline" / "statistics.json")
    assert stats["version"] == 0.0 and stats["dataset"]["item_count"] == 36
    by_name = {f["name"]: f for f in stats["features"]}
    assert set(by_name) == {*FEATURE_NAMES, "label"}
    width = by_name["width"]
    assert width["inferred_type"] == "Integral"
    assert width["numerical_statistics"]["mean"] == 8.0  # original size, not the resized 16
    buckets = by_name["brightness"]["numerical_statistics"]["distribution"]["kll"]["buckets"]
    assert sum(b["count"] for b in buckets) == 36
    assert {"lower_bound", "upper_bound", "count"} <= set(buckets[0])
    label = by_name["label"]["string_statistics"]
    assert label["distinct_count"] == 3
    assert label["distribution"]["categorical"]["buckets"][0] == {"value": "c0", "count": 12}
    constraints = read_json(out / "baseline" / "constraints.json")
    assert constraints["version"] == 0.0
    assert (
        constraints["monitoring_config"]["distribution_constraints"]["comparison_threshold"] == 0.1
    )
    assert all(f["completeness"] == 1.0 for f in constraints["features"])
    numeric = [f for f in constraints["features"] if f["inferred_type"] != "String"]
    assert all(f["num_constraints"] == {"is_non_negative": True} for f in numeric)


def test_too_few_images_to_stratify_is_a_user_error(tmp_path: Path, capsys) -> None:
    root = tmp_path / "ds"
    make_dataset(root, per_class=2)
    assert run(root, tmp_path / "out") == 2
    assert "cannot make a stratified split" in capsys.readouterr().err


def test_bad_fractions_are_rejected(dataset: Path, tmp_path: Path, capsys) -> None:
    assert run(dataset, tmp_path / "out", "--val-fraction", "0.6", "--test-fraction", "0.5") == 2
    assert "--val-fraction and --test-fraction" in capsys.readouterr().err
