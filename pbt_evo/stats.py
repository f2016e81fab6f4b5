"""Statistics of a comparison of algorithms over seeds (and tasks), as in the PBT-NAS paper.

- best-of-run fitness per run; mean +- std per algorithm (sample std, ``ddof=1``, by default: with 3-5
  seeds the population formula would understate the spread; ``ddof=0``, the paper's, on request);
- one-sided Wilcoxon signed-rank tests (``scipy.stats.wilcoxon``, ``alternative="greater"``: the
  baseline is better) of the baseline against each other algorithm, paired by (task, seed) so several
  tasks can be pooled (the paper pools 3 tasks x 3 seeds, n = 9);
- effect sizes: the mean paired difference, baseline minus other, with its 95% paired t interval
  (:func:`paired_difference`), beside each p-value: how large a difference is, not only whether it is
  there;
- Bonferroni correction over the m tests: a difference is significant when ``p < alpha / m``
  (the paper: 4 tests, threshold 0.0125); the corrected ``min(1, m * p)`` is reported too; ``m`` may
  be larger than one table's tests, for a family that spans several comparisons (``--tests``);
- anytime curves: best fitness so far against epochs, mean and std over runs per algorithm.

Pure functions over plain data; :mod:`pbt_evo.cli.compare` reads run folders and writes the tables.

>>> rows = compare_table({"a": {("t", 0): 0.9, ("t", 1): 0.8}, "b": {("t", 0): 0.7, ("t", 1): 0.6}}, "a")
>>> [(r.algorithm, r.n, round(r.mean, 2)) for r in rows]
[('a', 2, 0.85), ('b', 2, 0.65)]
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

DDOF = 1  # sample standard deviation
DDOFS = (0, 1)  # 0: the population formula, which the paper's tables use
Key = tuple[str, int]  # (task, seed)


class CompareError(ValueError):
    """Input a comparison cannot use (not a run folder, unpaired seeds, ...); worded for the user."""


# -- runs ---------------------------------------------------------------------------------------------
REPORTS = {  # what a comparison can report, and how its tables name it
    "best": "best-of-run fitness (the best search fitness ever seen: optimistic)",
    "final": "final-population fitness (the best member of the final population)",
    "test": "test score of the exported best network (held-out data, never used for fitness)",
    "hypervolume": "hypervolume of the final Pareto front (every non-dominated trained state of a multi-objective run)",
}


@dataclass
class RunSummary:
    """One finished run: its algorithm label, task, seed, the quantities a comparison reports
    (:data:`REPORTS`) and its anytime curve."""

    path: str
    algorithm: str
    task: str
    seed: int
    best: float
    epochs: list[int]
    best_so_far: list[float]
    final: float = math.nan
    test: float | None = None
    hypervolume: float | None = None        # of the final front, against the comparison's reference point
    hypervolumes: list[float] | None = None  # ... of the front after each generation (its anytime curve)


def task_label(cfg: Mapping[str, Any]) -> str:
    """The task a run solved: target plus arguments (runs of one task pair with each other).

    >>> task_label({"task": {"target": "tasks.digits:DigitsTask", "args": {"lr": 0.001, "channels": 8}}})
    'tasks.digits:DigitsTask(channels=8, lr=0.001)'
    """
    args = cfg["task"].get("args") or {}
    return f"{cfg['task']['target']}({', '.join(f'{k}={args[k]}' for k in sorted(args))})"


def best_so_far(values: Sequence[float | None]) -> list[float]:
    """Running maximum; missing (failed) values carry the previous best (NaN before any).

    >>> best_so_far([0.2, None, 0.1, 0.5])
    [0.2, 0.2, 0.2, 0.5]
    """
    out, best = [], -math.inf
    for v in values:
        if v is not None and math.isfinite(v):
            best = max(best, v)
        out.append(best if math.isfinite(best) else math.nan)
    return out


def by_algorithm(runs: Sequence[RunSummary], report: str = "best") -> dict[str, dict[Key, float]]:
    """One reported quantity (:data:`REPORTS`) by algorithm, then by (task, seed); a repeated (task, seed)
    is an error.

    >>> r = RunSummary("runs/a", "pbt_nas", "t", 0, best=0.9, epochs=[1], best_so_far=[0.9], final=0.8)
    >>> by_algorithm([r], "final")
    {'pbt_nas': {('t', 0): 0.8}}
    """
    if report not in REPORTS:
        raise CompareError(f"--report {report!r}: allowed values are {', '.join(REPORTS)}")
    out: dict[str, dict[Key, float]] = {}
    for r in runs:
        cell = out.setdefault(r.algorithm, {})
        if (r.task, r.seed) in cell:
            raise CompareError(f"two runs of {r.algorithm} with seed {r.seed} on the same task (one is {r.path})")
        value = getattr(r, report)
        if value is None:
            why = "its task's members have no test_score()" if report == "test" else "not a multi-objective run"
            raise CompareError(f"{r.path}: no {report} score ({why})")
        cell[(r.task, r.seed)] = float(value)
    return out


# -- statistics ---------------------------------------------------------------------------------------
def mean_std(values: Sequence[float], ddof: int = DDOF) -> tuple[float, float]:
    """Mean and standard deviation (sample, ``ddof=1``, by default; 0 for a single value).

    >>> mean_std([1.0, 2.0, 3.0])
    (2.0, 1.0)
    """
    a = np.asarray(values, dtype=float)
    return float(a.mean()), float(a.std(ddof=ddof)) if a.size > ddof else 0.0


def wilcoxon_greater(x: Sequence[float], y: Sequence[float]) -> float:
    """One-sided Wilcoxon signed-rank p-value for "x is greater than y", paired.

    scipy's defaults: zero differences dropped (``zero_method="wilcox"``), the exact distribution for
    small samples without ties. All differences zero means no evidence: p = 1.

    >>> wilcoxon_greater([2, 3, 4, 5, 6, 7, 8, 9, 10], [1] * 9)  # 9 pairs, all favour x: 1 / 2**9
    0.001953125
    """
    return wilcoxon_test(x, y)[1]


def wilcoxon_test(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """:func:`wilcoxon_greater` with its statistic: ``(W+, p)``, W+ the sum of the ranks of the positive
    differences ``x - y`` (zeros dropped; 0 when all differences are zero).

    >>> wilcoxon_test([3, 1, 5], [1, 2, 1])  # differences 2, -1, 4: ranks 2, 1, 3; W+ = 2 + 3
    (5.0, 0.25)
    """
    from scipy.stats import wilcoxon

    d = np.asarray(x, dtype=float) - np.asarray(y, dtype=float)
    if len(d) == 0:
        raise CompareError("no paired runs to test")
    if not np.any(d != 0):
        return 0.0, 1.0
    result = wilcoxon(x, y, alternative="greater")
    return float(result.statistic), float(result.pvalue)


def paired_difference(x: Sequence[float], y: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean of the paired differences ``x - y`` and its two-sided ``confidence`` interval: the paired t
    interval, ``mean +- t_{n-1} * sd / sqrt(n)`` (``scipy.stats.t``; the same as
    ``scipy.stats.ttest_rel(x, y).confidence_interval(confidence)``).

    Why t and not a bootstrap: the tables pair 9 to 27 runs; at n = 9 a percentile bootstrap interval is
    too narrow (it resamples 9 values, so it cannot see beyond their range, and covers less than its
    nominal 95%), and it depends on a resampling seed. The t interval is deterministic and exact when the
    differences are normal; it is about the mean difference, while the Wilcoxon test beside it is about
    the differences' median (their signed ranks), so the two can disagree on skewed differences.
    One pair: no interval (NaN bounds). All differences equal: the interval is that value.

    >>> [round(v, 4) for v in paired_difference([0.9, 0.8, 0.7], [0.8, 0.8, 0.6])]  # differences 0.1, 0, 0.1
    [0.0667, -0.0768, 0.2101]
    """
    from scipy.stats import t

    d = np.asarray(x, dtype=float) - np.asarray(y, dtype=float)
    if len(d) == 0:
        raise CompareError("no paired runs to compare")
    mean = float(d.mean())
    if len(d) < 2:
        return mean, math.nan, math.nan
    half = float(t.ppf(0.5 + confidence / 2, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d)))
    return mean, mean - half, mean + half


