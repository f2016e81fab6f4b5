"""What the hyperparameter searches of docs/RESULTS.md ("MNIST-1D: hyperparameters") found, per search:
the final best network's learning rate per seed, its schedule, and how often explore moved a learning rate.

    python docs/studies/hp_found.py runs/study_hp > runs/study_hp/compare_best/hp_found.md
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from pbt_evo.cli.schedule import best_member, schedule


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def main(root: str) -> None:
    found: dict[str, list[dict]] = defaultdict(list)
    for run in sorted(Path(root).iterdir()):
        space = run / "space.json"
        if not (run / "best" / "genome.json").is_file() or "adam.lr" not in json.loads(space.read_text()):
            continue
        search = run.name.rsplit("_s", 1)[0]
        pop, lineage = rows(run / "population.jsonl"), rows(run / "lineage.jsonl")
        best = best_member(run, pop)
        steps = schedule(pop, lineage, best, "adam.lr")
        moved = sum("adam.lr" in r.get("changes", {}) for r in lineage)
        found[search].append({"seed": int(run.name.rsplit("_s", 1)[1]), "lr": steps[-1][2],
                              "schedule": [s[2] for s in steps], "moved": moved, "children": len(lineage)})
    print("| search | final best network's learning rate, seeds 0-8 | its schedule changed (runs) | children whose"
          " lr differs from their base parent's |")
    print("|---|---|---|---|")
    for search, runs in found.items():
        runs.sort(key=lambda r: r["seed"])
        lrs = " / ".join(f"{r['lr']:.2g}" for r in runs)
        changed = sum(len(set(r["schedule"])) > 1 for r in runs)
        moved = sum(r["moved"] for r in runs)
        children = sum(r["children"] for r in runs)
        median = statistics.median(r["lr"] for r in runs)
        print(f"| {search} | {lrs} (median {median:.2g}) | {changed} of {len(runs)} | {moved} of {children} |")
    print()
    for search, runs in found.items():
        for r in runs:
            print(f"- {search} s{r['seed']}: best's lr per generation "
                  + " ".join(f"{x:.2g}" for x in r["schedule"]))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/study_hp")
