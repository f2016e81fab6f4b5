"""Compare algorithms over run folders: ``python -m pbt_evo.compare runs/study/* [--baseline pbt_nas]``.

Groups runs by algorithm label (from each ``config.yaml``: ``pbt_nas``, ``searl``, ``pbt_nas_sp10``, ...),
pairs them by (task, seed), and writes into ``--out`` (default: ``<parent of the first run>/compare``):

- ``compare.md`` / ``compare.csv``: the reported quantity's mean +- std (sample std) per algorithm,
  one-sided Wilcoxon signed-rank p-values of the baseline against each other algorithm and the
  Bonferroni threshold (see :mod:`pbt_evo.stats`). ``--report`` picks the quantity: ``best`` (the best
  search fitness ever seen, optimistic), ``final`` (the best member of the final population: the last
  ``log.jsonl`` row's ``best``), ``test`` (the exported best network's held-out ``test_score``, from
  ``best/genome.json``, or computed from ``best/`` for runs that predate it);
- ``anytime.png`` (one panel per task): best fitness so far against epochs, mean +- std per algorithm.

An argument that is a folder of run folders (a sweep's output) stands for all runs inside it.
Bad input (not a run folder, unfinished or unpaired runs, fewer than 2 algorithms) is one line on
stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from ..export import load_best
from ..task import TaskSpec
from ..stats import (REPORTS, CompareError, RunSummary, anytime, best_so_far, by_algorithm, compare_table,
                     task_label, to_csv, to_markdown)
from .sweep import algorithm_label


def load_run(run_dir: str | Path, require_finished: bool = True, test: bool = False) -> RunSummary:
    """Read a run folder's ``config.yaml`` and ``log.jsonl`` (and with ``test``, its best network's test
    score); raises :class:`CompareError`."""
    run = Path(run_dir)
    if not (run / "config.yaml").is_file() or not (run / "log.jsonl").is_file():
        raise CompareError(f"{run} is not a pbt_evo run folder (needs config.yaml and log.jsonl)")
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    if not rows:
        raise CompareError(f"{run}: log.jsonl is empty (the run has not finished a generation)")
    e_total = cfg["algorithm"]["e_total"]
    if require_finished and rows[-1]["epochs"] < e_total:
        raise CompareError(f"{run}: unfinished ({rows[-1]['epochs']}/{e_total} epochs); resume it first")
    curve = best_so_far([r["best"] for r in rows])
    if not math.isfinite(curve[-1]):
        raise CompareError(f"{run}: no member ever had a finite fitness")
    final = rows[-1]["best"]
    return RunSummary(str(run), algorithm_label(cfg), task_label(cfg), int(cfg["seed"]), curve[-1],
                      [int(r["epochs"]) for r in rows], curve, math.nan if final is None else float(final),
                      best_test_score(run) if test else None)


def best_test_score(run: Path) -> float | None:
    """The held-out test score of a run's exported best network: recorded in ``best/genome.json`` at the
    end of the run, else computed from ``best/`` (the task's ``Member.test_score``; None if it has none)."""
    info_path = run / "best" / "genome.json"
    if not info_path.is_file():
        raise CompareError(f"{run}: no best/genome.json (the run has not finished); resume it first")
    info = json.loads(info_path.read_text())
    if "test_score" in info:
        return info["test_score"]
    model, info = load_best(run)
    task = TaskSpec(info["task"]["target"], info["task"].get("args", {})).build()
    member = task.build(info["genome"])
    member.model.load_state_dict(model.state_dict())
    score = member.test_score()
    return None if score is None else float(score)


def expand(paths: Sequence[str | Path]) -> list[Path]:
    """Run folders from arguments: a run folder itself, or a folder whose children are run folders."""
    out: list[Path] = []
    for p in map(Path, paths):
        if (p / "config.yaml").is_file():
            out.append(p)
        elif p.is_dir() and any((c / "config.yaml").is_file() for c in p.iterdir()):
            out += sorted(c for c in p.iterdir() if (c / "config.yaml").is_file())
        else:
            raise CompareError(f"{p} is not a pbt_evo run folder (no config.yaml) nor a folder of run folders")
    if not out:
        raise CompareError("no run folders given")
    return out


def plot_anytime(runs: Sequence[RunSummary], path: Path, title: str = "") -> Path:
    """Best fitness so far vs epochs, mean +- std band per algorithm; one panel per task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(r.task for r in runs))
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 3.8), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for alg, (grid, mean, std) in anytime([r for r in runs if r.task == task]).items():
            n = sum(r.algorithm == alg and r.task == task for r in runs)
            (line,) = ax.plot(grid, mean, label=f"{alg} (n={n})", linewidth=1.5)
            ax.fill_between(grid, mean - std, mean + std, color=line.get_color(), alpha=0.15, linewidth=0)
        ax.set_xlabel("epochs per member")
        ax.set_ylabel("best fitness so far")
        ax.set_title((title + "\n" if title else "") + (task if len(task) < 60 else task[:57] + "..."), fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def compare(paths: Sequence[str | Path], out: str | Path | None = None, baseline: str = "pbt_nas",
            alpha: float = 0.05, only: Sequence[str] | None = None, report: str = "best") -> dict[str, Path]:
    """Load, test, write the table (Markdown, CSV) and the anytime plot; returns the files written.

    >>> # compare(["runs/study"], baseline="pbt_nas", report="test")["markdown"].read_text()
    """
    if report not in REPORTS:
        raise CompareError(f"--report {report!r}: allowed values are {', '.join(REPORTS)}")
    folders = expand(paths)
    if only:
        folders = [p for p in folders if algorithm_label(yaml.safe_load((p / "config.yaml").read_text())) in only]
    runs = [load_run(p, test=report == "test") for p in folders]
    results = by_algorithm(runs, report)
    if only:  # the table follows the order asked for
        results = {a: results[a] for a in only if a in results}
    rows = compare_table(results, baseline, alpha)
    out = Path(out) if out is not None else Path(runs[0].path).parent / "compare"
    out.mkdir(parents=True, exist_ok=True)
    tasks = sorted({r.task for r in runs})
    header = (f"Reported: {REPORTS[report]} (`--report {report}`), over {rows[0].n} paired (task, seed) runs per"
              f" algorithm"
              f" ({len(tasks)} task{'s' if len(tasks) > 1 else ''}: {', '.join(tasks)}). Std: sample (ddof=1)."
              f" p: one-sided Wilcoxon signed-rank test that {baseline} is better, paired by (task, seed);"
              f" Bonferroni over {len(rows) - 1} tests: significant when p < alpha / m"
              f" = {alpha}/{len(rows) - 1}.\n\n")
    files = {"markdown": out / "compare.md", "csv": out / "compare.csv", "plot": out / "anytime.png"}
    files["markdown"].write_text(header + to_markdown(rows, value=REPORTS[report].split(" (")[0]))
    files["csv"].write_text(to_csv(rows))
    plot_anytime(runs, files["plot"])
    return files


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pbt_evo.compare", description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="run folders, or folders of run folders (a sweep's --out)")
    p.add_argument("--out", help="output folder (default: <parent of the first run>/compare)")
    p.add_argument("--baseline", default="pbt_nas", help="algorithm tested against every other one (default pbt_nas)")
    p.add_argument("--alpha", type=float, default=0.05, help="family-wise significance level (default 0.05)")
    p.add_argument("--only", help="comma-separated algorithm labels to include (default: all found)")
    p.add_argument("--report", default="best", choices=list(REPORTS),
                   help="quantity: best (best search fitness ever seen), final (best of the final population),"
                        " test (held-out test score of the exported best network); default best")
    args = p.parse_args(argv)
    try:
        only = [a.strip() for a in args.only.split(",") if a.strip()] if args.only else None
        files = compare(args.runs, args.out, args.baseline, args.alpha, only, args.report)
    except CompareError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(files["markdown"].read_text())
    for f in files.values():
        print(f"written: {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