def bonferroni(pvalues: Sequence[float], alpha: float = 0.05, m: int | None = None) -> tuple[list[float], float]:
    """Bonferroni-corrected p-values ``min(1, m * p)`` and the per-test threshold ``alpha / m``; ``m`` is
    the family's size, by default the tests given, more when the family spans several comparisons (the
    paper: 4 tests over its GAN and RL settings, two in each).

    >>> bonferroni([0.001953125, 0.02, 0.5, 0.01])
    ([0.0078125, 0.08, 1.0, 0.04], 0.0125)
    >>> bonferroni([0.001953125, 0.005859375], m=4)
    ([0.0078125, 0.0234375], 0.0125)
    """
    if m is None:
        m = len(pvalues)
    elif m < len(pvalues):
        raise CompareError(f"--tests {m}: the family must hold at least the {len(pvalues)} tests of this comparison")
    if m == 0:
        return [], alpha
    return [min(1.0, p * m) for p in pvalues], alpha / m


@dataclass
class Row:
    """One line of the comparison table."""

    algorithm: str
    n: int
    mean: float
    std: float
    p: float | None = None          # one-sided Wilcoxon, baseline > this algorithm
    p_bonferroni: float | None = None
    threshold: float | None = None  # alpha / m
    significant: bool | None = None
    diff: float | None = None       # mean paired difference, baseline minus this algorithm
    diff_low: float | None = None   # ... its 95% paired t interval
    diff_high: float | None = None
    statistic: float | None = None  # the Wilcoxon W+ of the baseline's differences


