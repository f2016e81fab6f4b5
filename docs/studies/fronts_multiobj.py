"""The final Pareto fronts of a multi-objective sweep, every seed, one colour per algorithm
(docs/img/fronts_multiobj.png), and a per-seed table of their hypervolumes against one reference point:

    python docs/studies/fronts_multiobj.py runs/study_multiobj --reference 0,2000 --out docs/img/fronts_multiobj.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import yaml  # noqa: E402

from pbt_evo.cli.compare import parse_reference  # noqa: E402
from pbt_evo.cli.sweep import algorithm_label  # noqa: E402
from pbt_evo.objectives import Objectives  # noqa: E402
from pbt_evo.pareto import hypervolume, points  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sweep")
    p.add_argument("--reference", required=True)
    p.add_argument("--out", default="docs/img/fronts_multiobj.png")
    args = p.parse_args()
    reference = parse_reference(args.reference)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    colors, table = {}, {}
    for run in sorted(d for d in Path(args.sweep).iterdir() if (d / "front.jsonl").is_file()):
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        alg, seed = algorithm_label(cfg), cfg["seed"]
        front = json.loads((run / "front.jsonl").read_text().splitlines()[-1])
        if front["epochs"] < cfg["algorithm"]["e_total"]:
            continue  # unfinished
        pts = sorted((m["values"][1], m["values"][0]) for m in front["members"])
        color = colors.setdefault(alg, f"C{len(colors)}")
        ax.step([x for x, _ in pts], [y for _, y in pts], where="post", color=color, marker="o", markersize=3,
                linewidth=0.8, alpha=0.7, label=alg if seed == 0 else None)
        weights = Objectives.parse(cfg["algorithm"]["objectives"]).weights
        table.setdefault(seed, {})[alg] = (hypervolume(points([m["values"] for m in front["members"]], weights),
                                                       reference), len(pts))
    names = front["objectives"]
    ax.set_xlabel(names[1])
    ax.set_ylabel(names[0])
    ax.set_title(f"Final Pareto fronts, every seed (reference point {reference})", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    algs = list(colors)
    print("| seed | " + " | ".join(f"{a}: hypervolume (front size)" for a in algs) + " |")
    print("|---|" + "---|" * len(algs))
    for seed in sorted(table):
        cells = [f"{table[seed][a][0]:.1f} ({table[seed][a][1]})" if a in table[seed] else "n/a" for a in algs]
        print(f"| {seed} | " + " | ".join(cells) + " |")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
