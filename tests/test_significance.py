"""Intervals and paired tests against cases small enough to work out by hand."""

import math

import pytest

from visionbench.report.significance import (
    differences,
    interval,
    mann_whitney,
    mcnemar_exact,
    proportion_interval,
    smallest_p_paired,
    wilcoxon,
)


def test_mcnemar_exact_is_a_binomial_test_on_the_discordant_images():
    a = [True, True, True, False, True, True]
    b = [False, False, False, False, True, False]
    p, discordant = mcnemar_exact(a, b)
    assert discordant == 4 and p == pytest.approx(2 * 0.5**4)  # all 4 discordant favour a: 2 x (1/2)^4
    p, discordant = mcnemar_exact([True, False, True], [False, True, True])
    assert discordant == 2 and p == pytest.approx(1.0)  # one each way
    assert mcnemar_exact([True, False], [True, False]) == (1.0, 0)


def test_wilcoxon_signed_rank_exact():
    p, n = wilcoxon([2, 3, 4, 5, 6, 7], [1, 1, 1, 1, 1, 1])  # six positive differences: 2 / 2^6
    assert n == 6 and p == pytest.approx(2 / 64)
    p, n = wilcoxon([1, 2, 3, 4], [2, 1, 4, 3])  # ranks +-: T+ = T- -> p = 1 (exact, ties in |d|)
    assert n == 4 and p == pytest.approx(1.0)
    assert wilcoxon([1, 2], [1, 2]) == (1.0, 0)


def test_mann_whitney_exact():
    assert mann_whitney([1, 2, 3], [4, 5, 6]) == pytest.approx(2 / math.comb(6, 3))
    assert mann_whitney([1], [2, 3]) is None


def test_smallest_possible_p():
    assert smallest_p_paired(4) == 0.125 and smallest_p_paired(6) == pytest.approx(0.03125)


def test_bootstrap_interval_is_seeded_and_sensible():
    values = [float(i % 7) for i in range(200)]
    one, two = interval(values), interval(values)
    assert one == two  # seeded
    mean = sum(values) / len(values)
    sd = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    assert one.value == pytest.approx(mean)
    half = 1.96 * sd / math.sqrt(len(values))  # the normal interval a bootstrap of 200 images comes close to
    assert one.low == pytest.approx(mean - half, abs=0.06) and one.high == pytest.approx(mean + half, abs=0.06)
    assert interval([3.0, 3.0, 3.0]).text() == "3.00 [3.00, 3.00]"
    assert interval([2.0]).text() == "2.00 (n=1)" and interval([]).value is None


@pytest.mark.parametrize("values", [[0.0, 1.0, 1.0, 0.0, 1.0], [float(i % 7) for i in range(200)], [3.5, 0.0, 12.0]])
def test_bootstrap_interval_is_scipys_percentile_bootstrap(values):
    """The numpy bootstrap draws what scipy.stats.bootstrap(method="percentile") draws, from the same seed."""
    import numpy as np
    from scipy import stats as sps

    from visionbench.report.significance import BOOTSTRAP_RESAMPLES, SEED

    res = sps.bootstrap(
        (np.asarray(values),),
        np.mean,
        n_resamples=BOOTSTRAP_RESAMPLES,
        method="percentile",
        rng=np.random.default_rng(SEED),
    )
    got = interval(values)
    assert (got.low, got.high) == pytest.approx((res.confidence_interval.low, res.confidence_interval.high), rel=1e-12)


@pytest.mark.parametrize(("k", "n"), [(0, 1), (4, 4), (1, 4), (2, 4), (3, 10), (7, 10), (5, 10), (0, 30), (11, 30)])
def test_mcnemar_p_is_scipys_binomial_test(k, n):
    from scipy import stats as sps

    a = [True] * k + [False] * (n - k)  # k images only a got right, n - k only b
    p, discordant = mcnemar_exact(a, [not x for x in a])
    assert discordant == n and p == pytest.approx(sps.binomtest(k, n, 0.5).pvalue, rel=1e-12)


def _bundle(answers_by_cell, labels, repeats=1):
    items = [{"id": k, "sha256": f"sha-{k}", "label": v} for k, v in labels.items()]
    cells, records = [], []
    for cell, answers in answers_by_cell.items():
        for r in range(repeats):
            cells.append(
                {"id": cell, "repeat": r, "answers": {k: {"value": v, "error": None} for k, v in answers.items()}}
            )
        records += [{"cell": cell, "start_s": 0.0, "end_s": 1.0 + i, "attempts": 1} for i in range(len(answers))]
    return {"items": items, "cells": cells, "records": records}


def test_the_issues_example_four_images_is_not_significant_and_says_n_is_too_small():
    labels = {"bus": 4, "crowd1": 100, "crowd2": 107, "class": 9}
    bundle = _bundle(
        {
            "seq": {"bus": 4, "crowd1": 98, "crowd2": 110, "class": 9},
            "conc": {"bus": 4, "crowd1": 80, "crowd2": 75, "class": 10},
        },
        labels,
    )
    mae, exact, latency = differences(bundle, "seq", bundle, "conc")
    assert (mae.metric, mae.a, mae.b, mae.n) == ("MAE", 1.25, 13.25, 4)
    assert not mae.significant and not mae.detectable
    assert mae.p == pytest.approx(0.25)  # errors 0,2,3,0 vs 0,20,32,1: 3 non-zero differences, all one way: 2 / 2^3
    assert "not significant" in mae.verdict() and "n=4 is too small" in mae.verdict()
    assert (exact.a, exact.b, exact.test) == (0.5, 0.25, "McNemar exact") and exact.p == pytest.approx(1.0)
    assert latency.metric == "latency p50 s" and latency.p == pytest.approx(1.0)


def test_a_real_difference_on_enough_images_is_significant():
    labels = {f"i{k}": 10 for k in range(12)}
    bundle = _bundle({"good": dict.fromkeys(labels, 10), "bad": {k: 10 + 1 + n for n, k in enumerate(labels)}}, labels)
    mae, exact, _ = differences(bundle, "good", bundle, "bad")
    assert mae.significant and mae.detectable and mae.p == pytest.approx(2 / 2**12)
    assert exact.significant and exact.p == pytest.approx(2 / 2**12)


def test_exact_binomial_interval():
    got = proportion_interval(9, 9)  # Clopper-Pearson: the lower bound solves p^9 = 0.025
    assert got.value == 1.0 and got.high == 1.0 and got.low == pytest.approx(0.025 ** (1 / 9))
    assert proportion_interval(0, 0).value is None
