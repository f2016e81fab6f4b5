"""Compare algorithms over run folders: ``python -m pbt_evo.compare runs/study/* [--baseline pbt_nas]``.

Groups runs by algorithm label (from each ``config.yaml``: ``pbt_nas``, ``searl``, ``pbt_nas_sp10``, ...),
pairs them by (task, seed), and writes into ``--out`` (default: ``<parent of the first run>/compare``);
``--group-by name`` groups by config name instead (``<name>_<algorithm>`` for a sweep's runs) and pairs
by seed across tasks, to compare searches in different spaces:

- ``compare.md`` / ``compare.csv``: the reported quantity's mean +- std (sample std; ``--ddof 0``: the
  paper's population std) per algorithm,
  one-sided Wilcoxon signed-rank p-values of the baseline against each other algorithm and the
  Bonferroni threshold (see :mod:`pbt_evo.stats`; ``--tests m``: a family of m tests spanning several
  calls, as the paper's 4 over its GAN and RL settings; settings pooled in one call pair by (task,
  seed)). ``--report`` picks the quantity: ``best`` (the best search fitness ever seen, optimistic), ``final`` (the best member of the final population: the last
  ``log.jsonl`` row's ``best``), ``test`` (the exported best network's held-out ``test_score``, from
  ``best/genome.json``, or computed from ``best/`` for runs that predate it), ``hypervolume`` (of a
  multi-objective run's final Pareto front, ``front.jsonl``, recomputed against one reference point for
  all runs: ``--reference``, else the one every run's ``algorithm.reference_point`` states);
- with ``--per-task``, one more table per task in ``compare.md`` below the pooled one (each tested on its
  own, Bonferroni over the same m) and all of them in ``compare_per_task.csv``;
- ``anytime.png`` (one panel per task): best fitness so far (hypervolume of the front so far, with
  ``--report hypervolume``) against epochs, mean +- std per algorithm; ``anytime_pooled.png`` (runs of
  several tasks): one panel over all tasks' runs.

Beside each p-value, the effect size: the mean paired difference, baseline minus the other algorithm, with
its 95% paired t interval (:func:`pbt_evo.stats.paired_difference`).

An argument that is a folder of run folders (a sweep's output) stands for all runs inside it.
Bad input (not a run folder, unfinished or unpaired runs, fewer than 2 algorithms) is one line on
stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..export import load_best
from ..objectives import Objectives
from ..pareto import hypervolume, points
from ..stats import (REPORTS, CompareError, RunSummary, anytime, best_so_far, by_algorithm, by_task, compare_table,
                     task_label, to_csv, to_markdown)
from ..trusted import UntrustedTask, trusted_spec
from .runread import RunReadError, is_run_folder, read_best, read_config, read_jsonl
from .sweep import algorithm_label


GROUPINGS = ("algorithm", "name")


def load_run(run_dir: str | Path, require_finished: bool = True, test: bool = False,
             reference: Sequence[float] | None = None, group_by: str = "algorithm",
             trust: Sequence[str] = ()) -> RunSummary:
    """Read a run folder's ``config.yaml`` and ``log.jsonl`` (and with ``test``, its best network's test
    score; with ``reference``, its front's hypervolume after each generation); raises :class:`CompareError`.

    ``group_by="name"`` labels the run by its config's name without the sweep's ``_s<seed>`` and pairs it by
    seed alone, across tasks: for runs that differ in their task (e.g. a fixed-width space against a width
    space), where ``"algorithm"`` (the label, paired by task and seed) could not pair them.
    """
    run = Path(run_dir)
    if not (run / "config.yaml").is_file() or not (run / "log.jsonl").is_file():
        raise CompareError(f"{run} is not a pbt_evo run folder (needs config.yaml and log.jsonl)")
    try:
        cfg, rows = read_config(run), read_jsonl(run / "log.jsonl")
    except RunReadError as exc:
        raise CompareError(str(exc)) from None
    if not rows:
        raise CompareError(f"{run}: log.jsonl is empty (the run has not finished a generation)")
    e_total = cfg["algorithm"]["e_total"]
    if require_finished and rows[-1]["epochs"] < e_total:
        raise CompareError(f"{run}: unfinished ({rows[-1]['epochs']}/{e_total} epochs); resume it first")
    curve = best_so_far([r["best"] for r in rows])
    if not math.isfinite(curve[-1]):
        raise CompareError(f"{run}: no member ever had a finite fitness")
    final = rows[-1]["best"]
    task = task_label(cfg) if group_by == "algorithm" else "paired by seed across tasks"
    summary = RunSummary(str(run), run_label(cfg, group_by), task, int(cfg["seed"]), curve[-1],
                         [int(r["epochs"]) for r in rows], curve, math.nan if final is None else float(final),
                         best_test_score(run, trust) if test else None)
    if reference is not None:
        summary.hypervolumes = front_hypervolumes(run, cfg, reference)
        if len(summary.hypervolumes) != len(rows):
            raise CompareError(f"{run}: front.jsonl has {len(summary.hypervolumes)} generations, log.jsonl {len(rows)}")
        summary.hypervolume = summary.hypervolumes[-1]
    return summary


def front_hypervolumes(run: Path, cfg: dict, reference: Sequence[float]) -> list[float]:
    """The hypervolume of a run's front after each generation (``front.jsonl``) against ``reference``."""
    path = run / "front.jsonl"
    if not path.is_file():
        raise CompareError(f"{run}: no front.jsonl: not a multi-objective run (algorithm.objectives)")
    weights = Objectives.parse(cfg["algorithm"]["objectives"]).weights
    if len(reference) != len(weights):
        raise CompareError(f"{run}: {len(weights)} objectives, reference point {list(reference)}")
    try:
        fronts = read_jsonl(path)
    except RunReadError as exc:
        raise CompareError(str(exc)) from None
    return [hypervolume(points([m["values"] for m in f["members"]], weights), reference) for f in fronts]


