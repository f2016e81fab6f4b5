"""Plots of a run folder: ``python -m pbt_evo.plot runs/<name>`` (re)draws ``runs/<name>/plots/*.png``.

- ``fitness.png``: best and median fitness over epochs with the population's min-max band;
- ``origins.png``: the paper's Appendix A stack plot: the share of the population's layers that
  descend from each initial network, over time (layers re-initialised by a mutation count as "new").
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line] if path.exists() else []


def origin_shares(population_rows: list[dict], layer_variables: list[int], n_initial: int) -> tuple[list[int], np.ndarray]:
    """Epochs and, per generation, the share of layers from each initial network (last column: new).

    >>> rows = [{"gen": 1, "epochs": 2, "origin": [0, 0]}, {"gen": 1, "epochs": 2, "origin": [1, 5]}]
    >>> origin_shares(rows, [0, 1], 2)[1].tolist()
    [[0.5, 0.25, 0.25]]
    """
    gens = sorted({r["gen"] for r in population_rows})
    epochs, shares = [], []
    for gen in gens:
        rows = [r for r in population_rows if r["gen"] == gen]
        counts = Counter(r["origin"][i] for r in rows for i in layer_variables)
        total = sum(counts.values())
        share = [counts.get(k, 0) / total for k in range(n_initial)]
        shares.append(share + [1.0 - sum(share)])
        epochs.append(rows[0]["epochs"])
    return epochs, np.array(shares)


def plot_run(run_dir: str | Path) -> list[Path]:
    """Write the run's plots; returns their paths."""
    run = Path(run_dir)
    log = _jsonl(run / "log.jsonl")
    pop = _jsonl(run / "population.jsonl")
    if not log:
        raise FileNotFoundError(f"{run}/log.jsonl is missing or empty: is {run} a pbt_evo run folder?")
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    out = run / "plots"
    out.mkdir(exist_ok=True)
    paths = []

    fig, ax = plt.subplots(figsize=(6, 4))
    ep = [r["epochs"] for r in log]
    lo = [r["worst"] if r["worst"] is not None else np.nan for r in log]
    hi = [r["best"] if r["best"] is not None else np.nan for r in log]
    ax.fill_between(ep, lo, hi, alpha=0.25, label="population (min-max)")
    ax.plot(ep, hi, marker="o", label="best")
    ax.plot(ep, [r["median"] if r["median"] is not None else np.nan for r in log], linestyle="--", label="median")
    ax.set_xlabel("epochs per member")
    ax.set_ylabel("fitness")
    ax.set_title(f"{cfg['name']}: {cfg['algorithm']['name']}, N={cfg['algorithm']['population']}")
    ax.legend()
    fig.tight_layout()
    paths.append(out / "fitness.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)

    if pop:
        space = json.loads((run / "space.json").read_text())
        layer_vars = [i for i, v in enumerate(space.values()) if v["owns"]] or list(range(len(space)))
        n = cfg["algorithm"]["population"]
        epochs, shares = origin_shares(pop, layer_vars, n)
        fig, ax = plt.subplots(figsize=(6, 4))
        colors = plt.cm.tab20(np.linspace(0, 1, max(n, 2)))
        ax.stackplot(epochs, shares[:, :n].T, labels=[f"net {k}" for k in range(n)], colors=colors)
        if shares[:, n].any():
            ax.stackplot(epochs, shares[:, :n].sum(1), shares[:, n], colors=["none", "lightgray"], labels=["", "new"])
        if max(epochs) > min(epochs):
            ax.set_xlim(min(epochs), max(epochs))
        ax.set_ylim(0, 1)
        ax.set_xlabel("epochs per member")
        ax.set_ylabel("share of layers")
        ax.set_title("Origin of the population's layers (initial network)")
        if n <= 12:
            ax.legend(loc="center left", bbox_to_anchor=(1, 0.5), fontsize=7)
        fig.tight_layout()
        paths.append(out / "origins.png")
        fig.savefig(paths[-1], dpi=120)
        plt.close(fig)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pbt_evo.plot", description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", help="run folders (runs/<name>)")
    args = parser.parse_args(argv)
    for run in args.run_dirs:
        try:
            for p in plot_run(run):
                print(p)
        except (FileNotFoundError, KeyError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
