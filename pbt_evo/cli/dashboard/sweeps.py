"""A sweep's page as data: the ``compare`` table and anytime curves of the runs in one folder.

The same functions as ``python -m pbt_evo.compare`` (:func:`pbt_evo.cli.compare.load_run`,
:mod:`pbt_evo.stats`), on runs that may still be running: a run that cannot be compared yet (no
generation, no finite fitness) is left out with a note, and a table that cannot be made (one
algorithm, unpaired seeds) is one line saying why.

>>> baseline_of(["random", "pbt_nas"], None), baseline_of(["random", "searl"], "pbt_nas")
('pbt_nas', 'random')
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ...stats import REPORTS, CompareError, RunSummary, by_algorithm, compare_table, to_markdown
from ..compare import common_reference, load_run
from ..runread import RunReadError

HYPERVOLUME = "hypervolume"


def baseline_of(labels: Sequence[str], asked: str | None) -> str | None:
    """The baseline: the one asked for if present, else ``pbt_nas`` if present, else the first label."""
    for choice in (asked, "pbt_nas"):
        if choice in labels:
            return choice
    return labels[0] if labels else None


def summaries(paths: Sequence[Path], report: str) -> tuple[list[RunSummary], list[str]]:
    """Each run's :class:`pbt_evo.stats.RunSummary` (unfinished runs too), and a note per run left out;
    for ``hypervolume``, every front against the reference point all runs state (:class:`CompareError`
    if they state different ones)."""
    reference = common_reference(list(paths), None)[0] if report == HYPERVOLUME else None
    runs, notes = [], []
    for path in paths:
        try:
            runs.append(load_run(path, require_finished=False, reference=reference))
        except (CompareError, RunReadError) as exc:
            notes.append(f"{path.name}: not compared: {exc}")
    return runs, notes


def table(runs: Sequence[RunSummary], report: str, baseline: str | None) -> str:
    """The comparison as Markdown (:func:`pbt_evo.stats.to_markdown`); :class:`CompareError` if it cannot
    be made (fewer than 2 algorithms, unpaired seeds)."""
    if report not in REPORTS:
        raise CompareError(f"report {report!r}: allowed values are {', '.join(REPORTS)}")
    results = by_algorithm(runs, report)
    rows = compare_table(results, baseline or "", 0.05)
    return (f"Reported: {REPORTS[report]}, over {rows[0].n} paired (task, seed) runs per algorithm; p: one-sided"
            f" Wilcoxon signed-rank test that {rows[0].algorithm} is better, Bonferroni over {len(rows) - 1} tests"
            f" (as `python -m pbt_evo.compare`).\n\n" + to_markdown(rows, value=REPORTS[report].split(" (")[0]))