def common_reference(folders: Sequence[Path], given: Sequence[float] | None) -> tuple[list[float], str]:
    """The reference point of a hypervolume comparison and the objectives it is in: ``given``, else the
    one every run states; runs with other objectives, or other reference points, cannot be compared."""
    found: dict[tuple, list[str]] = {}
    for p in folders:
        alg = read_config(p)["algorithm"]
        objectives = Objectives.parse(alg.get("objectives") or [{"fitness": "max"}])
        ref = tuple(alg.get("reference_point") or ())
        found.setdefault((objectives.describe(), ref), []).append(str(p))
    kinds = {k[0] for k in found}
    if len(kinds) > 1:
        raise CompareError(f"runs optimise different objectives ({'; '.join(sorted(kinds))}): no common hypervolume")
    if given is None and len(found) > 1:
        refs = "; ".join(f"{list(ref)} ({paths[0]})" for (_, ref), paths in found.items())
        raise CompareError(f"runs state different reference points: {refs}; pass --reference to use one for all")
    reference = [float(x) for x in (given if given is not None else next(iter(found))[1])]
    return reference, next(iter(kinds))


def run_label(cfg: dict, group_by: str) -> str:
    """What a comparison calls a run: its algorithm label, or its config name without ``_s<seed>``.

    >>> run_label({"name": "mnist1d_widths_pbt_nas_s3", "algorithm": {"name": "pbt_nas"}}, "name")
    'mnist1d_widths_pbt_nas'
    """
    if group_by not in GROUPINGS:
        raise CompareError(f"--group-by {group_by!r}: allowed values are {', '.join(GROUPINGS)}")
    return algorithm_label(cfg) if group_by == "algorithm" else re.sub(r"_s\d+$", "", str(cfg["name"]))


def best_test_score(run: Path, trust: Sequence[str] = ()) -> float | None:
    """The held-out test score of a run's exported best network: recorded in ``best/genome.json`` at the
    end of the run, else computed from ``best/`` (the task's ``Member.test_score``; None if it has none),
    if an installed package registers its task or ``trust`` names it (:mod:`pbt_evo.trusted`)."""
    info = read_best(run)
    if info is None:
        raise CompareError(f"{run}: no best/genome.json (the run has not finished); resume it first")
    if "test_score" in info:
        return info["test_score"]
    try:
        task = trusted_spec(info.get("task"), f"{run}/best/genome.json", trust,
                            "run compare with --trust-task {target}").build()
    except UntrustedTask as exc:
        raise CompareError(str(exc)) from None
    model, info = load_best(run, task=task)
    member = task.build(info["genome"])
    member.model.load_state_dict(model.state_dict())
    score = member.test_score()
    return None if score is None else float(score)


