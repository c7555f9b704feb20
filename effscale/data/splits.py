"""Seeded, stratified index splits: the held-out validation and test parts of a labelled pool,
and class-balanced subsets of a training split (scikit-learn's ``train_test_split`` with
``stratify=`` does the work). :func:`effscale.data.pipeline.load_data` uses them for every source whose
labels it holds in memory.

>>> labels = np.repeat([0, 1, 2], [40, 40, 20])
>>> parts = split_indices(labels, validation_fraction=0.25, test_fraction=0.2, seed=0)
>>> {name: np.bincount(labels[part]).tolist() for name, part in parts.items()}
{'train': [24, 24, 12], 'validation': [8, 8, 4], 'test': [8, 8, 4]}
"""

from __future__ import annotations

import numpy as np

from effscale.common.errors import UserError


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded, stratified (kept indices, held-out indices): ``fraction`` of ``labels`` held out
    with every class in proportion (scikit-learn ``train_test_split(stratify=)``); kept indices
    come shuffled, held-out ones sorted. ``fraction`` may also be a count.

    >>> kept, held = stratified_split(np.array([0] * 10 + [1] * 5), 0.2, seed=0)
    >>> len(kept), len(held), sorted(set(kept) & set(held)), np.bincount(np.array([0] * 10 + [1] * 5)[held]).tolist()
    (12, 3, [], [2, 1])
    """
    from sklearn.model_selection import train_test_split

    labels = np.asarray(labels)
    try:
        kept, held = train_test_split(np.arange(len(labels)), test_size=fraction, stratify=labels,
                                      random_state=int(seed) % 2**32)
    except ValueError as error:
        counts = np.bincount(labels) if labels.dtype.kind in "iu" and len(labels) else []
        raise UserError(f"cannot hold out {fraction:g} of {len(labels)} examples stratified by class "
                        f"(fewest in a class: {min((c for c in counts if c), default=0)}): {error}") from None
    return kept.astype(np.int64), np.sort(held).astype(np.int64)


def class_balanced_subset(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Seeded indices of ``count`` of ``labels`` that keep every class in proportion (all of
    them, shuffled, when ``count`` is not smaller).

    >>> labels = np.repeat([0, 1, 2], [50, 30, 20])
    >>> np.bincount(labels[class_balanced_subset(labels, 10, seed=0)]).tolist()
    [5, 3, 2]
    """
    if count >= len(labels):
        return np.random.default_rng(seed).permutation(len(labels))
    held = stratified_split(labels, int(count), seed)[1]
    return np.random.default_rng(seed).permutation(held)


def split_indices(labels: np.ndarray, validation_fraction: float, test_fraction: float | None, seed: int,
                  train_examples: int | None = None, train_fraction: float | None = None) -> dict:
    """``{"train", "validation", "test"}`` index arrays of one pool of ``labels``: a stratified
    ``test_fraction`` held out first (None: the caller has a test set of its own, "test" is
    empty), then a stratified ``validation_fraction`` of the rest; then ``train_examples`` (or
    ``train_fraction``) of what is left is kept, class-balanced. Disjoint, seeded.

    >>> parts = split_indices(np.repeat([0, 1], 50), 0.25, 0.2, seed=0, train_examples=30)
    >>> [len(parts[s]) for s in ("train", "validation", "test")]
    [30, 20, 20]
    """
    labels = np.asarray(labels)
    rest, test = (np.arange(len(labels)), np.array([], dtype=np.int64)) if test_fraction is None \
        else stratified_split(labels, test_fraction, seed)
    kept, validation = stratified_split(labels[rest], validation_fraction, seed)
    train = rest[kept]
    if train_examples is not None:
        train = train[class_balanced_subset(labels[train], int(train_examples), seed)]
    elif train_fraction is not None and train_fraction < 1:
        train = train[class_balanced_subset(labels[train], max(1, int(round(len(train) * train_fraction))), seed)]
    return {"train": train, "validation": rest[validation], "test": test}
