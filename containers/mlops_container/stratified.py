"""A seeded stratified train/test split that returns exactly what sklearn's would.

``train_test_split(indices, test_size=f, stratify=labels, random_state=seed)`` is all the
preprocess step needs from scikit-learn, and importing ``sklearn.model_selection`` costs about
0.7 s (it pulls in scipy) in every pipeline run. :func:`stratified_split` is the same algorithm
in numpy: ``_validate_shuffle_split``'s sizes (``n_test = ceil(f * n)``), then
``StratifiedShuffleSplit`` with one split — ``np.unique`` class encoding, stable-sorted class
members, ``_approximate_mode`` allocation with its random tie-breaking, a permutation per class
and a final permutation of train and test, all drawn from one ``RandomState(seed)`` in the same
order. It raises ValueError where sklearn does. ``tests/unit/containers/test_stratified.py``
pins the output to sklearn's for many seeds, label sets and fractions.
"""

from __future__ import annotations

import math

import numpy as np


def split_sizes(n_samples: int, test_size: float) -> tuple[int, int]:
    """``(n_train, n_test)`` for a test fraction, rounded like sklearn (test rounds up)."""
    if not 0 < test_size < 1:
        raise ValueError(f"test_size={test_size} should be a fraction in the (0, 1) range")
    n_test = math.ceil(test_size * n_samples)
    n_train = n_samples - n_test
    if n_train == 0:
        raise ValueError(
            f"with {n_samples} samples and test_size={test_size} the train set would be empty"
        )
    return n_train, n_test


def approximate_mode(
    class_counts: np.ndarray, n_draws: int, rng: np.random.RandomState
) -> np.ndarray:
    """Samples per class for ``n_draws`` draws: floored shares, remainders by size, ties random."""
    continuous = class_counts / class_counts.sum() * n_draws
    floored = np.floor(continuous)
    need_to_add = int(n_draws - floored.sum())
    if need_to_add > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (tied,) = np.where(remainder == value)
            add_now = min(len(tied), need_to_add)
            floored[rng.choice(tied, size=add_now, replace=False)] += 1
            need_to_add -= add_now
            if need_to_add == 0:
                break
    return floored.astype(int)


def check_classes(classes: np.ndarray, counts: np.ndarray, n_train: int, n_test: int) -> None:
    """Raise ValueError when a class cannot appear in both train and test."""
    if counts.min() < 2:
        too_few = classes[counts < 2].tolist()
        raise ValueError(
            "the least populated classes have only 1 member, which is too few (a class needs "
            f"at least 2); classes with too few members: {too_few}"
        )
    if n_train < len(classes):
        raise ValueError(
            f"the train set would have {n_train} samples, fewer than the {len(classes)} classes"
        )
    if n_test < len(classes):
        raise ValueError(
            f"the test set would have {n_test} samples, fewer than the {len(classes)} classes"
        )


def stratified_split(
    indices: np.ndarray, labels: np.ndarray, test_size: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(train, test)`` items of ``indices``, stratified by ``labels``, as sklearn orders them."""
    indices, labels = np.asarray(indices), np.asarray(labels)
    if labels.ndim != 1 or len(labels) != len(indices):
        raise ValueError(f"need one label per index: {len(indices)} indices, labels {labels.shape}")
    n_train, n_test = split_sizes(len(indices), test_size)
    classes, label_ids, counts = np.unique(labels, return_inverse=True, return_counts=True)
    check_classes(classes, counts, n_train, n_test)
    members = np.split(np.argsort(label_ids, kind="stable"), np.cumsum(counts)[:-1])
    rng = np.random.RandomState(seed)
    train_counts = approximate_mode(counts, n_train, rng)
    test_counts = approximate_mode(counts - train_counts, n_test, rng)
    train, test = [], []
    for count, class_members, n_i, t_i in zip(
        counts, members, train_counts, test_counts, strict=True
    ):
        shuffled = class_members.take(rng.permutation(count), mode="clip")
        train.append(shuffled[:n_i])
        test.append(shuffled[n_i : n_i + t_i])
    train_order = rng.permutation(np.concatenate(train))
    test_order = rng.permutation(np.concatenate(test))
    return indices[train_order], indices[test_order]
