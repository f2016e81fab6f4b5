"""Statistics of comparisons: Wilcoxon and Bonferroni numbers against scipy and exact enumeration."""

import itertools
import statistics

import numpy as np
import pytest
from scipy.stats import rankdata, t, ttest_rel, wilcoxon

from pbt_evo.stats import (CompareError, RunSummary, anytime, best_so_far, bonferroni, by_algorithm, by_task,
                           compare_table, mean_std, paired_difference, to_csv, to_markdown, wilcoxon_greater,
                           wilcoxon_test)
from pbt_evo.cli.sweep import algorithm_label, algorithm_overrides

X = [0.91, 0.88, 0.93, 0.85, 0.90, 0.87, 0.95, 0.80, 0.89]
Y = [0.90, 0.80, 0.94, 0.81, 0.82, 0.86, 0.88, 0.83, 0.70]


def exact_p_greater(x, y):
    """One-sided exact p by enumerating all 2^n sign flips (no ties, no zeros)."""
    d = np.subtract(x, y)
    ranks = np.argsort(np.argsort(np.abs(d))) + 1
    observed = ranks[d > 0].sum()
    count = sum(sum(r for r, s in zip(ranks, signs) if s) >= observed
                for signs in itertools.product([0, 1], repeat=len(d)))
    return count / 2 ** len(d)


def test_paper_pattern_n9_all_favour_baseline():
    base = [13.0 + i for i in range(9)]
    other = [b - 0.5 - 0.1 * i for i, b in enumerate(base)]
    assert wilcoxon_greater(base, other) == 1 / 512 == 0.001953125
    assert wilcoxon_greater(base, other) == wilcoxon(base, other, alternative="greater").pvalue


def test_matches_scipy_and_exact_enumeration():
    p = wilcoxon_greater(X, Y)
    assert p == wilcoxon(X, Y, alternative="greater").pvalue
    assert p == pytest.approx(exact_p_greater(X, Y), abs=1e-12)
    assert wilcoxon_greater(Y, X) == wilcoxon(Y, X, alternative="greater").pvalue


def test_all_equal_is_no_evidence():
    assert wilcoxon_greater([0.5, 0.6], [0.5, 0.6]) == 1.0


def test_bonferroni_four_tests_threshold():
    corrected, threshold = bonferroni([0.001953125, 0.0039, 0.02, 0.5])
    assert threshold == 0.0125
    assert corrected == [0.0078125, 0.0156, 0.08, 1.0]


def test_mean_std_is_sample_std():
    m, s = mean_std(X)
    assert m == pytest.approx(statistics.mean(X)) and s == pytest.approx(statistics.stdev(X))
    assert mean_std([0.7]) == (0.7, 0.0)


def results():
    return {"pbt_nas": {("t", i): x for i, x in enumerate(X)}, "searl": {("t", i): y for i, y in enumerate(Y)},
            "random": {("t", i): y - 0.05 for i, y in enumerate(Y)}}


def test_compare_table_numbers():
    rows = compare_table(results(), "pbt_nas")
    assert [r.algorithm for r in rows] == ["pbt_nas", "searl", "random"]
    assert rows[0].p is None and rows[0].n == 9
    assert rows[1].p == wilcoxon(X, Y, alternative="greater").pvalue
    assert rows[2].p == 1 / 512 and rows[2].threshold == 0.025 and rows[2].significant
    assert rows[2].p_bonferroni == 2 / 512
    md, csv = to_markdown(rows), to_csv(rows)
    assert md.count("\n") == 2 + 3 and "0.001953" in md
    assert csv.splitlines()[0].startswith("algorithm,n,mean,std,p") and len(csv.splitlines()) == 4


def test_pairs_by_task_and_seed_when_pooling():
    r = {"a": {("t1", 0): 1.0, ("t2", 0): 2.0}, "b": {("t2", 0): 1.5, ("t1", 0): 0.5}}
    rows = compare_table(r, "a")
    assert rows[1].p == wilcoxon([1.0, 2.0], [0.5, 1.5], alternative="greater").pvalue


@pytest.mark.parametrize("data, baseline, message", [
    ({"a": {("t", 0): 1.0}}, "a", "at least 2 algorithms"),
    ({"a": {("t", 0): 1.0}, "b": {("t", 1): 1.0}}, "a", "not paired"),
    ({"a": {("t", 0): 1.0}, "b": {("t", 0): 1.0}}, "c", "baseline 'c' has no runs"),
])
def test_bad_input(data, baseline, message):
    with pytest.raises(CompareError, match=message):
        compare_table(data, baseline)


def test_repeated_seed_is_an_error():
    runs = [RunSummary(f"r{i}", "a", "t", 0, 0.5, [1], [0.5]) for i in range(2)]
    with pytest.raises(CompareError, match="two runs of a with seed 0"):
        by_algorithm(runs)


