"""Greedy model soups (Wortsman et al., 2022; the PBT-NAS paper's section 5.5), as pure functions.

The soup starts as the best state; each next candidate is added to the uniform average only if the
soup's fitness improves. With ``prefixes`` only the state-dict entries under them are averaged (a
partial soup, e.g. only the RL encoder); everything else stays the best member's. The soup of a run
folder's final population: ``python -m pbt_evo.soup runs/<name>`` (:mod:`pbt_evo.cli.soup`).

Averaging rule (:func:`average_states`): floating tensors are averaged elementwise; integer and bool
tensors (BatchNorm's ``num_batches_tracked``) are taken from the first (best) state, since an average
of counters or indices means nothing. BatchNorm running statistics are floats and are averaged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
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
