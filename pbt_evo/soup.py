"""Greedy model soups of a finished run (Wortsman et al., 2022; the PBT-NAS paper's section 5.5):

    python -m pbt_evo.soup runs/<name> [--prefix encoder.]

Candidates are the members of the run's final population (last checkpoint) that share the best
member's architecture, sorted by fitness, best first. The soup starts as the best member; each next
candidate is added to the uniform average only if the soup's fitness, re-evaluated with the task's
``Member.evaluate``, improves. With ``--prefix`` only the state-dict entries under those prefixes are
averaged (a partial soup, e.g. only the RL encoder); everything else stays the best member's.

Averaging rule (:func:`average_states`): floating tensors are averaged elementwise; integer and bool
tensors (BatchNorm's ``num_batches_tracked``) are taken from the first (best) state, since an average
of counters or indices means nothing. BatchNorm running statistics are floats and are averaged.

Writes ``<run>/soup/`` (or ``soup_<prefixes>/``): ``model.pt`` (the soup's model state dict) and
``soup.json`` (ingredients, fitness of the soup and of the best single member, the change).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

State = Mapping[str, Any]  # state-dict key -> tensor (or ndarray)


def _in(key: str, prefixes: Sequence[str] | None) -> bool:
    return prefixes is None or any(key == p.rstrip(".") or key.startswith(p if p.endswith(".") else p + ".")
                                   for p in prefixes)


def average_states(states: Sequence[State], prefixes: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """The uniform average of model state dicts (the first one is the reference).

    Floating entries under ``prefixes`` (all when None) are averaged; integer/bool entries and entries
    outside the prefixes are the first state's. Keys must match.

    >>> a, b = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(3)}, {"w": torch.tensor([3.0, 6.0]), "n": torch.tensor(9)}
    >>> s = average_states([a, b]); s["w"].tolist(), int(s["n"])
    ([2.0, 4.0], 3)
    """
    if not states:
        raise ValueError("average_states needs at least one state")
    ref = states[0]
    for k, s in enumerate(states[1:], 1):
        if set(s) != set(ref):
            diff = sorted(set(s) ^ set(ref))
            raise ValueError(f"state {k} has different keys from state 0 (e.g. {diff[0]!r}): not the same architecture")
    out: dict[str, torch.Tensor] = {}
    for key, value in ref.items():
        t = torch.as_tensor(np.array(value) if isinstance(value, np.ndarray) else value)
        if t.is_floating_point() and _in(key, prefixes):
            # accumulate in float64 so the average of identical members is exactly each member
            acc = torch.zeros(t.shape, dtype=torch.float64)
            for s in states:
                acc += torch.as_tensor(np.array(s[key]) if isinstance(s[key], np.ndarray) else s[key]).to(torch.float64)
            out[key] = (acc / len(states)).to(t.dtype)
        else:
            out[key] = t.clone()
    return out


@dataclass
class SoupResult:
    """A greedy soup: its state, fitness, which candidates it holds and every step's outcome."""

    state: dict[str, torch.Tensor]
    fitness: float
    best_single: float
    ingredients: list[int]                 # candidate indices in the soup (0 = the best member)
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def gain(self) -> float:
        return self.fitness - self.best_single


def greedy_soup(states: Sequence[State], evaluate: Callable[[State], float],
                prefixes: Sequence[str] | None = None) -> SoupResult:
    """Greedy soup over ``states`` sorted best first: add each to the average if ``evaluate`` improves.

    ``evaluate(state) -> fitness`` (higher is better); the first state is re-evaluated as the start.

    >>> s = [{"w": torch.tensor([1.0])}, {"w": torch.tensor([0.0])}, {"w": torch.tensor([3.0])}]
    >>> r = greedy_soup(s, lambda st: -abs(float(st["w"][0]) - 2.0))  # fitness peaks at w = 2
    >>> r.ingredients, float(r.state["w"][0]), r.gain
    ([0, 2], 2.0, 1.0)
    """
    current = average_states(states[:1], prefixes)
    best_single = fitness = float(evaluate(current))
    ingredients = [0]
    history = [{"candidate": 0, "fitness": fitness, "added": True}]
    for i in range(1, len(states)):
        trial = average_states([states[j] for j in ingredients] + [states[i]], prefixes)
        f = float(evaluate(trial))
        added = f > fitness  # strictly better, as in Wortsman et al.'s greedy soup
        history.append({"candidate": i, "fitness": f, "added": added})
        if added:
            ingredients.append(i)
            current, fitness = trial, f
    return SoupResult(current, fitness, best_single, ingredients, history)


# -- run folders --------------------------------------------------------------------------------------
def final_candidates(run_dir: str | Path) -> tuple[Any, list[Any], dict[str, Any]]:
    """The task, the final population's trained members sharing the best one's genome (best first), and
    the run's config. Raises FileNotFoundError / ValueError with a user-facing message."""
    import yaml

    from . import checkpoint
    from .handles import StoredState
    from .run import build_task

    run = Path(run_dir)
    if not (run / "config.yaml").is_file():
        raise FileNotFoundError(f"{run} is not a pbt_evo run folder (no config.yaml)")
    ckpt = checkpoint.latest(run)
    if ckpt is None:
        raise FileNotFoundError(f"{run} has no checkpoint: the run has not finished a generation")
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    data = checkpoint.load(ckpt)
    trained = [ind for ind in data["population"]
               if isinstance(ind.handle, StoredState) and ind.fitness.valid and np.isfinite(ind.score)]
    if not trained:
        raise ValueError(f"{ckpt}: no trained member with a finite fitness")
    best = max(trained, key=lambda ind: ind.score)
    same = sorted((ind for ind in trained if list(ind) == list(best)), key=lambda ind: ind.score, reverse=True)
    return build_task(cfg), same, cfg


def soup_run(run_dir: str | Path, prefixes: Sequence[str] | None = None, seed: int = 0,
             log: Callable[[str], None] = print) -> tuple[SoupResult, Path]:
    """Greedy soup of a run's final population; saves it; returns the result and its folder.

    >>> # result, folder = soup_run("runs/digits"); result.gain
    """
    from .handles import seed_everything

    task, members, cfg = final_candidates(run_dir)
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
    torch.save(result.state, folder / "model.pt")
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
    args = p.parse_args(argv)
    from .run import TaskError

    try:
        result, folder = soup_run(args.run, args.prefix, args.seed)
    except (FileNotFoundError, ValueError, TaskError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"soup of {len(result.ingredients)} of {len(result.history)} candidate(s): fitness {result.fitness:.4g}"
          f" vs best single {result.best_single:.4g} (change {result.gain:+.4g}) -> {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