def test_anytime_mean_std_on_union_grid():
    runs = [RunSummary("r0", "a", "t", 0, 0.6, [2, 4], best_so_far([0.2, 0.6])),
            RunSummary("r1", "a", "t", 1, 0.4, [2, 4], best_so_far([0.4, 0.3]))]
    grid, mean, std = anytime(runs)["a"]
    assert grid.tolist() == [2, 4] and mean.tolist() == pytest.approx([0.3, 0.5])
    assert std.tolist() == pytest.approx([np.std([0.2, 0.4], ddof=1), np.std([0.6, 0.4], ddof=1)])


@pytest.mark.parametrize("label", ["pbt_nas", "searl", "random", "no_mixing", "pbt_nas_sp10", "pbt_nas_sp01",
                                   "pbt_nas_naswot", "no_mixing_sp01"])
def test_labels_round_trip_through_config(label):
    from pbt_evo.cli import config

    data = {"task": {"target": "tasks.digits:DigitsTask"}, "algorithm": {"population": 8, "e_total": 2, "e_step": 1}}
    for assignment in algorithm_overrides(label):
        config.set_override(data, assignment)
    assert algorithm_label(config.resolve(data)) == label


def test_unknown_label():
    from pbt_evo.cli.config import ConfigError

    with pytest.raises(ConfigError, match="unknown suffix '_sp11'"):
        algorithm_overrides("pbt_nas_sp11")
    with pytest.raises(ConfigError, match="must start with one of"):
        algorithm_overrides("pbtx")  # "pbt" itself is classic PBT


def test_paired_difference_is_scipys_paired_t_interval():
    d, low, high = paired_difference(X, Y)
    ci = ttest_rel(X, Y).confidence_interval(0.95)
    assert d == pytest.approx(np.mean(np.subtract(X, Y)), rel=1e-12)
    assert (low, high) == (pytest.approx(ci.low, rel=1e-12), pytest.approx(ci.high, rel=1e-12))
    half = t.ppf(0.975, 8) * statistics.stdev(np.subtract(X, Y)) / 3  # by hand: n = 9
    assert (low, high) == (pytest.approx(d - half, rel=1e-12), pytest.approx(d + half, rel=1e-12))
    ci90 = ttest_rel(X, Y).confidence_interval(0.9)
    assert paired_difference(X, Y, 0.9)[1:] == (pytest.approx(ci90.low, rel=1e-12), pytest.approx(ci90.high, rel=1e-12))


def test_paired_difference_edge_cases():
    assert paired_difference([0.5, 0.7], [0.4, 0.6]) == pytest.approx((0.1, 0.1, 0.1))  # equal differences
    mean, low, high = paired_difference([0.5], [0.4])
    assert mean == pytest.approx(0.1) and np.isnan(low) and np.isnan(high)  # one pair: no interval
    with pytest.raises(CompareError, match="no paired runs"):
        paired_difference([], [])


def test_wilcoxon_statistic_is_the_sum_of_positive_ranks():
    d = np.subtract(X, Y)
    w, p = wilcoxon_test(X, Y)
    assert w == rankdata(np.abs(d))[d > 0].sum() == wilcoxon(X, Y, alternative="greater").statistic
    assert p == wilcoxon_greater(X, Y)
    assert wilcoxon_test([0.5, 0.6], [0.5, 0.6]) == (0.0, 1.0)


def test_table_rows_carry_effect_sizes():
    rows = compare_table(results(), "pbt_nas")
    assert rows[0].diff is None and rows[0].statistic is None
    assert rows[1].diff == paired_difference(X, Y)[0] and (rows[1].diff_low, rows[1].diff_high) == paired_difference(X, Y)[1:]
    assert rows[2].diff == pytest.approx(rows[1].diff + 0.05)
    assert rows[2].statistic == 45.0  # 9 pairs, all favour the baseline: 1 + ... + 9
    md = to_markdown(rows)
    assert f"| searl | 9 | {np.mean(Y):.4f} +- {statistics.stdev(Y):.4f} | {rows[1].diff:+.4f} [{rows[1].diff_low:+.4f}," in md


def test_by_task_splits_pooled_results():
    r = {"a": {("t1", 0): 1.0, ("t2", 0): 2.0, ("t1", 1): 3.0}, "b": {("t2", 0): 1.5, ("t1", 0): 0.5, ("t1", 1): 2.0}}
    split = by_task(r)
    assert split == {"t1": {"a": {("t1", 0): 1.0, ("t1", 1): 3.0}, "b": {("t1", 0): 0.5, ("t1", 1): 2.0}},
                     "t2": {"a": {("t2", 0): 2.0}, "b": {("t2", 0): 1.5}}}
    assert compare_table(split["t1"], "a")[1].p == wilcoxon([1.0, 3.0], [0.5, 2.0], alternative="greater").pvalue
