"""Small statistics in numpy (scipy is not a dependency of effscale): rank correlation, 95%
intervals over seeds, and the "within noise" test that noise-aware selection uses.

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

# Two-sided 95% quantiles of Student's t (0.975 quantile) for 1..30 degrees of freedom.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)
_Z975 = 1.959964


def t_quantile_975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (table to 30, then the
    Cornish-Fisher expansion, within 1e-3 of the exact value).

    >>> t_quantile_975(2), round(t_quantile_975(1000), 3)
    (4.303, 1.962)
    """
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)


def rankdata(values) -> np.ndarray:
    """1-based ranks, ties sharing their average rank.

    >>> rankdata([10, 30, 20, 20]).tolist()
    [1.0, 4.0, 2.5, 2.5]
    """
    values = np.asarray(values, dtype=float)
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=float)
    ranks[order] = np.arange(1, len(values) + 1)
    for value in np.unique(values):
        tied = values == value
        if tied.sum() > 1:
            ranks[tied] = ranks[tied].mean()
    return ranks


def spearman(x, y) -> tuple[float, int]:
    """Spearman's rho over the pairs where both are finite (Pearson of average ranks), and n.
    NaN when fewer than 3 pairs or one side is constant."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    n = int(keep.sum())
    if n < 3:
        return math.nan, n
    rx, ry = rankdata(x[keep]), rankdata(y[keep])
    if rx.std() == 0 or ry.std() == 0:
        return math.nan, n
    return float(np.corrcoef(rx, ry)[0, 1]), n


def mean_interval(values) -> tuple[float, float]:
    """The 95% t-interval of the mean of ``values`` (needs two or more; NaN otherwise)."""
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