def compare_table(results: Mapping[str, Mapping[Key, float]], baseline: str, alpha: float = 0.05,
                  ddof: int = DDOF, tests: int | None = None) -> list[Row]:
    """The table: every algorithm's mean +- std (``ddof`` 1, sample, or 0, the paper's tables); the
    baseline tested against each other one, Bonferroni over ``tests`` (default: the tests of this table).

    ``results[algorithm][(task, seed)] = best-of-run fitness``. Baseline first, then the others in the
    given order. Raises :class:`CompareError` when fewer than 2 algorithms are given, the baseline is
    missing, or an algorithm's (task, seed) pairs differ from the baseline's.
    """
    if len(results) < 2:
        raise CompareError(f"need runs of at least 2 algorithms to compare, got {len(results)}: {', '.join(results)}")
    if baseline not in results:
        raise CompareError(f"baseline {baseline!r} has no runs; algorithms present: {', '.join(results)}")
    keys = sorted(results[baseline])
    others = [a for a in results if a != baseline]
    for a in others:
        if set(results[a]) != set(keys):
            missing = sorted(set(keys) ^ set(results[a]))
            raise CompareError(f"runs of {a} and {baseline} are not paired: (task, seed) {missing[0]} is in only one"
                               f" of them ({len(results[a])} vs {len(keys)} runs)")
    base = [results[baseline][k] for k in keys]
    signed_rank = [wilcoxon_test(base, [results[a][k] for k in keys]) for a in others]
    pvalues = [p for _, p in signed_rank]
    if ddof not in DDOFS:
        raise CompareError(f"--ddof {ddof}: allowed values are {', '.join(map(str, DDOFS))}")
    corrected, threshold = bonferroni(pvalues, alpha, tests)
    rows = [Row(baseline, len(keys), *mean_std(base, ddof))]
    for a, (w, p), pc in zip(others, signed_rank, corrected):
        other = [results[a][k] for k in keys]
        rows.append(Row(a, len(keys), *mean_std(other, ddof), p, pc, threshold, p < threshold,
                        *paired_difference(base, other), w))
    return rows


