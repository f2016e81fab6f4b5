"""``python -m pbt_evo.soup runs/<name> [--prefix encoder.]``: the greedy soup of a finished run.

Candidates are the members of the run's final population (last checkpoint) that share the best
member's architecture, sorted by fitness, best first; each is added to the soup only if the soup's
fitness, re-evaluated with the task's ``Member.evaluate``, improves (:func:`pbt_evo.soup.greedy_soup`).

Writes ``<run>/soup/`` (or ``soup_<prefixes>/``): ``model.safetensors`` (the soup's model state dict) and
``soup.json`` (ingredients, fitness of the soup and of the best single member, the change).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..export import WEIGHTS, save_weights
from ..handles import StoredState
from ..rng import seed_everything
from ..soup import SoupResult, State, greedy_soup
from . import checkpoint
from .config import TaskError, build_task
from .saved import load_saved


def final_candidates(run_dir: str | Path, trust: Sequence[str] = ()) -> tuple[Any, list[Any], dict[str, Any]]:
    """The task, the final population's trained members sharing the best one's genome (best first), and
    the run's config. The task is built only if an installed package registers it or ``trust`` names it
    (:mod:`pbt_evo.trusted`). Raises FileNotFoundError / ValueError with a user-facing message."""
    run = Path(run_dir)
    if not (run / "config.yaml").is_file():
        raise FileNotFoundError(f"{run} is not a pbt_evo run folder (no config.yaml)")
    cfg = load_saved(run, trust, "run it with --trust-task {target}")
    found = checkpoint.load_latest(run)
    if found is None:
        raise FileNotFoundError(f"{run} has no checkpoint: the run has not finished a generation")
    for line in found.notices():
        print(f"warning: {line}", file=sys.stderr)
    ckpt, data = found.folder, found.data
    trained = [ind for ind in data["population"]
               if isinstance(ind.handle, StoredState) and ind.fitness.valid and np.isfinite(ind.score)]
    if not trained:
        raise ValueError(f"{ckpt}: no trained member with a finite fitness")
    best = max(trained, key=lambda ind: ind.score)
    same = sorted((ind for ind in trained if list(ind) == list(best)), key=lambda ind: ind.score, reverse=True)
    return build_task(cfg), same, cfg


def soup_run(run_dir: str | Path, prefixes: Sequence[str] | None = None, seed: int = 0,
             log: Callable[[str], None] = print, trust: Sequence[str] = ()) -> tuple[SoupResult, Path]:
    """Greedy soup of a run's final population; saves it; returns the result and its folder (``trust``:
    task targets to build although not registered, see :func:`final_candidates`).

    >>> # result, folder = soup_run("runs/digits"); result.gain
    """
    task, members, cfg = final_candidates(run_dir, trust)
    genome = list(members[0])
    states = [ind.handle.load()["model"] for ind in members]
    log(f"{len(members)} member(s) of the final population share the best architecture"
        f" {task.space.decode(genome)}; recorded fitness: {', '.join(f'{m.fitness.values[0]:.4g}' for m in members)}")
    base = members[0].handle.load()

    def evaluate(model_state: State) -> float:
        # the same seed for every evaluation, so stochastic evaluations (RL episodes) compare fairly
        seed_everything(seed)
        member = task.build(genome)
        member.model.load_state_dict({k: torch.as_tensor(v) for k, v in model_state.items()})
        if base.get("extras"):
            member.load_extras(base["extras"])
        seed_everything(seed + 1)
        return float(member.evaluate())

    result = greedy_soup(states, evaluate, prefixes)
    for h in result.history[1:]:
        log(f"candidate {h['candidate']} (member {members[h['candidate']].id}): soup fitness {h['fitness']:.4g}"
            f" -> {'added' if h['added'] else 'not added'}")
    name = "soup" if not prefixes else "soup_" + "_".join(re.sub(r"[^A-Za-z0-9]+", "-", p).strip("-") for p in prefixes)
    folder = Path(run_dir) / name
    folder.mkdir(exist_ok=True)
    save_weights(folder / WEIGHTS, result.state)
    info = {"run": str(run_dir), "genome": genome, "arch": task.space.decode(genome), "prefixes": list(prefixes or []),
            "candidates": [{"id": m.id, "recorded_fitness": m.fitness.values[0]} for m in members],
            "ingredients": [members[i].id for i in result.ingredients], "best_single_fitness": result.best_single,
            "soup_fitness": result.fitness, "gain": result.gain, "history": result.history, "task": cfg["task"]}
    (folder / "soup.json").write_text(json.dumps(info, indent=2))
    return result, folder


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pbt_evo.soup", description=__doc__.splitlines()[0])
    p.add_argument("run", help="a finished run folder (runs/<name>)")
    p.add_argument("--prefix", action="append", default=None, metavar="PREFIX",
                   help="average only state-dict entries under this prefix, e.g. encoder. (repeatable)")
    p.add_argument("--seed", type=int, default=0, help="seed of every evaluation (default 0)")
    p.add_argument("--trust-task", action="append", default=[], metavar="TARGET",
                   help="build this task (package.module:Class) although no installed package registers it: only for"
                        " a run folder whose origin you trust (repeatable)")
    args = p.parse_args(argv)
    try:
        result, folder = soup_run(args.run, args.prefix, args.seed, trust=args.trust_task)
    except (FileNotFoundError, ValueError, TaskError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"soup of {len(result.ingredients)} of {len(result.history)} candidate(s): fitness {result.fitness:.4g}"
          f" vs best single {result.best_single:.4g} (change {result.gain:+.4g}) -> {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
