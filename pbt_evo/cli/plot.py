"""Plots of a run folder: ``python -m pbt_evo.plot runs/<name>`` (re)draws ``runs/<name>/plots/*.png``.

- ``fitness.png``: best and median fitness over epochs with the population's min-max band;
- a one-shot run's (bnao, nao) ``fitness.png``: the pool's one-shot scores each round, then the
  stand-alone networks' fitness (no origins: no population is mixed);
- ``origins.png``: the paper's Appendix A stack plot: the share of the population's layers that
  descend from each initial network, over time (layers re-initialised by a mutation count as "new");
- ``front.png`` (several objectives): the Pareto front of trained states after each generation, the
  first objective against the second, coloured by generation, over every trained member (grey);
- ``hyperparameters.png``, ``family_tree.json``, ``family_tree.txt`` (hyperparameter variables): every
  member's schedule and the final best's, its ancestors and what each step changed (:mod:`.schedule`).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .runread import RunReadError, by_generation, read_config, read_json, read_jsonl  # noqa: E402
from ..variants import VARIANTS  # noqa: E402
from .schedule import plot_schedules  # noqa: E402


def origin_shares(population_rows: list[dict], layer_variables: list[int], n_initial: int) -> tuple[list[int], np.ndarray]:
    """Epochs and, per generation, the share of layers from each initial network (last column: new).

    >>> rows = [{"gen": 1, "epochs": 2, "origin": [0, 0]}, {"gen": 1, "epochs": 2, "origin": [1, 5]}]
    >>> origin_shares(rows, [0, 1], 2)[1].tolist()
    [[0.5, 0.25, 0.25]]
    """
    groups = by_generation(population_rows)
    epochs, shares = [], []
    for gen in sorted(groups):
        rows = groups[gen]
        counts = Counter(r["origin"][i] for r in rows for i in layer_variables)
        total = sum(counts.values())
        share = [counts.get(k, 0) / total for k in range(n_initial)]
        shares.append(share + [1.0 - sum(share)])
        epochs.append(rows[0]["epochs"])
    return epochs, np.array(shares)


def plot_run(run_dir: str | Path) -> list[Path]:
    """Write the run's plots; returns their paths."""
    run = Path(run_dir)
    log = read_jsonl(run / "log.jsonl")
    pop = read_jsonl(run / "population.jsonl")
    if not log:
        raise FileNotFoundError(f"{run}/log.jsonl is missing or empty: is {run} a pbt_evo run folder?")
    cfg = read_config(run)
    out = run / "plots"
    out.mkdir(exist_ok=True)
    known = VARIANTS.get(cfg["algorithm"]["name"])
    if known is not None and known.runner == "oneshot":  # no population: no origins, no front
        return [plot_oneshot(log, out / "fitness.png", cfg)]
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
        space = read_json(run / "space.json") or {}
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
        hyper = [name for name, v in space.items() if v.get("hyper")]
        if hyper:
            paths += plot_schedules(run, pop, read_jsonl(run / "lineage.jsonl"), hyper, out)
    fronts = read_jsonl(run / "front.jsonl")
    if fronts:
        paths.append(plot_front(fronts, pop, out / "front.png", cfg["name"]))
    return paths


def plot_oneshot(log: list[dict], path: Path, cfg: dict) -> Path:
    """A one-shot run (bnao, nao): the pool's best and median one-shot score (shared weights, validation
    data) after each round, and the fitness of each stand-alone network, against epochs (member-epochs / N)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    rounds = [r for r in log if r.get("phase") == "supernet"]
    alone = [r for r in log if r.get("phase") == "standalone"]
    if rounds:
        ep = [r["epochs"] for r in rounds]
        ax.plot(ep, [r["oneshot_best"] for r in rounds], marker="o", label="one-shot score, best of the pool")
        ax.plot(ep, [r["oneshot_median"] for r in rounds], linestyle="--", label="one-shot score, median")
    if alone:
        ax.plot([r["epochs"] for r in alone], [np.nan if r["best"] is None else r["best"] for r in alone], marker="s",
                color="black", label="stand-alone networks: best fitness so far")
    ax.set_xlabel("epochs per member (member-epochs / N)")
    ax.set_ylabel("fitness")
    ax.set_title(f"{cfg['name']}: {cfg['algorithm']['name']}, {len(rounds)} rounds, {len(alone)} stand-alone")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_front(fronts: list[dict], population_rows: list[dict], path: Path, title: str = "") -> Path:
    """The front after each generation (``front.jsonl`` lines): objective 1 (y) against objective 2 (x),
    a step line per generation coloured by generation, the last one black; grey: every trained member."""
    names = fronts[-1]["objectives"]
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    seen = [r["values"] for r in population_rows if r.get("values") and None not in r["values"][:2]]
    if seen:
        ax.scatter([v[1] for v in seen], [v[0] for v in seen], s=8, color="0.8", label="trained members", zorder=1)
    cmap = plt.cm.viridis
    last = len(fronts) - 1
    for i, row in enumerate(fronts):
        pts = sorted((m["values"][1], m["values"][0]) for m in row["members"])
        if not pts:
            continue
        color = "black" if i == last else cmap(i / max(last, 1))
        ax.step([x for x, _ in pts], [y for _, y in pts], where="post", color=color, marker="o",
                markersize=4 if i < last else 6, linewidth=0.8 if i < last else 1.8, zorder=2 + (i == last),
                label=f"front after gen {row['gen']} (hypervolume {row['hypervolume']:.4g})" if i == last else None)
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(fronts[0]["gen"], fronts[-1]["gen"]))
    fig.colorbar(sm, ax=ax, label="generation").locator = matplotlib.ticker.MaxNLocator(integer=True)
    ax.set_xlabel(names[1])
    ax.set_ylabel(names[0])
    ax.set_title(f"{title}: Pareto front over time (reference point {fronts[-1]['reference']})", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pbt_evo.plot", description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", help="run folders (runs/<name>)")
    args = parser.parse_args(argv)
    for run in args.run_dirs:
        try:
            for p in plot_run(run):
                print(p)
        except (FileNotFoundError, KeyError, RunReadError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
