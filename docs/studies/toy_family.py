"""The PBT family on the toy tasks (docs/RESULTS.md, "The PBT family: toy tasks"); CPU, serial, minutes.

    python docs/studies/toy_family.py [--seeds 0,1,...,9] [--out runs/toy_family.json]

1. PBT's Figure 2 (``tasks.toy.PBTToyTask``): two members starting at h = (1, 0) and (0, 1), 40 gradient
   steps, exploit and explore every 4; ``pbt`` (classic PBT: the worse copies the better's theta and h,
   then explore multiplies each h by 0.8 or 1.2 or resamples it) against ``random_hp`` with the same two
   members (no exchange: the paper's grid search), and ``pb2``.
2. PBT-Zoo's toys (``PlainToyTask``, ``DeceptiveToyTask``; its Sec. 5.2 and configs ``config/toy*.yaml``):
   N = 22, 1,000 steps, exploit every 20, h in [1e-4, 1.1] started uniformly in [0.9, 1.1]; ``pbt``,
   ``pb2``, ``fire_pbt``, ``bg_pbt`` and ``random_hp`` (no exchange). ``pb2_mix`` is ``pb2`` here (no
   categorical hyperparameter).

Every run goes through ``pbt_evo.make_toolbox`` and ``ea_pbt`` on a ``SerialMap``, seeded by the driver's
seed. Reported: the best member of the final population (``final``: Q = 1.2 is the optimum), mean +- std
over seeds, and for the toys of PBT-Zoo the final best member's h.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import pbt_evo  # noqa: E402
from tasks.toy import DeceptiveToyTask, PBTToyTask, PlainToyTask  # noqa: E402

ZOO = ("pbt", "pb2", "fire_pbt", "bg_pbt", "random_hp")
FIGURE2 = ("pbt", "random_hp", "pb2")


def run(task, name: str, seed: int, n: int, e_total: int, e_step: int, initial) -> dict:
    """One run; ``initial(k, rng)`` gives member k's initial hyperparameters."""
    tb = pbt_evo.make_toolbox(name, task.space, n, task=task)
    tb.map = pbt_evo.SerialMap(task, num_threads=1)
    random.seed(seed)
    np.random.seed(seed)
    pop = tb.population()
    rng = random.Random(seed)
    for k, ind in enumerate(pop):
        ind[:] = initial(k, rng)
    t0 = time.perf_counter()
    with tb.map:
        pop, _ = pbt_evo.ea_pbt(pop, tb, e_total=e_total, e_step=e_step)
    best = max(pop, key=lambda ind: ind.score)
    return {"final": best.fitness.values[0], "h": list(best), "seconds": time.perf_counter() - t0}


def table(results: dict, names, title: str) -> str:
    lines = [f"{title}", "", "| variant | final best Q (mean +- std) | min | max | final best h (mean) | s per run |",
             "|---|---|---|---|---|---|"]
    for name in names:
        rows = results[name]
        q = [r["final"] for r in rows]
        h = [statistics.mean(r["h"]) for r in rows]
        lines.append(f"| {name} | {statistics.mean(q):.5f} +- {statistics.stdev(q):.5f} | {min(q):.5f} |"
                     f" {max(q):.5f} | {statistics.mean(h):.3f} | {statistics.mean(r['seconds'] for r in rows):.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default=",".join(map(str, range(10))))
    parser.add_argument("--out", default="runs/toy_family.json")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    torch.set_num_threads(1)
    out: dict = {}
    fig2 = PBTToyTask()
    out["figure2"] = {name: [run(fig2, name, s, 2, 40, 4, lambda k, rng: [[1.0, 0.0], [0.0, 1.0]][k])
                             for s in seeds] for name in FIGURE2}
    print(table(out["figure2"], FIGURE2, "PBT's Figure 2 toy: 2 members, 40 steps, exploit every 4"), flush=True)
    for key, task in (("plain", PlainToyTask()), ("deceptive", DeceptiveToyTask(1000, 20))):
        out[key] = {}
        for name in ZOO:
            out[key][name] = [run(task, name, s, 22, 1000, 20, lambda k, rng: [rng.uniform(0.9, 1.1)]) for s in seeds]
            print(f"{key} {name} done", file=sys.stderr, flush=True)
        print("\n" + table(out[key], ZOO, f"PBT-Zoo's {key} toy: N=22, 1,000 steps, exploit every 20"), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
