"""Small statistics on top of ``scipy.stats``: rank correlation over the finite pairs, 95%
intervals over seeds, and the "within noise" test that noise-aware selection uses. What this
module adds to scipy is the handling of the cases a search produces: NaN scores are dropped
pairwise, fewer than three pairs or a constant side give NaN (without scipy's warning), and
fewer than two seeds give no interval.

>>> rho, n = spearman([1, 2, 3, 4], [10, 20, 40, 30])
>>> round(rho, 6), n
(0.8, 4)
>>> low, high = mean_interval([0.80, 0.82, 0.84])
>>> round(low, 3), round(high, 3)
(0.77, 0.87)
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as _scipy_stats


def t_quantile_975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (``scipy.stats.t.ppf``).

    >>> round(t_quantile_975(2), 3), round(t_quantile_975(1000), 3)
    (4.303, 1.962)
    >>> t_quantile_975(0)
    Traceback (most recent call last):
    ...
    ValueError: degrees of freedom must be >= 1, got 0
    """
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    return float(_scipy_stats.t.ppf(0.975, df))


def rankdata(values) -> np.ndarray:
    """1-based ranks, ties sharing their average rank (``scipy.stats.rankdata``, as floats).

    >>> rankdata([10, 30, 20, 20]).tolist()
    [1.0, 4.0, 2.5, 2.5]
    """
    return np.asarray(_scipy_stats.rankdata(np.asarray(values, dtype=float), method="average"), dtype=float)


def spearman(x, y) -> tuple[float, int]:
    """Spearman's rho over the pairs where both are finite (``scipy.stats.spearmanr``), and n.
    NaN when fewer than 3 pairs or one side is constant.

    >>> spearman([1, 2, float("nan"), 4], [4, 3, 2, 1])
    (-1.0, 3)
    >>> spearman([1, 2, 3], [5, 5, 5])
    (nan, 3)
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    n = int(keep.sum())
    if n < 3:
        return math.nan, n
    x, y = x[keep], y[keep]
    if np.all(x == x[0]) or np.all(y == y[0]):
        return math.nan, n
    return float(_scipy_stats.spearmanr(x, y).statistic), n


def mean_interval(values) -> tuple[float, float]:
    """The 95% t-interval of the mean of ``values`` (needs two or more; NaN otherwise).

    >>> mean_interval([0.5])
    (nan, nan)
    """
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return math.nan, math.nan
    half = t_quantile_975(len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return float(values.mean() - half), float(values.mean() + half)


def within_noise(a, b) -> bool:
    """True when per-seed values ``a`` and ``b`` (same seeds, same order) cannot be told apart:
    the 95% t-interval of the mean paired difference contains 0. Pairing by seed is valid
    whether or not a seed's effect is shared by both (the differences are independent across
    seeds either way) and more sensitive when it is (same data order, same validation draw).
    Fewer than two common seeds give no noise estimate: then only equal means count as a tie.

    >>> within_noise([0.80, 0.82, 0.81], [0.81, 0.80, 0.82])
    True
    >>> within_noise([0.90, 0.91, 0.92], [0.80, 0.82, 0.81])
    False
    """
    n = min(len(a), len(b))
    diff = np.asarray(a[:n], dtype=float) - np.asarray(b[:n], dtype=float)
    if n < 2:
        return bool(n == 1 and diff[0] == 0)
    if np.all(diff == diff[0]):
        return bool(diff[0] == 0)
    low, high = mean_interval(diff)
    return bool(low <= 0 <= high)
