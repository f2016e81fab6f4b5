"""``python -m pbt_evo.naswot CONFIG --archs 40``: does the NASWOT score rank a task's architectures?

Scores random architectures at initialisation, trains each, and reports Kendall tau of score against
trained fitness (``naswot.csv``, ``naswot.json``, ``naswot.png``).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..naswot import UNITS, score_genome
from ..rng import seed_everything
from . import config
from .config import TaskError, build_task


def correlate(task: Any, n_archs: int, epochs: int, seed: int = 0,
              log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Score ``n_archs`` random genomes at initialisation, train each ``epochs`` epochs, evaluate.
    Returns one record per architecture (genome, seed, scores for both unit choices, fitness)."""
    x = task.naswot_batch()
    if x is None:
        raise ValueError(f"{type(task).__name__} has no naswot_batch()")
    rng = random.Random(seed)
    rows = []
    for a in range(n_archs):
        genome, s = task.space.sample(rng), rng.getrandbits(31)
        scores = {u: score_genome(task, genome, x, s, u) for u in UNITS}
        seed_everything(s)
        member = task.build(genome)
        t0 = time.perf_counter()
        member.train(epochs)
        fitness = float(member.evaluate())
        rows.append({"genome": genome, "seed": s, "score_relu": scores["relu"], "score_all": scores["all"],
                     "fitness": fitness, "train_s": round(time.perf_counter() - t0, 3)})
        log(f"arch {a + 1}/{n_archs}: score {scores['relu']:.2f} (all units {scores['all']:.2f}) -> fitness"
            f" {fitness:.4f}")
    return rows


def kendall(rows: Sequence[dict[str, Any]], key: str) -> tuple[float, float]:
    """Kendall tau (and two-sided p) of ``rows[key]`` against fitness; non-finite scores rank lowest."""
    from scipy.stats import kendalltau

    s = np.array([r[key] for r in rows], dtype=float)
    s[~np.isfinite(s)] = np.nanmin(np.where(np.isfinite(s), s, np.nan)) - 1.0 if np.isfinite(s).any() else 0.0
    res = kendalltau(s, [r["fitness"] for r in rows])
    return float(res.statistic), float(res.pvalue)


def plot_correlation(rows: Sequence[dict[str, Any]], summary: dict[str, Any], path: Path) -> Path:
    """Scatter of the score (ReLU units) against trained fitness, Kendall tau in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3.4))
    finite = [r for r in rows if math.isfinite(r["score_relu"])]
    ax.scatter([r["score_relu"] for r in finite], [r["fitness"] for r in finite], s=14)
    ax.set_xlabel("NASWOT score at initialisation (log|K_H|)")
    ax.set_ylabel(f"fitness after {summary['epochs']} epochs")
    ax.set_title(f"Kendall tau {summary['kendall_tau_score_relu']:.2f} (n={len(rows)})", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pbt_evo.naswot",
                                description="Kendall tau of the NASWOT score against trained fitness on a config's task")
    p.add_argument("config", help="a config file (its task and algorithm.e_total are used)")
    p.add_argument("--archs", type=int, default=40, help="random architectures to score and train")
    p.add_argument("--epochs", type=int, help="training epochs per architecture (default: algorithm.e_total)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", default="runs/naswot_tau", help="folder for naswot.csv and naswot.json")
    args = p.parse_args(argv)
    try:
        cfg = config.load(args.config, args.set)
        task = build_task(cfg)
        torch.set_num_threads(max(1, int(cfg["parallel"]["cpus_per_worker"])))
        rows = correlate(task, args.archs, args.epochs or cfg["algorithm"]["e_total"], args.seed)
    except (config.ConfigError, TaskError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "naswot.csv", "w") as f:
        f.write("score_relu,score_all,fitness,seed,genome\n")
        for r in rows:
            f.write(f"{r['score_relu']},{r['score_all']},{r['fitness']},{r['seed']},\"{r['genome']}\"\n")
    summary = {"config": str(args.config), "archs": len(rows), "epochs": args.epochs or cfg["algorithm"]["e_total"]}
    for key in ("score_relu", "score_all"):
        tau, pval = kendall(rows, key)
        summary[f"kendall_tau_{key}"], summary[f"kendall_p_{key}"] = tau, pval
        print(f"Kendall tau ({key}) vs fitness: {tau:.3f} (p = {pval:.3g}, n = {len(rows)})")
    (out / "naswot.json").write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))
    plot_correlation(rows, summary, out / "naswot.png")
    print(f"written: {out / 'naswot.csv'}, {out / 'naswot.json'}, {out / 'naswot.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
