"""stratified_split returns exactly sklearn's train_test_split indices, and fails where it does."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from mlops_container import preprocess
from mlops_container.errors import UserError
from mlops_container.stratified import stratified_split

SEEDS = (0, 1, 7, 42, 2024)
FRACTIONS = ((0.15, 0.15), (0.2, 0.1), (0.1, 0.3), (0.25, 0.25), (0.05, 0.2))


def sklearn_split(
    indices: np.ndarray, labels: np.ndarray, test_size: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    train, test = train_test_split(indices, test_size=test_size, stratify=labels, random_state=seed)
    return train, test


def assert_same(indices: np.ndarray, labels: np.ndarray, test_size: float, seed: int) -> None:
    expected = sklearn_split(indices, labels, test_size, seed)
    got = stratified_split(indices, labels, test_size, seed)
    for ours, theirs in zip(got, expected, strict=True):
        np.testing.assert_array_equal(ours, theirs)  # same items in the same order
        assert ours.dtype == theirs.dtype


def assert_same_three_way(labels: np.ndarray, val: float, test: float, seed: int) -> bool:
    """Both levels as split_indices makes them (False: both refused the labels as too few)."""
    indices = np.arange(len(labels))
    try:
        rest, test_idx = sklearn_split(indices, labels, test, seed)
        train_idx, val_idx = sklearn_split(rest, labels[rest], val / (1 - test), seed)
    except ValueError as error:
        with pytest.raises(UserError, match=re.escape("cannot make a stratified split")):
            preprocess.split_indices(labels, val, test, seed)
        assert "classes" in str(error)  # sklearn failed for too few samples per class, as we did
        return False
    assert_same(indices, labels, test, seed)
    assert_same(rest, labels[rest], val / (1 - test), seed)
    got = preprocess.split_indices(labels, val, test, seed)
    for split, expected in zip(preprocess.SPLITS, (train_idx, val_idx, test_idx), strict=True):
        np.testing.assert_array_equal(got[split], np.sort(expected))
    return True


def random_labels(rng: np.random.Generator) -> np.ndarray:
    """2-15 classes, 20-2000 samples, imbalanced by random class weights; each class >= 3."""
    classes = int(rng.integers(2, 16))
    n = int(rng.integers(max(20, 3 * classes), 2001))
    weights = rng.dirichlet(np.full(classes, 0.7))
    labels = np.concatenate(
        [np.arange(classes).repeat(3), rng.choice(classes, n - 3 * classes, p=weights)]
    )
    return rng.permutation(labels).astype(np.int64)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("val", "test"), FRACTIONS)
def test_digits_labels_match_sklearn(seed: int, val: float, test: float) -> None:
    labels = load_digits().target.astype(np.int64)
    assert assert_same_three_way(labels, val, test, seed)


def test_random_imbalanced_labels_match_sklearn() -> None:
    split = 0
    for case in range(150):
        labels = random_labels(np.random.default_rng(case))
        val, test = FRACTIONS[case % len(FRACTIONS)]
        split += assert_same_three_way(labels, val, test, SEEDS[case % len(SEEDS)])
    assert split >= 120  # most label sets split; the rest are refused by both


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("per_class", [(2, 2, 2, 2), (3, 2, 3, 2, 3), (2, 3, 40, 7)])
def test_tiny_classes_match_sklearn(seed: int, per_class: tuple[int, ...]) -> None:
    labels = np.random.default_rng(seed).permutation(
        np.repeat(np.arange(len(per_class)), per_class)
    )
    for fraction in (0.3, 0.45, 0.5, 0.6):
        try:
            expected = sklearn_split(np.arange(len(labels)), labels, fraction, seed)
        except ValueError:
            with pytest.raises(ValueError):
                stratified_split(np.arange(len(labels)), labels, fraction, seed)
            continue
        got = stratified_split(np.arange(len(labels)), labels, fraction, seed)
        for ours, theirs in zip(got, expected, strict=True):
            np.testing.assert_array_equal(ours, theirs)


def test_random_classes_of_two_or_three_members_match_sklearn() -> None:
    split = 0
    for case in range(200):
        rng = np.random.default_rng(1000 + case)
        per_class = rng.integers(2, 4, size=int(rng.integers(2, 7))).tolist()
        per_class += [int(rng.integers(4, 30))] * int(rng.integers(0, 2))  # sometimes a big one
        labels = rng.permutation(np.repeat(np.arange(len(per_class)), per_class))
        fraction, seed = float(rng.uniform(0.3, 0.6)), SEEDS[case % len(SEEDS)]
        try:
            expected = sklearn_split(np.arange(len(labels)), labels, fraction, seed)
        except ValueError as error:
            with pytest.raises(ValueError, match="fewer than the"):
                stratified_split(np.arange(len(labels)), labels, fraction, seed)
            assert "should be greater or equal to the number of classes" in str(error)
            continue
        got = stratified_split(np.arange(len(labels)), labels, fraction, seed)
        for ours, theirs in zip(got, expected, strict=True):
            np.testing.assert_array_equal(ours, theirs)
        split += 1
    assert split >= 100


@pytest.mark.parametrize("seed", SEEDS)
def test_ties_balanced_classes_and_string_labels_match_sklearn(seed: int) -> None:
    for classes, per_class, fraction in ((4, 20, 0.2), (7, 10, 0.15), (3, 13, 1 / 3), (10, 5, 0.5)):
        labels = np.repeat(np.arange(classes), per_class)
        assert_same(np.arange(len(labels)), labels, fraction, seed)
        names = np.array([f"class-{label}" for label in labels])
        assert_same(np.arange(100, 100 + len(names)), names, fraction, seed)


def test_a_class_with_one_member_is_refused_like_sklearn() -> None:
    labels = np.array([0] * 10 + [1] * 10 + [2])
    with pytest.raises(ValueError, match="only 1 member"):
        train_test_split(np.arange(21), test_size=0.3, stratify=labels, random_state=0)
    with pytest.raises(ValueError, match=re.escape("only 1 member, which is too few")) as error:
        stratified_split(np.arange(21), labels, 0.3, 0)
    assert "[2]" in str(error.value)


def test_a_test_set_smaller_than_the_classes_is_refused_like_sklearn() -> None:
    labels = np.repeat(np.arange(5), 4)  # 20 samples: a 0.2 test set holds 4 < 5 classes
    with pytest.raises(ValueError, match="test_size = 4 should be greater or equal"):
        train_test_split(np.arange(20), test_size=0.2, stratify=labels, random_state=0)
    with pytest.raises(ValueError, match="test set would have 4 samples, fewer than the 5 classes"):
        stratified_split(np.arange(20), labels, 0.2, 0)


def test_a_train_set_smaller_than_the_classes_is_refused_like_sklearn() -> None:
    labels = np.repeat(np.arange(5), 4)  # a 0.85 test set leaves 3 < 5 for train
    with pytest.raises(ValueError, match="train_size = 3 should be greater or equal"):
        train_test_split(np.arange(20), test_size=0.85, stratify=labels, random_state=0)
    with pytest.raises(
        ValueError, match="train set would have 3 samples, fewer than the 5 classes"
    ):
        stratified_split(np.arange(20), labels, 0.85, 0)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_fractions_outside_zero_one_are_refused(fraction: float) -> None:
    with pytest.raises(ValueError, match="should be a fraction in the"):
        stratified_split(np.arange(10), np.repeat([0, 1], 5), fraction, 0)


def test_split_indices_turns_the_errors_into_a_user_error_naming_the_problem() -> None:
    labels = np.repeat(np.arange(3), 2)  # 6 images: the 0.15 test split cannot hold 3 classes
    with pytest.raises(UserError, match="cannot make a stratified split") as error:
        preprocess.split_indices(labels, 0.15, 0.15, 42)
    assert "fewer than the 3 classes" in str(error.value)
    with pytest.raises(UserError, match="only 1 member"):
        preprocess.split_indices(np.array([0] * 20 + [1]), 0.15, 0.15, 42)


def test_the_preprocess_step_never_imports_sklearn() -> None:
    """sklearn's import was ~0.7 s of every preprocess run; the split no longer needs it."""
    code = "import sys; sys.modules['sklearn'] = None\nimport mlops_container.preprocess\n"
    env = {**os.environ, "PYTHONPATH": str(Path(preprocess.__file__).parents[1])}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
