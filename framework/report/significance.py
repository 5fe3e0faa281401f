"""Whether a difference is real: 95% intervals over images, and paired tests between cells on the same images.

Units are images. With repeats, an image's absolute error is its mean over repeats and its exact-match score
the share of repeats that got it right. Tests are two-sided at the 5% level, one test per pair of cells shown,
no correction for the number of pairs.

- An accuracy figure's interval: a seeded percentile bootstrap over images (what ``scipy.stats.bootstrap`` with
  ``method="percentile"`` computes, drawn the same way, in numpy: importing scipy.stats costs ~1 s of CPU).
- Exact match, one repeat: McNemar's exact test (a binomial test on the images only one cell got right).
- Absolute error, or exact match with repeats: the Wilcoxon signed-rank test on the per-image differences.
- A scorer's per-image scores (``report/scores.py``) are tested as exact match is: McNemar's exact test when they
  are right/wrong of one repeat, else the Wilcoxon signed-rank test.
- Latency: the Mann-Whitney U test on per-request latencies (requests are not paired; latency is skewed).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from visionbench.results.model import Bundle
from visionbench.results.scoring import abs_error, field_score, matches, task_answer_type

ALPHA = 0.05
BOOTSTRAP_RESAMPLES = 2000
SEED = 20261201


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
    """The mean of ``values`` (one per image) with a 95% percentile bootstrap interval."""
    xs = np.asarray([v for v in values if v is not None], dtype=float)
    if xs.size == 0:
        return Interval(None, None, None, 0)
    mean = float(xs.mean())
    if xs.size < 2 or np.all(xs == xs[0]):
        low = high = mean if xs.size >= 2 else None
        return Interval(mean, low, high, int(xs.size))
    low, high = _percentile_bootstrap(xs, np.random.default_rng(seed))
    return Interval(mean, low, high, int(xs.size))


def _percentile_bootstrap(xs: np.ndarray, rng: np.random.Generator, level: float = 0.95) -> tuple[float, float]:
    """The percentile bootstrap interval of the mean: ``scipy.stats.bootstrap((xs,), np.mean, method="percentile",
    n_resamples=BOOTSTRAP_RESAMPLES, rng=rng)``, the same draws in one batch, without importing scipy.stats."""
    resamples = xs[rng.integers(0, xs.size, (BOOTSTRAP_RESAMPLES, xs.size))]
    alpha = (1 - level) / 2
    low, high = np.quantile(resamples.mean(axis=-1), [alpha, 1 - alpha])
    return float(low), float(high)


def proportion_interval(hits: int, n: int) -> Interval:
    """A share of ``n`` with its exact (Clopper-Pearson) 95% interval."""
    if n == 0:
        return Interval(None, None, None, 0)
    from scipy import stats as sps  # imported when used: adaptive cells only

    ci = sps.binomtest(hits, n).proportion_ci(confidence_level=0.95, method="exact")
    return Interval(hits / n, float(ci.low), float(ci.high), n)


def mcnemar_exact(a_right: Sequence[bool], b_right: Sequence[bool]) -> tuple[float | None, int]:
    """McNemar's exact p-value for paired right/wrong outcomes, and the number of discordant pairs."""
    only_a = sum(1 for a, b in zip(a_right, b_right, strict=True) if a and not b)
    only_b = sum(1 for a, b in zip(a_right, b_right, strict=True) if b and not a)
    discordant = only_a + only_b
    if discordant == 0:
        return (1.0 if a_right else None), 0
    return _binomial_half_p(only_a, discordant), discordant


def _binomial_half_p(k: int, n: int) -> float:
    """The exact two-sided binomial test of ``k`` successes in ``n`` at p = 0.5 (``scipy.stats.binomtest(k, n)``):
    the distribution is symmetric, so it is twice the tail beyond the nearer end, at most 1."""
    tail = sum(math.comb(n, i) for i in range(min(k, n - k) + 1))
    return min(1.0, 2 * tail / 2**n)


def wilcoxon(a: Sequence[float], b: Sequence[float]) -> tuple[float | None, int]:
    """The Wilcoxon signed-rank p-value for paired values, and the number of non-zero differences."""
    diffs = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    nonzero = int(np.count_nonzero(diffs))
    if nonzero == 0:
        return (1.0 if len(diffs) else None), 0
    from scipy import stats as sps  # imported when a test is made: a run's tables without one do not pay ~1 s

    return float(sps.wilcoxon(diffs, zero_method="wilcox").pvalue), nonzero


def mann_whitney(a: Sequence[float], b: Sequence[float]) -> float | None:
    if len(a) < 2 or len(b) < 2:
        return None
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


def item_scores(bundle: Mapping[str, Any], cell_id: str) -> ItemScores:
    """Per image, over the cell's repeats: mean absolute error where answered, share of repeats exactly right."""
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

    Images pair by content: the same image (sha256) under the same label in both bundles.
    """
    a, b = item_scores(bundle_a, cell_a), item_scores(bundle_b, cell_b)
    same = _same_images(bundle_a, bundle_b)
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
    la, lb = _latencies(bundle_a, cell_a), _latencies(bundle_b, cell_b)
    if la and lb:
        p = mann_whitney(la, lb)
        n = len(la) + len(lb)
        detectable = len(la) >= 2 and len(lb) >= 2 and 2 / math.comb(n, len(la)) < ALPHA
        out.append(
            Difference("latency p50 s", _median(la), _median(lb), p, n, "Mann-Whitney U on requests", detectable)
        )
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
    by_content = {(i.sha256, _key(i.label)): i.id for i in Bundle.of(b).item_entries}
    return [
        (i.id, by_content[(i.sha256, _key(i.label))])
        for i in Bundle.of(a).item_entries
        if (i.sha256, _key(i.label)) in by_content
    ]


def _latencies(bundle: Mapping[str, Any], cell_id: str) -> list[float]:
    records = Bundle.of(bundle).records
    # the cell's own requests: a judge's (``judge``) are not its latency
    return [
        r["end_s"] - r["start_s"] for r in records if r["cell"] == cell_id and r["attempts"] > 0 and not r.get("judge")
    ]


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


def versus_best(bundle: Mapping[str, Any], found: Any = None) -> list[Versus]:
    """Every cell against the most accurate one: the highest mean of the primary scorer when ``found`` (the bundle's
    scores, ``report/scores.py``) has scorers, else the lowest MAE on numeric tasks, else the highest exact match."""
    bundle = Bundle.of(bundle)
    cells = list(dict.fromkeys(e.id for e in bundle.cells))
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
    return out