def by_task(results: Mapping[str, Mapping[Key, float]]) -> dict[str, dict[str, dict[Key, float]]]:
    """``results`` split by task (in sorted order): one ``results`` per task, for per-task tables beside
    the pooled one.

    >>> by_task({"a": {("t2", 0): 0.5, ("t1", 0): 0.7}, "b": {("t1", 0): 0.6, ("t2", 0): 0.4}})
    {'t1': {'a': {('t1', 0): 0.7}, 'b': {('t1', 0): 0.6}}, 't2': {'a': {('t2', 0): 0.5}, 'b': {('t2', 0): 0.4}}}
    """
    tasks = sorted({task for cell in results.values() for task, _ in cell})
    return {t: {a: {k: v for k, v in cell.items() if k[0] == t} for a, cell in results.items()} for t in tasks}


def to_csv(rows: Sequence[Row], task: Sequence[str] | None = None) -> str:
    """The table as CSV (every number at full precision); with ``task``, a first column naming each row's
    task (the per-task tables in one file)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, ["task"] * (task is not None) + list(asdict(rows[0])))
    writer.writeheader()
    for i, r in enumerate(rows):
        writer.writerow({**({"task": task[i]} if task is not None else {}),
                         **{k: ("" if v is None else v) for k, v in asdict(r).items()}})
    return buf.getvalue()


def to_markdown(rows: Sequence[Row], digits: int = 4, value: str = "best-of-run fitness") -> str:
    """The table as Markdown: mean +- std of ``value``, the mean paired difference baseline minus this
    algorithm with its 95% interval, p, Bonferroni-corrected p, significance at alpha / m."""
    base = rows[0].algorithm
    threshold = f" (p < {rows[1].threshold:.4g})" if len(rows) > 1 else ""
    lines = [f"| algorithm | n | {value} (mean +- std) | {base} minus this: mean [95% CI] | p ({base} better) | p x m"
             f" | significant{threshold} |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        fit = f"{r.mean:.{digits}f} +- {r.std:.{digits}f}"
        if r.p is None:
            lines.append(f"| **{r.algorithm}** (baseline) | {r.n} | {fit} | | | | |")
        else:
            lines.append(f"| {r.algorithm} | {r.n} | {fit} | {r.diff:+.{digits}f} [{r.diff_low:+.{digits}f},"
                         f" {r.diff_high:+.{digits}f}] | {r.p:.4g} | {r.p_bonferroni:.4g} |"
                         f" {'yes' if r.significant else 'no'} |")
    return "\n".join(lines) + "\n"


# -- anytime curves -----------------------------------------------------------------------------------
def anytime(runs: Sequence[RunSummary], curve: str = "best_so_far") -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per algorithm: epochs, mean and std (``ddof=1``) of the best fitness so far over its runs (or of
    another per-generation ``curve`` of :class:`RunSummary`, e.g. ``hypervolumes``).

    Runs with different generation grids are aligned on the union of their epochs (a run's best so far
    holds until its next generation; NaN before its first).
    """
    out = {}
    for alg in dict.fromkeys(r.algorithm for r in runs):
        mine = [r for r in runs if r.algorithm == alg]
        grid = np.array(sorted({e for r in mine for e in r.epochs}))
        curves = []
        for r in mine:
            idx = np.searchsorted(r.epochs, grid, side="right") - 1
            curves.append(np.where(idx >= 0, np.asarray(getattr(r, curve))[np.clip(idx, 0, None)], np.nan))
        c = np.array(curves)
        with np.errstate(invalid="ignore"):
            std = np.nanstd(c, axis=0, ddof=DDOF) if len(c) > 1 else np.zeros(len(grid))
        out[alg] = (grid, np.nanmean(c, axis=0), np.nan_to_num(std))
    return out
