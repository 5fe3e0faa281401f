"""Whether a difference is real: 95% intervals over images, and paired tests between cells on the same images.

Units are images. With repeats, an image's absolute error is its mean over repeats and its exact-match score
the share of repeats that got it right. Tests are two-sided at the 5% level; the cells of one table tested against
its best are Holm-adjusted together (each metric), so more cells do not make noise look real more often.

- An accuracy figure's interval: the exact (Clopper-Pearson) interval for right/wrong scores and for shares all
  right or all wrong (never [100%, 100%]); else a seeded BCa bootstrap over images (what ``scipy.stats.bootstrap``
  with ``method="BCa"`` computes, drawn the same way, in numpy, a chunk of resamples at a time: importing
  scipy.stats costs ~1 s of CPU).
- Exact match, one repeat: McNemar's exact test (a binomial test on the images only one cell got right).
- Absolute error, or exact match with repeats: the Wilcoxon signed-rank test on the per-image differences.
- A scorer's per-image scores (``report/scores.py``) are tested as exact match is: McNemar's exact test when they
  are right/wrong of one repeat, else the Wilcoxon signed-rank test.
- Latency: the Mann-Whitney U test on per-request latencies (requests are not paired; latency is skewed), only
  between cells whose requests ran at the same time (interleaved): cells run one after another, or in two runs,
  differ in the machine's and the service's load as much as in anything else, so they are not tested.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from statistics import NormalDist
from typing import Any, TypeVar

import numpy as np

from visionbench.report.rank_tests import (
    MANN_WHITNEY_ASYMPTOTIC_ABOVE,
    WILCOXON_ASYMPTOTIC_ABOVE,
    mann_whitney_asymptotic,
    wilcoxon_asymptotic,
)
from visionbench.results.model import Bundle
from visionbench.results.scoring import abs_error, field_score, matches, task_answer_type

ALPHA = 0.05
BOOTSTRAP_RESAMPLES = 2000
SEED = 20261201
T = TypeVar("T")


@dataclass(frozen=True)
class Interval:
    """A mean over images with its 95% bootstrap interval (``None`` bounds with fewer than two images)."""

    value: float | None
    low: float | None
    high: float | None
    n: int

    def text(self, spec: str = ".2f") -> str:
        if self.value is None:
            return "-"
        if self.low is None or self.high is None:
            return f"{self.value:{spec}} (n={self.n})"
        return f"{self.value:{spec}} [{self.low:{spec}}, {self.high:{spec}}]"


@dataclass(frozen=True)
class Difference:
    """One metric compared between two cells, with the test that says whether the difference is real."""

    metric: str  # "MAE", "exact match", "latency p50 s"
    a: float | None
    b: float | None
    p: float | None
    n: int  # images paired (requests, for latency)
    test: str
    #: False when even the most lopsided outcome on this many units could not reach p < 0.05.
    detectable: bool

    @property
    def significant(self) -> bool:
        return self.p is not None and self.p < ALPHA

    def verdict(self) -> str:
        if self.p is None:
            return f"not testable (n={self.n})"
        word = "significant" if self.significant else "not significant"
        note = "" if self.detectable else f"; n={self.n} is too small for any difference to reach p<0.05"
        return f"difference {word}, p{_p(self.p)}, n={self.n} ({self.test}{note})"


def interval(values: Sequence[float], seed: int = SEED) -> Interval:
    """The mean of ``values`` (one per image) with a 95% interval that is honest at the edges: right/wrong scores
    (each 0 or 1), and scores in [0, 1] that are all 0 or all 1, get the exact (Clopper-Pearson) interval of their
    share (10 of 10 right: [69%, 100%], not [100%, 100%]); other scores a BCa bootstrap. Values that are all
    the same and not shares (an MAE of 0 everywhere) get no interval: nothing says how they vary."""
    xs = np.asarray([v for v in values if v is not None], dtype=float)
    if xs.size == 0:
        return Interval(None, None, None, 0)
    mean = float(xs.mean())
    n = int(xs.size)
    binary = bool(np.all((xs == 0.0) | (xs == 1.0)))
    if binary:
        low, high = clopper_pearson(int(xs.sum()), n)
        return Interval(mean, low, high, n)
    if n < 2 or np.all(xs == xs[0]):
        return Interval(mean, None, None, n)
    low, high = _bca_bootstrap(xs, np.random.default_rng(seed))
    return Interval(mean, low, high, n)


#: Resamples drawn at once: the bootstrap's memory is this many times the images, however many resamples.
BOOTSTRAP_CHUNK = 100
#: Above this many images the bootstrap draws how often each distinct value is picked instead of which images are.
BOOTSTRAP_DRAW_IMAGES_MAX = 10_000


def _percentile_bootstrap(xs: np.ndarray, rng: np.random.Generator, level: float = 0.95) -> tuple[float, float]:
    """The percentile bootstrap interval of the mean: ``scipy.stats.bootstrap((xs,), np.mean, method="percentile",
    n_resamples=BOOTSTRAP_RESAMPLES, rng=rng)``, the same draws (``_resampled_means``)."""
    alpha = (1 - level) / 2
    low, high = np.quantile(_resampled_means(xs, rng), [alpha, 1 - alpha])
    return float(low), float(high)


def _bca_bootstrap(xs: np.ndarray, rng: np.random.Generator, level: float = 0.95) -> tuple[float, float]:
    """The bias-corrected and accelerated (BCa) bootstrap interval of the mean: ``scipy.stats.bootstrap((xs,),
    np.mean, method="BCa", n_resamples=BOOTSTRAP_RESAMPLES, rng=rng)``, the same draws. The percentile interval's
    ends moved by how far the resampled means sit off the mean (bias) and how their spread changes with it (the
    acceleration, from the jackknife means (n x mean - x_i) / (n - 1)): near an edge (a mean near 0 of errors that are
    mostly 0) the percentile interval is too short on the far side; BCa's is not. Where BCa is undefined (every
    resampled mean on one side of the mean), the percentile interval."""
    means = _resampled_means(xs, rng)
    theta, n = float(xs.mean()), xs.size
    below = (np.count_nonzero(means < theta) + np.count_nonzero(means <= theta)) / (2 * means.size)
    alpha = (1 - level) / 2
    if not 0.0 < below < 1.0:
        low, high = np.quantile(means, [alpha, 1 - alpha])
        return float(low), float(high)
    normal = NormalDist()
    z0 = normal.inv_cdf(below)
    jack = (n * theta - xs) / (n - 1)
    spread = jack.mean() - jack
    denominator = 6.0 * float(np.sum(spread**2)) ** 1.5
    accel = float(np.sum(spread**3)) / denominator if denominator > 0 else 0.0
    ends = [
        normal.cdf(z0 + (z0 + z) / (1 - accel * (z0 + z))) for z in (normal.inv_cdf(alpha), normal.inv_cdf(1 - alpha))
    ]
    low, high = np.quantile(means, ends)
    return float(low), float(high)


def _resampled_means(xs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``BOOTSTRAP_RESAMPLES`` means of resamples of ``xs``, drawn as ``scipy.stats.bootstrap`` draws them from ``rng``,
    ``BOOTSTRAP_CHUNK`` resamples at a time (memory bounded by images x chunk, not images x 2,000), without importing
    scipy.stats.

    Above ``BOOTSTRAP_DRAW_IMAGES_MAX`` images, each resample is drawn as how many times each distinct value comes
    up (a multinomial over the values, weighted by their counts): the same distribution of resampled means, other
    draws, at a cost of the distinct values rather than the images, when they are few (per-image errors of a count
    have a few dozen: 100,000 images take 10 ms instead of 1.5 s)."""
    means = np.empty(BOOTSTRAP_RESAMPLES)
    values, counts = np.unique(xs, return_counts=True) if xs.size > BOOTSTRAP_DRAW_IMAGES_MAX else (xs, None)
    if counts is not None and values.size <= xs.size // 20:  # a value's draw costs ~20 images' (a binomial each)
        chunk = max(1, min(BOOTSTRAP_RESAMPLES, BOOTSTRAP_CHUNK * xs.size // values.size))
        for start in range(0, BOOTSTRAP_RESAMPLES, chunk):
            count = min(chunk, BOOTSTRAP_RESAMPLES - start)
            picked = rng.multinomial(xs.size, counts / xs.size, size=count)
            means[start : start + count] = picked @ values / xs.size
    else:
        for start in range(0, BOOTSTRAP_RESAMPLES, BOOTSTRAP_CHUNK):
            count = min(BOOTSTRAP_CHUNK, BOOTSTRAP_RESAMPLES - start)
            means[start : start + count] = xs[rng.integers(0, xs.size, (count, xs.size))].mean(axis=-1)
    return means


@functools.lru_cache(maxsize=4096)
def clopper_pearson(hits: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper-Pearson) interval of a share of ``hits`` in ``n``: the Beta quantiles
    ``Beta(hits, n - hits + 1)`` at ``alpha/2`` and ``Beta(hits + 1, n - hits)`` at ``1 - alpha/2`` (0 and 1 at
    the edges), by bisection on the regularised incomplete beta function (no scipy import); remembered, as the
    cells of a sweep share their counts (9 ms each, 500 cells' tables asked 1,500)."""
    alpha = 1 - level
    low = 0.0 if hits == 0 else _beta_quantile(alpha / 2, hits, n - hits + 1)
    high = 1.0 if hits == n else _beta_quantile(1 - alpha / 2, hits + 1, n - hits)
    return low, high


def _beta_quantile(q: float, a: float, b: float) -> float:
    lo, hi = 0.0, 1.0
    for _ in range(60):  # 2**-60: far below any figure shown
        mid = (lo + hi) / 2
        if _betai(a, b, mid) < q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _betai(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b) (Numerical Recipes 6.4: a continued fraction)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1) / (a + b + 2):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def _betacf(a: float, b: float, x: float) -> float:
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 100_000):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def proportion_interval(hits: int, n: int) -> Interval:
    """A share of ``n`` with its exact (Clopper-Pearson) 95% interval."""
    if n == 0:
        return Interval(None, None, None, 0)
    low, high = clopper_pearson(hits, n)
    return Interval(hits / n, low, high, n)


def mcnemar_exact(a_right: Sequence[bool], b_right: Sequence[bool]) -> tuple[float | None, int]:
    """McNemar's exact p-value for paired right/wrong outcomes, and the number of discordant pairs."""
    only_a = sum(1 for a, b in zip(a_right, b_right, strict=True) if a and not b)
    only_b = sum(1 for a, b in zip(a_right, b_right, strict=True) if b and not a)
    discordant = only_a + only_b
    if discordant == 0:
        return (1.0 if a_right else None), 0
    return _binomial_half_p(only_a, discordant), discordant


#: Up to this many discordant pairs the binomial tail is summed exactly (integers); above, the incomplete beta.
EXACT_TAIL_MAX = 1000


def _binomial_half_p(k: int, n: int) -> float:
    """The exact two-sided binomial test of ``k`` successes in ``n`` at p = 0.5 (``scipy.stats.binomtest(k, n)``):
    the distribution is symmetric, so it is twice the tail beyond the nearer end, at most 1. The tail is
    P(X <= j) = I_0.5(n - j, j + 1) (the regularised incomplete beta) above ``EXACT_TAIL_MAX`` pairs: summing
    binomial coefficients of 12,000 pairs took 12 s."""
    j = min(k, n - k)
    if n > EXACT_TAIL_MAX:
        return min(1.0, 2 * _betai(n - j, j + 1, 0.5))
    tail = sum(math.comb(n, i) for i in range(j + 1))
    return min(1.0, 2 * tail / 2**n)


def wilcoxon(a: Sequence[float], b: Sequence[float]) -> tuple[float | None, int]:
    """The Wilcoxon signed-rank p-value for paired values, and the number of non-zero differences."""
    diffs = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    nonzero = int(np.count_nonzero(diffs))
    if nonzero == 0:
        return (1.0 if len(diffs) else None), 0
    if len(diffs) > WILCOXON_ASYMPTOTIC_ABOVE:  # scipy's normal approximation, without importing scipy.stats
        return wilcoxon_asymptotic(diffs), nonzero
    from scipy import stats as sps  # imported when a test is made: a run's tables without one do not pay ~1 s

    return float(sps.wilcoxon(diffs, zero_method="wilcox").pvalue), nonzero


def mann_whitney(a: Sequence[float], b: Sequence[float]) -> float | None:
    if len(a) < 2 or len(b) < 2:
        return None
    if min(len(a), len(b)) > MANN_WHITNEY_ASYMPTOTIC_ABOVE:
        return mann_whitney_asymptotic(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
    from scipy import stats as sps

    return float(sps.mannwhitneyu(a, b, alternative="two-sided").pvalue)


def smallest_p_paired(n: int) -> float:
    """The smallest two-sided p an exact sign-type test (McNemar, Wilcoxon) can give on ``n`` units."""
    return min(1.0, 2 * 0.5**n)


@dataclass(frozen=True)
class ItemScores:
    """A cell's per-image figures: absolute error (numeric answers) and exact-match score (labelled images)."""

    abs_error: dict[str, float]
    exact: dict[str, float]
    binary: bool  # one repeat: exact-match scores are 0 or 1
    #: json tasks only (else empty): the share of the label's fields right, mean over repeats (unanswered: 0)
    fields: dict[str, float] = field(default_factory=dict)


#: Figures made once per bundle (by its ``cells`` list, which is held, so an id is never another bundle's).
_held: dict[tuple[int, str, str], tuple[Any, Any]] = {}
HELD_MAX = 4096


def _once(bundle: Mapping[str, Any], what: str, cell_id: str, make: Callable[[], T]) -> T:
    """``make()`` once per bundle, figure and cell: the terminal's tables, the verdict, versus_best and report.html
    each ask for a cell's per-image scores and intervals (12 passes over 100,000 answers, and 8 bootstraps, were
    made for 3 cells)."""
    cells = dict.get(bundle, "cells")
    key = (id(cells), what, cell_id)
    held = _held.get(key)
    if held is not None and held[0] is cells:
        return held[1]
    if len(_held) >= HELD_MAX:
        _held.clear()
    value = make()
    _held[key] = (cells, value)
    return value


def item_scores(bundle: Mapping[str, Any], cell_id: str) -> ItemScores:
    """Per image, over the cell's repeats: mean absolute error where answered, share of repeats exactly right."""
    return _once(bundle, "item_scores", cell_id, lambda: _item_scores(bundle, cell_id))


def _item_scores(bundle: Mapping[str, Any], cell_id: str) -> ItemScores:
    bundle = Bundle.of(bundle)
    labels = {item.id: item.label for item in bundle.item_entries if item.label is not None}
    answer_type = task_answer_type(bundle)
    entries = [e for e in bundle.cells if e.id == cell_id]
    error_sum: dict[str, float] = {}
    error_n: dict[str, int] = {}
    right: dict[str, float] = dict.fromkeys(labels, 0.0) if entries else {}
    fields: dict[str, float] = dict.fromkeys(labels, 0.0) if entries and answer_type == "json" else {}
    for entry in entries:
        answers = entry.answers
        for item_id, label in labels.items():
            answer = answers.get(item_id)
            if answer is None or answer.error is not None or (value := answer.value) is None:
                continue
            if matches(value, label, answer_type):
                right[item_id] += 1.0
            if item_id in fields:
                fields[item_id] += field_score(value, label)
            if (error := abs_error(value, label, answer_type)) is not None:
                error_sum[item_id] = error_sum.get(item_id, 0.0) + error
                error_n[item_id] = error_n.get(item_id, 0) + 1
    return ItemScores(
        {k: total / error_n[k] for k, total in error_sum.items()},
        {k: hits / len(entries) for k, hits in right.items()},
        len(entries) == 1,
        {k: total / len(entries) for k, total in fields.items()},
    )


def accuracy_intervals(bundle: Mapping[str, Any], cell_id: str) -> dict[str, Interval]:
    """Per cell, intervals over images: ``mae``, ``exact`` and (json tasks only) ``fields``, the share of fields
    right."""
    return dict(_once(bundle, "intervals", cell_id, lambda: _accuracy_intervals(bundle, cell_id)))


def _accuracy_intervals(bundle: Mapping[str, Any], cell_id: str) -> dict[str, Interval]:
    scores = item_scores(bundle, cell_id)
    out = {"mae": interval(list(scores.abs_error.values())), "exact": interval(list(scores.exact.values()))}
    if scores.fields:
        out["fields"] = interval(list(scores.fields.values()))
    return out


def differences(
    bundle_a: Mapping[str, Any],
    cell_a: str,
    bundle_b: Mapping[str, Any],
    cell_b: str,
    scores: Sequence[tuple[str, Mapping[str, float], Mapping[str, float], bool]] = (),
    *,
    exact: bool = True,
) -> list[Difference]:
    """MAE, exact match (unless not ``exact``), each of ``scores`` and p50 latency of cell ``cell_a`` against
    ``cell_b``, paired on the images both have. ``scores``: (scorer key, per-image scores of ``cell_a``, of
    ``cell_b``, whether both are 0/1 of one repeat), tested as exact match is.

    Images pair by item id (the same content and label under the same id), and a renamed one by its content where
    that is unambiguous (``_same_images``).
    """
    a, b = item_scores(bundle_a, cell_a), item_scores(bundle_b, cell_b)
    # within one bundle (versus_best: each cell against the best), the pairs are made once
    same = (
        _once(bundle_a, "same_images", "", lambda: _same_images(bundle_a, bundle_a))
        if bundle_a is bundle_b
        else _same_images(bundle_a, bundle_b)
    )
    out: list[Difference] = []
    shared = [(i, j) for i, j in same if i in a.abs_error and j in b.abs_error]
    if shared:
        xa, xb = [a.abs_error[i] for i, _ in shared], [b.abs_error[j] for _, j in shared]
        p, _ = wilcoxon(xa, xb)
        out.append(
            Difference(
                "MAE",
                _mean(xa),
                _mean(xb),
                p,
                len(shared),
                "Wilcoxon signed-rank",
                smallest_p_paired(len(shared)) < ALPHA,
            )
        )
    if exact:
        found = paired_scores("exact match", a.exact, b.exact, same, a.binary and b.binary)
        out += [found] if found else []
    for key, values_a, values_b, binary in scores or ():
        found = paired_scores(key, values_a, values_b, same, binary)
        out += [found] if found else []
    ta, tb = _request_times(bundle_a, cell_a), _request_times(bundle_b, cell_b)
    la, lb = ta[:, 1] - ta[:, 0], tb[:, 1] - tb[:, 0]
    if len(la) and len(lb):
        n = len(la) + len(lb)
        if bundle_a is bundle_b and interleaved(ta, tb):
            p = mann_whitney(la, lb)
            detectable = len(la) >= 2 and len(lb) >= 2 and _orderings_above(n, len(la), 2 / ALPHA)
            test = "Mann-Whitney U on requests"
        else:  # one after another (or two runs): the machine's and the service's load differ, not only the cells
            p, detectable, test = None, False, NOT_INTERLEAVED
        out.append(Difference("latency p50 s", _median(la), _median(lb), p, n, test, detectable))
    return out


#: Why two cells' latencies are not tested: their requests did not run at the same time.
NOT_INTERLEAVED = "not tested: the cells ran at different times (load differs), not interleaved"


def interleaved(a: Sequence[tuple[float, float]] | np.ndarray, b: Sequence[tuple[float, float]] | np.ndarray) -> bool:
    """Whether two cells' requests ran at the same time: the spans from their first start to their last end
    overlap for at least half of the shorter one. Cells run one after another do not: what differs between their
    latencies is as much the machine's and the service's load at the time as the cells."""
    ta, tb = np.asarray(a, dtype=float).reshape(-1, 2), np.asarray(b, dtype=float).reshape(-1, 2)
    if not len(ta) or not len(tb):
        return False
    a0, a1 = float(ta[:, 0].min()), float(ta[:, 1].max())
    b0, b1 = float(tb[:, 0].min()), float(tb[:, 1].max())
    overlap = min(a1, b1) - max(a0, b0)
    shorter = min(a1 - a0, b1 - b0)
    return overlap > 0 and overlap >= 0.5 * shorter


def _orderings_above(n: int, k: int, limit: float) -> bool:
    """Whether comb(n, k) > ``limit``: exactly up to 1,000 requests, in logs above (comb(200,000, 100,000) is an
    integer of 60,000 digits, ~0.5 s to make)."""
    if n <= 1000:
        return math.comb(n, k) > limit
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) > math.log(limit)


def holm(ps: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment of p-values tested together (None: not tested, left out): the i-th smallest of
    m times (m - i + 1), never below the one before, at most 1. A difference is real when its adjusted p < 0.05,
    so testing more cells against one does not make noise look real more often."""
    tested = sorted((p, i) for i, p in enumerate(ps) if p is not None)
    m = len(tested)
    out: list[float | None] = [None] * len(ps)
    running = 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def paired_scores(
    metric: str, a: Mapping[str, float], b: Mapping[str, float], same: Sequence[tuple[str, str]], binary: bool
) -> Difference | None:
    """Per-image scores in [0, 1] of two cells, paired on ``same`` (image of a, image of b): McNemar's exact test
    when both are right/wrong of one repeat, else the Wilcoxon signed-rank test on the per-image differences."""
    shared = [(i, j) for i, j in same if i in a and j in b]
    if not shared:
        return None
    xa, xb = [a[i] for i, _ in shared], [b[j] for _, j in shared]
    if binary:
        p, _ = mcnemar_exact([x == 1.0 for x in xa], [x == 1.0 for x in xb])
        test = "McNemar exact"
    else:
        p, _ = wilcoxon(xa, xb)
        test = "Wilcoxon signed-rank on per-image shares"
    return Difference(metric, _mean(xa), _mean(xb), p, len(shared), test, smallest_p_paired(len(shared)) < ALPHA)


def _same_images(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The items of ``a`` and ``b`` that are the same question: by item id, where the id has the same content and
    label in both; an item whose id is not in ``b`` (a renamed file) by its content and label, where that is
    unambiguous (one such item in each). A dataset with one image under several names pairs each name with
    itself, never every copy with one of them."""
    ea, eb = list(Bundle.of(a).item_entries), list(Bundle.of(b).item_entries)

    def key(item: Any) -> tuple[str, str]:
        return item.sha256, _key(item.label)

    by_id = {item.id: item for item in eb}
    pairs: list[tuple[str, str]] = []
    left: list[Any] = []
    used: set[str] = set()
    for item in ea:
        other = by_id.get(item.id)
        if other is not None and key(other) == key(item):
            pairs.append((item.id, other.id))
            used.add(other.id)
        else:
            left.append(item)
    if left:
        in_a: dict[tuple[str, str], int] = {}
        for item in ea:
            in_a[key(item)] = in_a.get(key(item), 0) + 1
        in_b: dict[tuple[str, str], list[str]] = {}
        for other in eb:
            if other.id not in used:
                in_b.setdefault(key(other), []).append(other.id)
        pairs += [(i.id, in_b[key(i)][0]) for i in left if in_a[key(i)] == 1 and len(in_b.get(key(i), ())) == 1]
    return pairs


def _request_times(bundle: Mapping[str, Any], cell_id: str) -> np.ndarray:
    """(start, end) of each of the cell's own requests (a judge's, ``judge``, are not its latency), one row each:
    every cell's made in one pass over the records (which are read from the file each time), held as arrays (300,000
    tuples of two floats were 31 MB)."""
    times = _once(bundle, "request_times", "", lambda: _all_request_times(bundle))
    return times.get(cell_id, np.empty((0, 2)))


def _all_request_times(bundle: Mapping[str, Any]) -> dict[str, np.ndarray]:
    from array import array

    bundle = Bundle.of(bundle)
    factor = bundle.to_modelled  # an emulated run's in its services' own seconds
    flat: dict[str, array[float]] = {}
    for r in bundle.records:
        if r["attempts"] > 0 and not r.get("judge"):
            times = flat.get(r["cell"])
            if times is None:
                times = flat[r["cell"]] = array("d")
            times.append(r["start_s"])
            times.append(r["end_s"])
    return {cell: np.frombuffer(times, dtype=float).reshape(-1, 2) * factor for cell, times in flat.items()}


def request_latencies(bundle: Mapping[str, Any], cell_id: str) -> np.ndarray:
    """The latency of each of the cell's own requests (end - start, as a record's ``latency_s``)."""
    times = _request_times(bundle, cell_id)
    return times[:, 1] - times[:, 0]


def _latencies(bundle: Mapping[str, Any], cell_id: str) -> list[float]:
    return request_latencies(bundle, cell_id).tolist()


def _key(label: Any) -> str:
    return repr(label)


def _mean(xs: Sequence[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _median(xs: Sequence[float]) -> float:
    return float(np.median(xs))


def _p(p: float) -> str:
    return f"={p:.2g}" if p >= 0.001 else "<0.001"


def numeric_task(bundle: Mapping[str, Any]) -> bool:
    return Bundle.of(bundle).task.get("answer", "integer") in ("integer", "number")


@dataclass(frozen=True)
class Versus:
    """A cell against the run's most accurate cell."""

    cell: str
    best: str
    differences: list[Difference]


_versus: dict[tuple[int, int], tuple[tuple[Any, Any], list[Versus]]] = {}


def versus_best(bundle: Mapping[str, Any], found: Any = None) -> list[Versus]:
    """Every cell against the most accurate one: the highest mean of the primary scorer when ``found`` (the bundle's
    scores, ``report/scores.py``) has scorers, else the lowest MAE on numeric tasks, else the highest exact match.

    Made once per bundle and scores (the terminal's table, the verdict and report.html all read it)."""
    cells = dict.get(bundle, "cells")
    key = (id(cells), id(found))
    held = _versus.get(key)
    if held is not None and held[0][0] is cells and held[0][1] is found:
        return [replace(v, differences=list(v.differences)) for v in held[1]]
    out = _versus_best(bundle, found)
    if len(_versus) > 8:
        _versus.clear()
    _versus[key] = ((cells, found), out)
    return [replace(v, differences=list(v.differences)) for v in out]


def _versus_best(bundle: Mapping[str, Any], found: Any = None) -> list[Versus]:
    bundle = Bundle.of(bundle)
    # cells that answered nothing are failed: never ranked or tested (report tables list them as failed)
    answered = {e.id for e in bundle.cells if (e.summary.metric("items") or 0) > (e.summary.metric("errors") or 0)}
    cells = [c for c in dict.fromkeys(e.id for e in bundle.cells) if c in answered]
    if len(cells) < 2:
        return []
    primary = found.primary if found is not None else None
    numeric = numeric_task(bundle)
    scored = []
    for order, cell in enumerate(cells):
        if primary is not None:
            values = found.cells[cell].values[primary] if cell in found.cells else {}
            higher = True
        else:
            scores = item_scores(bundle, cell)
            values = scores.abs_error if numeric else scores.exact
            higher = not numeric
        if values:
            mean = sum(values.values()) / len(values)
            scored.append((-mean if higher else mean, order, cell))  # a tie goes to the first in the matrix
    if not scored:
        return []
    best = min(scored)[2]
    out = []
    for cell in cells:
        if cell == best:
            continue
        if primary is None:
            out.append(Versus(cell, best, differences(bundle, best, bundle, cell)))
            continue
        a, b = found.cells.get(best), found.cells.get(cell)
        paired = (
            [(primary, a.values[primary], b.values[primary], a.binary[primary] and b.binary[primary])]
            if a and b
            else []
        )
        out.append(Versus(cell, best, differences(bundle, best, bundle, cell, paired, exact=False)))
    return _holm_adjusted(out)


def _holm_adjusted(versus: list[Versus]) -> list[Versus]:
    """Each metric's p-values over the cells tested against the best, Holm-adjusted together (the test says so)."""
    metrics = list(dict.fromkeys(d.metric for vs in versus for d in vs.differences))
    for metric in metrics:
        found = [(k, j) for k, vs in enumerate(versus) for j, d in enumerate(vs.differences) if d.metric == metric]
        tested = [versus[k].differences[j] for k, j in found]
        if sum(d.p is not None for d in tested) < 2:
            continue
        m = sum(d.p is not None for d in tested)
        for (k, j), d, p in zip(found, tested, holm([d.p for d in tested])):
            if p is not None:
                versus[k].differences[j] = replace(d, p=p, test=f"{d.test}, Holm-adjusted over {m} cells")
    return versus