def expand(paths: Sequence[str | Path]) -> list[Path]:
    """Run folders from arguments: a run folder itself, or a folder whose children are run folders."""
    out: list[Path] = []
    for p in map(Path, paths):
        if is_run_folder(p):
            out.append(p)
        elif p.is_dir() and any(is_run_folder(c) for c in p.iterdir()):
            out += sorted(c for c in p.iterdir() if is_run_folder(c))
        else:
            raise CompareError(f"{p} is not a pbt_evo run folder (no config.yaml) nor a folder of run folders")
    if not out:
        raise CompareError("no run folders given")
    return out


def plot_anytime(runs: Sequence[RunSummary], path: Path, title: str = "", curve: str = "best_so_far",
                 ylabel: str = "best fitness so far") -> Path:
    """Best fitness so far (or another ``curve``) vs epochs, mean +- std band per algorithm; one panel per task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(r.task for r in runs))
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 3.8), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for alg, (grid, mean, std) in anytime([r for r in runs if r.task == task], curve).items():
            n = sum(r.algorithm == alg and r.task == task for r in runs)
            (line,) = ax.plot(grid, mean, label=f"{alg} (n={n})", linewidth=1.5)
            ax.fill_between(grid, mean - std, mean + std, color=line.get_color(), alpha=0.15, linewidth=0)
        ax.set_xlabel("epochs per member")
        ax.set_ylabel(ylabel)
        ax.set_title((title + "\n" if title else "") + (task if len(task) < 60 else task[:57] + "..."), fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def compare(paths: Sequence[str | Path], out: str | Path | None = None, baseline: str = "pbt_nas",
            alpha: float = 0.05, only: Sequence[str] | None = None, report: str = "best",
            reference: Sequence[float] | None = None, group_by: str = "algorithm", ddof: int = 1,
            tests: int | None = None, per_task: bool = False, trust: Sequence[str] = ()) -> dict[str, Path]:
    """Load, test, write the table (Markdown, CSV) and the anytime plot; returns the files written.
    ``per_task``: tables per task too (see the module docstring); ``trust``: task targets a run's ``best/``
    may name although not registered, to compute test scores it did not record (:mod:`pbt_evo.trusted`).

    >>> # compare(["runs/study"], baseline="pbt_nas", report="test")["markdown"].read_text()
    """
    if report not in REPORTS:
        raise CompareError(f"--report {report!r}: allowed values are {', '.join(REPORTS)}")
    folders = expand(paths)
    if only:
        folders = [p for p in folders if run_label(read_config(p), group_by) in only]
    stated = ""
    if report == "hypervolume":
        reference, objectives = common_reference(folders, reference)
        stated = f" Objectives {objectives}; reference point {reference}, the same for every run."
    else:
        reference = None
    runs = [load_run(p, test=report == "test", reference=reference, group_by=group_by, trust=trust) for p in folders]
    results = by_algorithm(runs, report)
    if only:  # the table follows the order asked for
        results = {a: results[a] for a in only if a in results}
    rows = compare_table(results, baseline, alpha, ddof, tests)
    m = tests if tests is not None else len(rows) - 1
    family = f"{m} tests" + (f" (this table's {len(rows) - 1} and {m - len(rows) + 1} of other comparisons, --tests)"
                             if m > len(rows) - 1 else "")
    out = Path(out) if out is not None else Path(runs[0].path).parent / "compare"
    out.mkdir(parents=True, exist_ok=True)
    tasks = sorted({r.task for r in runs})
    header = (f"Reported: {REPORTS[report]} (`--report {report}`), over {rows[0].n} paired (task, seed) runs per"
              f" algorithm"
              f" ({len(tasks)} task{'s' if len(tasks) > 1 else ''}: {', '.join(tasks)})."
              f" Std: {'sample (ddof=1)' if ddof == 1 else 'population (ddof=0, as the paper)'}."
              f" p: one-sided Wilcoxon signed-rank test that {baseline} is better, paired by (task, seed);"
              f" Bonferroni over {family}: significant when p < alpha / m"
              f" = {alpha}/{m}.{stated}\n\n")
    files = {"markdown": out / "compare.md", "csv": out / "compare.csv", "plot": out / "anytime.png"}
    value = REPORTS[report].split(" (")[0]
    text = header + to_markdown(rows, value=value)
    files["csv"].write_text(to_csv(rows))
    if per_task:
        files["per_task_csv"] = out / "compare_per_task.csv"
        text += per_task_tables(results, files["per_task_csv"], baseline, alpha, ddof, tests, value)
    files["markdown"].write_text(text)
    plot = {"curve": "hypervolumes", "ylabel": f"hypervolume of the front (ref. {reference})"} \
        if report == "hypervolume" else {}
    plot_anytime(runs, files["plot"], **plot)
    if len(tasks) > 1:
        files["pooled_plot"] = out / "anytime_pooled.png"
        pooled = f"pooled over {len(tasks)} tasks"
        plot_anytime([dataclasses.replace(r, task=pooled) for r in runs], files["pooled_plot"], **plot)
    return files


def per_task_tables(results: Mapping[str, Mapping[tuple[str, int], float]], csv_path: Path, baseline: str,
                    alpha: float, ddof: int, tests: int | None, value: str) -> str:
    """The per-task tables as Markdown sections (returned) and one CSV with a task column (written)."""
    sections = ["\n## Per task\n\nEach task's runs tested on their own (the same tests and m as above).\n"]
    rows: list = []
    tasks: list[str] = []
    for task, res in by_task(results).items():
        table = compare_table(res, baseline, alpha, ddof, tests)
        sections.append(f"\n### {task}\n\n{to_markdown(table, value=value)}")
        rows += table
        tasks += [task] * len(table)
    csv_path.write_text(to_csv(rows, tasks))
    return "".join(sections)


def parse_reference(text: str) -> list[float]:
    """``--reference 0,2000`` as numbers.

    >>> parse_reference("0, 2000")
    [0.0, 2000.0]
    """
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise CompareError(f"--reference {text!r}: expected numbers separated by commas, e.g. 0,2000") from None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pbt_evo.compare", description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="run folders, or folders of run folders (a sweep's --out)")
    p.add_argument("--out", help="output folder (default: <parent of the first run>/compare)")
    p.add_argument("--baseline", default="pbt_nas", help="algorithm tested against every other one (default pbt_nas)")
    p.add_argument("--alpha", type=float, default=0.05, help="family-wise significance level (default 0.05)")
    p.add_argument("--only", help="comma-separated algorithm labels to include (default: all found)")
    p.add_argument("--report", default="best", choices=list(REPORTS),
                   help="quantity: best (best search fitness ever seen), final (best of the final population),"
                        " test (held-out test score of the exported best network), hypervolume (of a"
                        " multi-objective run's final Pareto front); default best")
    p.add_argument("--reference", help="with --report hypervolume: the reference point, one number per objective"
                                       " (e.g. 0,2000); default: the one every run states")
    p.add_argument("--group-by", default="algorithm", choices=list(GROUPINGS),
                   help="algorithm: by algorithm label, paired by (task, seed) (default); name: by config name"
                        " without _s<seed>, paired by seed across tasks (runs of different spaces)")
    p.add_argument("--per-task", action="store_true",
                   help="tables per task too, below the pooled one (compare.md; compare_per_task.csv)")
    p.add_argument("--ddof", type=int, default=1, choices=[0, 1],
                   help="standard deviation: 1, sample (default); 0, population (the paper's tables)")
    p.add_argument("--tests", type=int, metavar="M",
                   help="Bonferroni family size when it spans several compare calls (the paper: 4, over its GAN and"
                        " RL settings); default: this table's tests")
    p.add_argument("--trust-task", action="append", default=[], metavar="TARGET",
                   help="--report test of a run that predates recorded test scores: build this task"
                        " (package.module:Class) although no installed package registers it (repeatable)")
    args = p.parse_args(argv)
    try:
        only = [a.strip() for a in args.only.split(",") if a.strip()] if args.only else None
        reference = parse_reference(args.reference) if args.reference else None
        files = compare(args.runs, args.out, args.baseline, args.alpha, only, args.report, reference,
                        args.group_by, args.ddof, args.tests, args.per_task, args.trust_task)
    except (CompareError, RunReadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(files["markdown"].read_text())
    for f in files.values():
        print(f"written: {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
