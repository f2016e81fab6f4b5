"""A BOHB run (``algorithm.name: bohb``, :mod:`pbt_evo.bohb`) in a run folder that ``compare`` and
``sweep`` read like any other run's.

The folder has ``config.yaml``, ``space.json``, ``log.jsonl`` / ``log.csv``, ``trials.jsonl`` (each
architecture BOHB trained: genome, decoded architecture, fitness after each epoch), ``best/`` (BOHB's
incumbent, exported like any run's best network), ``plots/fitness.png`` and ``tune/`` (Ray Tune's own
files and the trials' last checkpoints).

A log row stands for ``population`` epochs of training, whichever trials did them, in the order the
results arrived: row k has ``epochs = k``, the epochs per member of a population run of the same
budget, so BOHB's anytime curve lies on PBT-NAS's axis; its ``best`` / ``median`` / ``worst`` are over
the fitness values reported in those epochs. A BOHB run does not resume: run again with ``--overwrite``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..handles import StoredState
from ..individual import Individual
from ..task import Task
from . import checkpoint
from .config import ConfigError, build_task, check_runner
from .plot import plot_run
from .runfolder import RunFolder


def log_rows(results: Sequence[dict[str, Any]], population: int) -> list[dict[str, Any]]:
    """One row per ``population`` results (epochs) in arrival order; ``epochs`` as in a population run.

    >>> rows = log_rows([{"fitness": f, "train_s": 1.0, "time": t} for t, f in enumerate([0.1, 0.3, 0.2, 0.4])], 2)
    >>> [(r["epochs"], r["best"], r["worst"]) for r in rows]
    [(1, 0.3, 0.1), (2, 0.4, 0.2)]
    """
    rows, last = [], results[0]["time"] if results else 0.0
    for k in range(0, len(results), population):
        chunk = results[k:k + population]
        fits = np.array([r["fitness"] for r in chunk], dtype=float)
        finite = fits[np.isfinite(fits)]
        wall = max(chunk[-1]["time"] - last, 0.0)
        last = chunk[-1]["time"]
        train = float(sum(r.get("train_s") or 0.0 for r in chunk))
        rows.append({"gen": len(rows) + 1, "epochs": len(rows) + 1,
                     "best": float(finite.max()) if finite.size else None,
                     "median": float(np.median(finite)) if finite.size else None,
                     "worst": float(finite.min()) if finite.size else None,
                     "failed": int(fits.size - finite.size), "replaced": 0, "wall_s": round(wall, 4),
                     "train_s": round(train, 4), "framework_s": round(max(wall - train, 0.0), 4),
                     "framework_share": round(max(wall - train, 0.0) / wall, 5) if wall > 0 else 0.0})
    return rows


def run_bohb_search(cfg: dict[str, Any], run_dir: Path, say: Any = print, where: str = "config") -> int:
    """Run BOHB for a resolved config into ``run_dir`` (held locked by the caller); returns 0."""
    try:
        from ..bohb import run_bohb  # Ray Tune is imported for BOHB runs only
    except ImportError as exc:
        raise ConfigError(f"'algorithm.name' bohb needs the bohb extra: pip install -e \".[bohb]\" ({exc})") from None

    alg, par = cfg["algorithm"], cfg["parallel"]
    task: Task = build_task(cfg, where)
    check_runner(cfg, task.space, where)
    folder = RunFolder(run_dir, task.space, tensorboard=False)
    try:
        with checkpoint.writing(run_dir):
            folder.write_config(cfg)
            (run_dir / "space.json").write_text(json.dumps(task.space.to_dict()))
        workers = par["workers"] if par["backend"] == "ray" else 1
        say(f"run folder {run_dir}: bohb, budget {alg['population']} x {alg['e_total']} {task.epoch_unit}s,"
            f" {task.space}, {workers} trial(s) at a time")
        res = run_bohb(cfg["task"], task.space, alg["population"], alg["e_total"], seed=cfg["seed"],
                       workers=workers, cpus_per_worker=par["cpus_per_worker"],
                       gpus_per_worker=par["gpus_per_worker"], storage=run_dir / "tune")
        with checkpoint.writing(run_dir):
            for row in log_rows(res.results, alg["population"]):
                folder.append_row(row)
            (run_dir / "trials.jsonl").write_text("".join(
                json.dumps({"trial": t.trial, "genome": t.genome, "arch": task.space.decode(t.genome),
                            "epochs": t.epochs, "fitness": t.fitness}) + "\n" for t in res.trials.values()))
            best = res.incumbent()
            ind = Individual(best.genome, handle=StoredState(best.state_path), epochs=best.epochs)
            ind.fitness.values = (best.fitness[-1] if math.isfinite(best.fitness[-1]) else -math.inf,)
            path = folder.export_best(task, ind, cfg)
            say(f"best: trial {best.trial}, {best.epochs} epochs, fitness {best.fitness[-1]:.4g} -> {path}")
            for p in plot_run(run_dir):
                say(f"plot: {p}")
        print(f"done: results in {run_dir} ({len(res.trials)} architectures, {len(res.results)} epochs)")
    finally:
        folder.close()
        task.close()
    return 0
