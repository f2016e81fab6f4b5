"""``python -m pbt_evo.replay RUN``: train the run's best member's final architecture from scratch with the
hyperparameter schedule it was found with, and report it beside the searched network.

PBT-NAS's claim is that the networks a search finds need no retraining: their weights, inherited and
trained along the way, are the result. Replay measures it: the final best member's architecture (from
``best/genome.json``) is built afresh and trained for as many epochs as the member was, generation by
generation with the hyperparameters its line of base parents trained with then (the schedule
``python -m pbt_evo.plot`` draws; a new value is set as a child gets it: the state is carried over and the
member rebuilt for the new genome, the optimizer's moments kept), under ``--seeds`` seeds (fresh
initialisations and data orders). Ray Tune's ``PopulationBasedTrainingReplay`` replays the hyperparameters
of a PBT trial; here the architecture is the one the search ended with.

Writes ``RUN/replay.json`` (the schedule, each seed's fitness and test score, and the searched network's)
and prints a table.

>>> intervals([[(0, 2, 0.1), (2, 4, 0.2)], [(0, 2, 50), (2, 4, 50)]], ["lr", "batch"])
[(0, 2, {'lr': 0.1, 'batch': 50}), (2, 4, {'lr': 0.2, 'batch': 50})]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..handles import FreshState, StoredState, capture
from ..rng import seed_everything
from ..task import Task
from ..trusted import UntrustedTask
from .config import ConfigError, TaskError, build_task
from .saved import load_saved
from .schedule import best_member, schedule


def intervals(schedules: Sequence[Sequence[tuple[int, int, Any]]], names: Sequence[str]) -> list[tuple[int, int, dict]]:
    """One ``(first epoch, last epoch, {name: value})`` per generation from each hyperparameter's schedule."""
    return [(steps[0][0], steps[0][1], {n: s[2] for n, s in zip(names, steps)}) for steps in zip(*schedules)]


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line] if path.is_file() else []


def replay(task: Task, genome: Sequence[Any], plan: Sequence[tuple[int, int, dict]], seed: int) -> dict[str, Any]:
    """Train ``genome``'s architecture from scratch along ``plan`` under ``seed``; its fitness and test score."""
    names = [task.space[i].name for i in task.space.hyperparameters]
    member, current = None, None
    for start, end, values in plan:
        g = list(genome)
        for i, name in zip(task.space.hyperparameters, names):
            g[i] = task.space[i].gene(values[name])
        if member is None:
            member = FreshState(seed).materialise(task, g)
        elif g != current:  # as a child gets new hyperparameters: state carried over, member rebuilt
            member = StoredState(capture(member)).materialise(task, g)
        current = g
        seed_everything(int(np.random.SeedSequence([seed, start]).generate_state(1)[0]))
        member.train(end - start)
    seed_everything(seed + 1)
    fitness = float(member.evaluate())
    test = member.test_score()
    return {"seed": seed, "fitness": fitness, "test_score": None if test is None else float(test)}


def run_replay(run: Path, seeds: Sequence[int], trust: Sequence[str] = ()) -> dict[str, Any]:
    """Replay ``run``'s best member under each seed; the record ``replay.json`` holds. The task is built
    only if an installed package registers it or ``trust`` names it (:mod:`pbt_evo.trusted`)."""
    info_path = run / "best" / "genome.json"
    if not (run / "config.yaml").is_file() or not info_path.is_file():
        raise ConfigError(f"{run}: no config.yaml or best/genome.json: not a finished pbt_evo run folder")
    cfg = load_saved(run, trust, "run it with --trust-task {target}")
    task = build_task(cfg, str(run / "config.yaml"))
    torch.set_num_threads(max(1, int(cfg["parallel"]["cpus_per_worker"])))  # as the run's workers trained
    info = json.loads(info_path.read_text())
    population, lineage = _jsonl(run / "population.jsonl"), _jsonl(run / "lineage.jsonl")
    member = best_member(run, population)
    names = [task.space[i].name for i in task.space.hyperparameters]
    epochs = int(info["epochs"])
    plan = intervals([schedule(population, lineage, member, n) for n in names], names) if names else [(0, epochs, {})]
    plan = [(a, min(b, epochs), v) for a, b, v in plan if a < epochs]  # up to the exported state's age
    results = [replay(task, info["genome"], plan, s) for s in seeds]
    record = {"member": member, "genome": info["genome"], "arch": info.get("arch"),
              "schedule": [[a, b, v] for a, b, v in plan],
              "searched": {"fitness": info.get("fitness"), "test_score": info.get("test_score"),
                           "epochs": info.get("epochs")},
              "replayed": results}
    (run / "replay.json").write_text(json.dumps(record, indent=1))
    return record


def report(record: dict[str, Any]) -> str:
    """The table: the searched network and each replay (mean over seeds last)."""
    def cell(x: Any) -> str:
        return "n/a" if x is None else f"{x:.4f}"

    lines = [f"member {record['member']}, {len(record['schedule'])} generations of its schedule",
             f"{'':18s} {'fitness':>9s} {'test':>9s}",
             f"{'searched':18s} {cell(record['searched']['fitness']):>9s} {cell(record['searched']['test_score']):>9s}"]
    for r in record["replayed"]:
        lines.append(f"{'replay seed ' + str(r['seed']):18s} {cell(r['fitness']):>9s} {cell(r['test_score']):>9s}")
    if len(record["replayed"]) > 1:
        tests = [r["test_score"] for r in record["replayed"] if r["test_score"] is not None]
        lines.append(f"{'replay mean':18s} {cell(statistics.mean(r['fitness'] for r in record['replayed'])):>9s}"
                     f" {cell(statistics.mean(tests) if tests else None):>9s}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pbt_evo.replay", description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a finished run folder (runs/<name>)")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds of the replays (default 0)")
    parser.add_argument("--trust-task", action="append", default=[], metavar="TARGET",
                        help="build this task (package.module:Class) although no installed package registers it:"
                             " only for a run folder whose origin you trust (repeatable)")
    args = parser.parse_args(argv)
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        print(f"error: --seeds {args.seeds!r}: expected comma-separated integers", file=sys.stderr)
        return 2
    try:
        record = run_replay(Path(args.run), seeds, args.trust_task)
    except (ConfigError, TaskError, UntrustedTask) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report(record))
    print(f"written: {Path(args.run) / 'replay.json'}")
    return 0
