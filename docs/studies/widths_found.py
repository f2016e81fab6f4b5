"""What width searches found, per search (run name without ``_s<seed>``), as a Markdown table: the channels
of the exported best network per cell, those of the final population, and the share of children that got
a tensor of another width than its source's (from the base parent, or from the donor for a taken layer):
the children in which ``width_policy`` adapt and fresh differ.

    python docs/studies/widths_found.py runs/widths > runs/widths/compare_best/widths.md
"""

from __future__ import annotations

import functools
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from pbt_evo.rng import skip_init
from pbt_evo.task import TaskSpec


def widths_of(arch: dict) -> list[int]:
    return [arch[k] for k in sorted(k for k in arch if re.fullmatch(r"width\d+", k))]


@functools.lru_cache(maxsize=None)
def task_of(target: str, args: str):
    return TaskSpec(target, json.loads(args)).build()


def shapes(task, genome: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    with skip_init():
        return {k: tuple(v.shape) for k, v in task.build_model(list(genome)).state_dict().items()}


def adapted(task, child: list[int], base: list[int], donor: list[int], taken: set[int]) -> bool:
    """Whether any tensor of ``child`` comes from a source of another shape."""
    mine, sources = shapes(task, tuple(child)), (shapes(task, tuple(base)), shapes(task, tuple(donor)))
    return any(sources[task.space.owner(k) in taken][k] != shape for k, shape in mine.items())


def summarise(run: Path) -> dict | None:
    best = json.loads((run / "best" / "genome.json").read_text())
    if not widths_of(best["arch"]):
        return None
    task = task_of(best["task"]["target"], json.dumps(best["task"].get("args", {}), sort_keys=True))
    rows = [json.loads(line) for line in (run / "population.jsonl").read_text().splitlines()]
    last = max(r["gen"] for r in rows)
    genome = {r["id"]: r["genome"] for r in rows}
    fitness = {(r["gen"], r["id"]): r["fitness"] for r in rows}
    children = [json.loads(line) for line in (run / "lineage.jsonl").read_text().splitlines()]
    changed = [adapted(task, c["genome"], genome[c["parents"][0]], genome[c["parents"][1]],
                       {task.space.index(n) for n in c["taken"]}) for c in children]
    # a child made after generation g trains in g + 1: its fitness then, minus its base parent's in g
    gain = [(a, fitness[(c["gen"] + 1, c["child"])] - fitness[(c["gen"], c["parents"][0])])
            for a, c in zip(changed, children) if (c["gen"] + 1, c["child"]) in fitness]
    return {"best": widths_of(best["arch"]), "final": np.mean([widths_of(r["arch"]) for r in rows if r["gen"] == last], 0),
            "changed": sum(changed), "children": len(changed),
            "gain": {k: [g for a, g in gain if a == k] for k in (True, False)}}


def main(folder: str) -> None:
    groups: dict[str, list[dict]] = defaultdict(list)
    for run in sorted(Path(folder).iterdir()):
        if (run / "best" / "genome.json").is_file():
            summary = summarise(run)
            if summary is not None:
                groups[re.sub(r"_s\d+$", "", run.name)].append(summary)
    print("| search | runs | best network's channels per cell (mean) | final population's (mean) |"
          " children with a tensor of another width than its source | their fitness after one step minus"
          " the base parent's (mean) | the other children's |")
    print("|---|---|---|---|---|---|---|")
    for name, runs in groups.items():
        best = " / ".join(f"{w:.1f}" for w in np.mean([r["best"] for r in runs], 0))
        final = " / ".join(f"{w:.1f}" for w in np.mean([r["final"] for r in runs], 0))
        changed, children = sum(r["changed"] for r in runs), sum(r["children"] for r in runs)
        gain = {k: [g for r in runs for g in r["gain"][k]] for k in (True, False)}
        print(f"| {name} | {len(runs)} | {best} | {final} | {changed} of {children} ({changed / children:.0%}) |"
              f" {np.mean(gain[True]):+.4f} (n={len(gain[True])}) | {np.mean(gain[False]):+.4f} (n={len(gain[False])}) |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/widths")
