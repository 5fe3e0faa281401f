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
    assert interval([3.0, 3.0, 3.0]).text() == "3.00 (n=3)"  # all alike and not a share: no interval claimed
    assert interval([2.0]).text() == "2.00 (n=1)" and interval([]).value is None


@pytest.mark.parametrize("values", [[0.0, 0.5, 1.0, 0.0, 1.0], [float(i % 7) for i in range(200)], [3.5, 0.0, 12.0]])
def test_bootstrap_interval_is_scipys_bca_bootstrap(values):
    """The numpy bootstrap draws what scipy.stats.bootstrap draws, from the same seed, and its BCa interval is
    scipy's (bias correction and jackknife acceleration included)."""
    import numpy as np
    from scipy import stats as sps

    from visionbench.report.significance import BOOTSTRAP_RESAMPLES, SEED

    res = sps.bootstrap(
        (np.asarray(values),),
        np.mean,
        n_resamples=BOOTSTRAP_RESAMPLES,
        method="BCa",
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


@pytest.mark.parametrize(
    ("hits", "n", "low", "high"),
    [  # by hand: the lower bound solves P(X >= hits | p) = 0.025, the upper P(X <= hits | p) = 0.025
        (10, 10, 0.025 ** (1 / 10), 1.0),  # the issue's 10 of 10: [69%, 100%]
        (0, 4, 0.0, 1 - 0.025 ** (1 / 4)),  # 0 of 4: [0%, 60%]
        (1, 4, 0.006309463, 0.805879550),  # 1 of 4: [1%, 81%]
        (50, 100, 0.398321, 0.601679),
    ],
)
def test_right_wrong_scores_get_the_exact_interval_honest_at_the_edges(hits, n, low, high):
    from scipy import stats as sps

    from visionbench.report.significance import clopper_pearson

    got = interval([1.0] * hits + [0.0] * (n - hits))
    assert got.value == hits / n and (got.low, got.high) == pytest.approx((low, high), abs=1e-6)
    ci = sps.binomtest(hits, n).proportion_ci(confidence_level=0.95, method="exact")
    assert clopper_pearson(hits, n) == pytest.approx((ci.low, ci.high), abs=1e-12)
    assert f"{got.low:.0%}" == {10: "69%", 0: "0%", 1: "1%", 50: "40%"}[hits]


def test_shares_all_right_over_repeats_get_the_exact_interval_too():
    """Scores in [0, 1] that are all 1 (every repeat right on every image) are a share of 1 over n images."""
    got = interval([1.0] * 10)
    assert (got.low, got.high) == pytest.approx((0.025 ** (1 / 10), 1.0))
    mixed = interval([1.0, 0.5, 1.0, 1.0])  # not at the edge, not right/wrong: the bootstrap
    assert mixed.low is not None and mixed.low < 1.0 and mixed.high == 1.0


def test_the_bootstrap_is_drawn_a_chunk_at_a_time_with_the_same_draws():
    import numpy as np

    from visionbench.report import significance as sig

    xs = np.asarray([float(i % 5) for i in range(333)])
    whole = np.random.default_rng(sig.SEED)
    means = xs[whole.integers(0, xs.size, (sig.BOOTSTRAP_RESAMPLES, xs.size))].mean(axis=-1)
    expected = np.quantile(means, [0.025, 0.975])
    assert sig._percentile_bootstrap(xs, np.random.default_rng(sig.SEED)) == pytest.approx(tuple(expected), rel=1e-15)


def test_holm_by_hand():
    from visionbench.report.significance import holm

    # sorted 0.01, 0.03, 0.04 of m = 3: 0.03, 0.06, max(0.06, 0.04) = 0.06; an untested one stays None
    assert holm([0.01, 0.04, 0.03, None]) == pytest.approx([0.03, 0.06, 0.06, None])
    assert holm([0.5]) == [0.5] and holm([]) == [] and holm([0.4, 0.4]) == [0.8, 0.8]
    assert holm([0.2, 0.9]) == pytest.approx([0.4, 0.9]) and holm([0.6, 0.9]) == [1.0, 1.0]


def test_latencies_are_tested_only_between_cells_that_ran_at_the_same_time():
    from visionbench.report.significance import interleaved

    one_after_another = ([(0.0, 1.0), (1.0, 2.0)], [(2.5, 3.0), (3.0, 4.0)])
    assert not interleaved(*one_after_another)
    assert interleaved([(0.0, 1.0), (1.0, 2.0)], [(0.2, 1.1), (1.1, 1.9)])
    assert not interleaved([(0.0, 10.0)], [(9.0, 20.0)])  # 1 s of 10 shared: not the same conditions
    assert not interleaved([], [(0.0, 1.0)])


@pytest.mark.slow
async def test_an_a_a_run_of_identical_cells_shows_no_real_difference(tmp_path):
    """A/A: four cells asking the same model the same way (only their labels differ), against an emulator whose
    answers err at random: nothing in "Against the most accurate cell" may be called real. Accuracy tests are
    Holm-adjusted over the cells; latency is not tested between cells that ran one after another."""
    from pathlib import Path

    import yaml

    from visionbench.report.terminal import difference_rows
    from visionbench.results import bundle as bundle_mod
    from visionbench.run.plan import load_plan
    from visionbench.run.plugins import default_registry
    from visionbench.run.runner import run

    crowds = Path(__file__).resolve().parents[1] / "framework" / "sample_crowds"
    profiles = tmp_path / "profiles.yaml"
    noisy = {"latency": {"base_s": 0.02, "jitter": 0.5}, "answers": {"relative_sd": 0.3, "absolute_sd": 1.0}}
    profiles.write_text(yaml.safe_dump({"seed": 7, "time_scale": 0.02, "defaults": noisy, "models": {"*": {}}}))
    config = {
        "name": "a-a",
        "dataset": {"path": str(crowds), "labels": "labels.json", "label_field": "person_count"},
        "task": {"prompt": "How many people are in this image? Answer with a single integer.", "answer": "integer"},
        "preprocessing": {"max_side": 256},
        "emulator": {"profiles": str(profiles)},
        "retry": {"max_attempts": 4, "base_delay_s": 0.01, "max_delay_s": 0.05, "timeout_s": 20},
        "matrix": [
            {
                "provider": "gemini",
                "models": ["gemini-3.5-flash"],
                "strategies": [{"name": "concurrent", "max_concurrency": 4, "label": name} for name in "abcd"],
            }
        ],
    }
    path = tmp_path / "aa.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    data = bundle_mod.load(await run(load_plan(path, default_registry()), results_dir=tmp_path / "r", cache_dir=None))
    maes = [c["summary"]["mae"] for c in data["cells"]]
    assert len(set(maes)) > 1  # the cells did differ, by chance: that is what must not be called real
    rows = difference_rows(data)
    assert rows is not None
    tests = [i for i, head in enumerate(rows.head) if head.strip() == "real?"]
    assert rows.head[4] == "MAE" and len(tests) == 2  # the primary score's test and, on a count, the error's
    real = [row for row in rows.rows if any(row[i] == "yes" for i in tests)]
    assert not real, (rows.rows, rows.caption)
    assert "Holm-adjusted" in rows.caption and "latency: not tested" in rows.caption
    from visionbench.report.verdict import verdict

    got = verdict(data)
    assert got is not None and got.pick is None and got.why.startswith("no pick:"), got  # no pick among them


def test_one_image_under_several_names_pairs_each_name_with_itself():
    """The issue's case: the same image (same content, same label) as d1..d6; each copy paired with the last one
    made a cell with errors on every copy look perfect next to another. Paired by id, each copy is itself."""
    labels = {f"d{k}": 5 for k in range(6)} | {f"x{k}": k for k in range(6)}
    bundle = _bundle(
        {
            "good": dict(labels),  # right everywhere
            "off": {k: (v + 1 if k.startswith("d") and k != "d5" else v) for k, v in labels.items()},
        },
        labels,
    )
    for item in bundle["items"]:
        if item["id"].startswith("d"):
            item["sha256"] = "sha-same"  # one image, six names
    mae, exact, _ = differences(bundle, "good", bundle, "off")
    assert mae.b == pytest.approx(5 / 12)  # off by 1 on d0..d4, right on d5 and the x's: 5 of 12 (paired, as shown)
    assert exact.b == pytest.approx(7 / 12) and mae.n == 12
    # renamed between runs, still paired by content; a copy among several is not guessed at
    other = {**bundle, "items": [{**i, "id": "y" + i["id"]} if i["id"] == "x3" else i for i in bundle["items"]]}
    from visionbench.report.significance import _same_images

    assert ("x3", "yx3") in _same_images(bundle, other) and len(_same_images(bundle, other)) == 12


# --- at scale: 100,000 images in seconds, not minutes (issue 27) ------------------------------------------------------


@pytest.mark.parametrize(("k", "n"), [(5800, 12600), (6000, 12600), (2400, 5000), (1001, 2001), (99_000, 200_000)])
def test_mcnemar_on_many_discordant_images_is_scipys_binomial_test_and_quick(k, n):
    """Summing 12,600 binomial coefficients took 12 s; 200,000 would take minutes. The incomplete beta: ms."""
    import time

    from scipy import stats as sps

    from visionbench.report.significance import _binomial_half_p

    start = time.process_time()
    p = _binomial_half_p(k, n)
    assert time.process_time() - start < 0.5
    assert p == pytest.approx(sps.binomtest(k, n, 0.5).pvalue, rel=1e-9, abs=1e-300)


def test_the_bootstrap_of_a_million_images_of_few_values_is_quick_and_the_same_interval():
    """Above BOOTSTRAP_DRAW_IMAGES_MAX images of few distinct values (per-image errors of a count), each resample is
    drawn as counts of the values: the same distribution of means (here within 2% of the interval's width of the
    normal interval, which a bootstrap of a million images matches), 2,000 resamples in well under a second
    (drawing a million indices each took 15 s)."""
    import time

    import numpy as np

    rng = np.random.default_rng(7)
    xs = rng.integers(0, 6, size=1_000_000) * (rng.random(1_000_000) < 0.2)
    start = time.process_time()
    got = interval(xs.astype(float).tolist())
    assert time.process_time() - start < 3  # of it, making the array from a list of a million floats
    mean, half = xs.mean(), 1.96 * xs.std(ddof=1) / math.sqrt(xs.size)
    assert got.value == pytest.approx(mean)
    assert got.low == pytest.approx(mean - half, abs=0.04 * half) and got.high == pytest.approx(
        mean + half, abs=0.04 * half
    )
    assert interval(xs.astype(float).tolist()) == got  # seeded


def test_many_distinct_values_keep_drawing_images_in_bounded_chunks():
    import numpy as np

    from visionbench.report import significance as sig

    xs = np.random.default_rng(3).lognormal(0, 1, size=sig.BOOTSTRAP_DRAW_IMAGES_MAX + 1)
    whole = np.random.default_rng(sig.SEED)
    means = np.concatenate(
        [xs[whole.integers(0, xs.size, (sig.BOOTSTRAP_CHUNK, xs.size))].mean(axis=-1) for _ in range(20)]
    )
    expected = np.quantile(means, [0.025, 0.975])
    assert sig._percentile_bootstrap(xs, np.random.default_rng(sig.SEED)) == pytest.approx(tuple(expected), rel=1e-12)


def test_a_cells_scores_and_intervals_are_made_once_per_bundle(monkeypatch):
    """The terminal's tables, the verdict, versus_best and report.html each ask: 12 passes over 100,000 answers
    and 8 bootstraps were made for 3 cells."""
    from visionbench.report import significance as sig

    labels = {f"i{k}": k % 5 for k in range(40)}
    bundle = _bundle({"a": {k: v + int(k[1:]) % 3 for k, v in labels.items()}, "b": labels}, labels)
    made = {"scores": 0, "bootstraps": 0, "records": 0}
    scores, bootstrap, times = sig._item_scores, sig._bca_bootstrap, sig._all_request_times

    def count(key, fn):
        def counted(*args, **kwargs):
            made[key] += 1
            return fn(*args, **kwargs)

        return counted

    monkeypatch.setattr(sig, "_item_scores", count("scores", scores))
    monkeypatch.setattr(sig, "_bca_bootstrap", count("bootstraps", bootstrap))
    monkeypatch.setattr(sig, "_all_request_times", count("records", times))
    first = [sig.accuracy_intervals(bundle, c) for c in ("a", "b")]
    for _ in range(3):
        assert [sig.accuracy_intervals(bundle, c) for c in ("a", "b")] == first
        differences(bundle, "a", bundle, "b")
    assert made == {"scores": 2, "bootstraps": 1, "records": 1}  # b's errors are all 0: no interval to draw
    other = _bundle({"a": labels}, labels)  # another bundle: its own figures
    assert sig.accuracy_intervals(other, "a")["mae"].value == 0.0 and made["scores"] == 3


def test_whether_a_latency_difference_is_detectable_is_decided_without_a_60000_digit_integer():
    import time

    from visionbench.report.significance import _orderings_above

    assert _orderings_above(6, 3, 40) is False and _orderings_above(8, 4, 40) is True  # 20 and 70
    assert _orderings_above(40, 1, 40) is False  # exactly 40: not above
    start = time.process_time()
    assert _orderings_above(200_000, 100_000, 40) and not _orderings_above(200_000, 0, 40)
    assert time.process_time() - start < 0.05


@pytest.mark.parametrize("n", [51, 300, 20_000])
def test_the_rank_tests_on_many_units_are_scipys_normal_approximations_without_scipy(n):
    """Above 50 differences (8 requests a side) scipy.stats itself uses these; importing it cost ~1 s and 70 MB."""
    import numpy as np
    from scipy import stats as sps

    from visionbench.report.rank_tests import average_ranks

    rng = np.random.default_rng(n)
    a = rng.integers(0, 6, size=n).astype(float)
    b = a + (rng.random(n) < 0.1) * rng.integers(-2, 4, size=n)  # ties and zeros, as per-image errors have
    p, nonzero = wilcoxon(a.tolist(), b.tolist())
    assert nonzero == int(np.count_nonzero(a - b))
    assert p == pytest.approx(sps.wilcoxon(a - b, zero_method="wilcox").pvalue, rel=1e-9)
    x, y = rng.lognormal(0, 1, size=n), np.round(rng.lognormal(0.05, 1, size=n // 2 + 9), 1)
    assert mann_whitney(x, y) == pytest.approx(sps.mannwhitneyu(x, y, alternative="two-sided").pvalue, rel=1e-9)
    ranks, ties = average_ranks(np.array([3.0, 1.0, 3.0, 2.0, 3.0]))  # by hand: 1 -> 1, 2 -> 2, the 3s -> 4
    assert ranks.tolist() == [4.0, 1.0, 4.0, 2.0, 4.0] and sorted(ties.tolist()) == [1, 1, 3]


def test_a_big_reports_tests_do_not_import_scipy():
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from visionbench.report.significance import wilcoxon, mann_whitney\n"
        "r = np.random.default_rng(0)\n"
        "wilcoxon(r.integers(0, 5, 500).tolist(), r.integers(0, 5, 500).tolist())\n"
        "mann_whitney(r.random(300), r.random(300))\n"
        "print('scipy.stats' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_bca_interval_of_a_mean_near_its_edge_reaches_further_than_the_percentile_one():
    """A hand case: absolute errors 0 on 18 images and 3 on 2 (MAE 0.3). The resampled means pile up near 0, so the
    percentile interval's upper end is short; BCa moves both ends up (bias: most resampled means are below 0.3;
    acceleration: the jackknife means are skewed) and agrees with scipy's BCa."""
    import numpy as np
    from scipy import stats as sps

    from visionbench.report import significance as sig

    xs = np.array([0.0] * 18 + [3.0] * 2)
    percentile = sig._percentile_bootstrap(xs, np.random.default_rng(sig.SEED))
    bca = sig._bca_bootstrap(xs, np.random.default_rng(sig.SEED))
    res = sps.bootstrap(
        (xs,), np.mean, n_resamples=sig.BOOTSTRAP_RESAMPLES, method="BCa", rng=np.random.default_rng(sig.SEED)
    )
    assert bca == pytest.approx((res.confidence_interval.low, res.confidence_interval.high), rel=1e-12)
    assert bca[1] > percentile[1] and bca[0] >= percentile[0] and bca[0] < 0.3 < bca[1]
    # jackknife means by hand: dropping a 0 gives 6/19, dropping a 3 gives 3/19; their skew makes a > 0
    jack = np.array([6 / 19] * 18 + [3 / 19] * 2)
    spread = jack.mean() - jack
    assert float(np.sum(spread**3)) > 0
