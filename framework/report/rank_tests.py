"""The Wilcoxon signed-rank and Mann-Whitney U tests on many units: the normal approximations scipy.stats uses
there (``method="auto"`` above 50 differences, or 8 requests a side), in numpy. A big report's tests then do not
import scipy.stats (~1 s and ~70 MB); small samples still get scipy's exact tests (``significance``)."""

from __future__ import annotations

import math

import numpy as np

#: Above this many paired differences (zeros included) scipy's Wilcoxon is the normal approximation.
WILCOXON_ASYMPTOTIC_ABOVE = 50
#: Above this many values on both sides scipy's Mann-Whitney U is the normal approximation.
MANN_WHITNEY_ASYMPTOTIC_ABOVE = 8


def average_ranks(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 1-based ranks of ``x``, ties given their average, and the size of each group of equal values."""
    order = np.argsort(x, kind="mergesort")
    ordered = x[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    sizes = np.diff(np.r_[starts, x.size])
    ranks = np.empty(x.size)
    ranks[order] = np.repeat(starts + (sizes + 1) / 2.0, sizes)
    return ranks, sizes


def wilcoxon_asymptotic(diffs: np.ndarray) -> float:
    """Two-sided p of the Wilcoxon signed-rank test, zeros dropped (``zero_method="wilcox"``), tie-corrected, no
    continuity correction: ``scipy.stats.wilcoxon(diffs, method="asymptotic")``."""
    d = diffs[diffs != 0]
    n = float(d.size)
    ranks, ties = average_ranks(np.abs(d))
    r_plus = float(ranks[d > 0].sum())
    mean = n * (n + 1) / 4
    var = (n * (n + 1) * (2 * n + 1) - float((ties.astype(float) ** 3 - ties).sum()) / 2) / 24
    z = (r_plus - mean) / math.sqrt(var)
    return min(1.0, math.erfc(abs(z) / math.sqrt(2)))


def mann_whitney_asymptotic(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided p of the Mann-Whitney U test, tie-corrected, with continuity correction:
    ``scipy.stats.mannwhitneyu(a, b, method="asymptotic")``."""
    n1, n2 = float(a.size), float(b.size)
    n = n1 + n2
    ranks, ties = average_ranks(np.concatenate([a, b]))
    u1 = float(ranks[: a.size].sum()) - n1 * (n1 + 1) / 2
    u = max(u1, n1 * n2 - u1)
    tie_term = float((ties.astype(float) ** 3 - ties).sum())
    s = math.sqrt(n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1))))
    if s == 0:
        return 1.0
    z = (u - n1 * n2 / 2 - 0.5) / s
    return min(1.0, max(0.0, math.erfc(z / math.sqrt(2))))
