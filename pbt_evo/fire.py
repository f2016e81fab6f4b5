"""FIRE-PBT (Dalibard and Jaderberg 2021, "Faster improvement rate population based training") as the
``select``, ``pair``, ``mate`` and ``mutate`` of the PBT loop.

The population's slots form three groups (a child takes its loser's slot, so a slot keeps its group):
P1 (the first ``N - 2 * (N // 4)``), P2 (the next ``N // 4``) and the evaluators (the last ``N // 4``).

- P1 is classic PBT: truncation by fitness, the losers replaced by explored copies of its best.
- An evaluator takes a P2 member's network and trains it with the hyperparameters of P1's best member
  (its *child*): its fitness curve measures how fast that P2 member improves under P1's current
  hyperparameters. An evaluator stops after ``max_eval`` generations, when its child or parent is gone,
  or when it succeeds: when its curve beats its child's (best score difference > 0 and a higher last
  fitness), the child is replaced by a copy of the evaluator's network.
- P2 is ranked by fitness improvement rate: each P2 member's score is the sum over the other evaluated
  P2 members of the *best score difference* of their evaluators' curves (:func:`best_score_difference`:
  the gap between the curves' best values over the stretch where they cover the same fitness, so a
  member is not favoured for being ahead, only for climbing faster); its losers are replaced by explored
  copies of its best. So P2 optimises for later improvement, not greedy fitness, and feeds P1 through
  successful evaluators.
- A free evaluator starts on the P2 member evaluated longest ago (never: since its birth).

Where this differs from the paper (and PBT-Zoo's ``algo/firepbt.py``): curves are compared raw (the paper
smooths them; PBT-Zoo with a GP); success needs a better best-score difference and last fitness, not a
binomial test at p < 0.01 (which a curve of a few generations cannot pass); two sub-populations only; the
group sizes are fixed fractions of N (PBT-Zoo: 8 / 8 / 6 of 22).

``select`` plans every replacement of the generation; ``pair`` returns the planned parents of a loser and
leaves its plan for ``mate`` and ``mutate``, which the loop calls next for that loser (pair, spawn, mate,
mutate: :func:`~pbt_evo.algorithms.exploit`).

>>> round(best_score_difference([0.1, 0.3, 0.5], [0.3, 0.35, 0.4]), 12)   # from 0.3, two steps: 0.5 against 0.35
0.15
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Any

from .history import History
from .individual import Individual
from .operators import n_selected, sel_truncation
from .space import SearchSpace

MAX_EVAL = 3  # generations an evaluator trains at most (PBT-Zoo: max_eval_steps = 3 exploit intervals)


def groups(n: int) -> tuple[int, int, int]:
    """Sizes of P1, P2 and the evaluators for a population of ``n``.

    >>> groups(8), groups(12), groups(4)
    ((4, 2, 2), (6, 3, 3), (2, 1, 1))
    """
    k = max(1, n // 4)
    if n - 2 * k < 2:
        raise ValueError(f"FIRE-PBT needs a population of at least 4 (two P1 members, one P2, one evaluator), got {n}")
    return n - 2 * k, k, k


def best_score_difference(a: Sequence[float], b: Sequence[float]) -> float:
    """FIRE's comparison of fitness curves ``a`` and ``b`` (oldest first): start both where the lower-
    starting one first reaches the other's start, take the same number of steps, and return ``a``'s best
    minus ``b``'s best there; curves that never cover the same fitness compare their ranges (positive
    when ``a`` lies wholly above ``b``); 0 when either is empty.

    >>> round(best_score_difference([0.5, 0.6], [0.1, 0.2]), 12), best_score_difference([], [0.1])
    (0.3, 0.0)
    """
    if not a or not b:
        return 0.0
    if a[0] < b[0]:
        i, j = next((i for i, v in enumerate(a) if v >= b[0]), None), 0
    else:
        i, j = 0, next((j for j, v in enumerate(b) if v >= a[0]), None)
    if i is None or j is None:
        if min(a) > max(b):
            return min(a) - max(b)
        return -(min(b) - max(a)) if max(a) < min(b) else 0.0
    n = min(len(a) - i, len(b) - j)
    return max(a[i:i + n]) - max(b[j:j + n])


class Fire(History):
    """FIRE-PBT's memory (the history, the evaluators' assignments, when each P2 member was last
    evaluated) and operators over ``space``. ``explore(child)`` is the hyperparameter explore of a copy (classic PBT's);
    ``mix(child, donor)``, if given, mixes a second parent into a P1 or P2 copy (``algorithm.mixing``)."""

    def __init__(self, space: SearchSpace, explore: Callable[[Individual], Any],
                 mix: Callable[..., Any] | None = None, tau: float = 0.25, max_eval: int = MAX_EVAL):
        super().__init__()
        self.hyper = space.hyperparameters
        self.explore_fn, self.mix_fn, self.tau, self.max_eval = explore, mix, tau, max_eval
        self.evaluators: list[dict[str, Any]] = []   # {"slot", "member", "parent", "child", "t0"}
        self.evaluated: dict[int, int] = {}         # P2 member id -> the evaluator member of its last evaluation
        self.evaluated_at: dict[int, int] = {}      # P2 member id -> time its last evaluation started
        self.plan: dict[int, tuple[str, tuple[Individual, ...]]] = {}
        self.current: tuple[str, tuple[Individual, ...]] = ("copy", ())

    # -- select: plan the generation's replacements ------------------------------------------------------
    def select(self, population: Sequence[Individual]) -> tuple[list[Individual], list[Individual]]:
        self.record(population)
        n1, n2, _ = groups(len(population))
        p1, p2 = list(population[:n1]), list(population[n1:n1 + n2])
        self.plan = {}
        self.check_evaluators(population, p1, p2)
        best1, worst1 = sel_truncation([m for m in p1 if m.id not in self.plan], self.tau)
        for loser in worst1:
            self.plan[loser.id] = ("explore", self.parents(best1))
        ranked = self.rank_p2(p2)
        k = n_selected(len(ranked), self.tau) if len(ranked) >= 2 else 0
        for loser in ranked[len(ranked) - k:]:
            self.plan[loser.id] = ("explore", self.parents(ranked[:k]))
            self.evaluated.pop(loser.id, None)
        self.assign_evaluators(population, p1, p2)
        return best1, [m for m in population if m.id in self.plan]

    def parents(self, best: Sequence[Individual]) -> tuple[Individual, ...]:
        if self.mix_fn is not None and len(best) >= 2:
            a, b = random.sample(list(best), 2)
            return (a, b) if a.score >= b.score else (b, a)
        return (random.choice(list(best)),)

    def check_evaluators(self, population: Sequence[Individual], p1: list[Individual], p2: list[Individual]) -> None:
        """Each evaluator succeeds (its child is planned to become a copy of it), stops, or goes on."""
        alive1, alive2 = {m.id: m for m in p1}, {m.id for m in p2}
        still = []
        for ev in self.evaluators:
            member = population[ev["slot"]]
            if ev["member"] is None:  # its first generation: the member spawned into the slot
                ev["member"] = self.evaluated[ev["parent"]] = member.id
            curve = [f for _, f in self.curve(ev["member"])]
            child = alive1.get(ev["child"])
            if child is not None and child.id not in self.plan and curve and member.fitness.valid:
                theirs = [f for _, f in self.curve(child.id)]
                if best_score_difference(curve, theirs) > 0 and curve[-1] > theirs[-1]:
                    self.plan[child.id] = ("copy", (member,))
                    continue
            if child is not None and ev["parent"] in alive2 and len(curve) < self.max_eval:
                still.append(ev)
        self.evaluators = still

    def rank_p2(self, p2: list[Individual]) -> list[Individual]:
        """P2's members with an evaluator curve of two points or more, by fitness improvement rate, best first."""
        curves = {m.id: [f for _, f in self.curve(self.evaluated[m.id])] for m in p2 if m.id in self.evaluated}
        curves = {i: c for i, c in curves.items() if len(c) >= 2}
        score = {i: sum(best_score_difference(c, d) for j, d in curves.items() if j != i) for i, c in curves.items()}
        return sorted((m for m in p2 if m.id in score), key=lambda m: score[m.id], reverse=True)

    def assign_evaluators(self, population: Sequence[Individual], p1: list[Individual], p2: list[Individual]) -> None:
        busy = {ev["slot"] for ev in self.evaluators}
        evaluating = {ev["parent"] for ev in self.evaluators}
        free_p2 = [m for m in p2 if m.id not in self.plan and m.id not in evaluating]
        free_p2.sort(key=lambda m: self.evaluated_at.get(m.id, self.born(m.id)))
        children = sorted((m for m in p1 if m.id not in self.plan and math.isfinite(m.score)),
                          key=lambda m: m.score, reverse=True)
        t = max(m.epochs for m in population)
        for slot in range(len(p1) + len(p2), len(population)):
            if slot in busy or not free_p2 or not children:
                continue
            parent = free_p2.pop(0)
            self.plan[population[slot].id] = ("evaluate", (parent, children[0]))
            self.evaluators.append({"slot": slot, "member": None, "parent": parent.id, "child": children[0].id,
                                    "t0": t})
            self.evaluated[parent.id] = -1  # its evaluator's member id is known once spawned (next select)
            self.evaluated_at[parent.id] = t

    def born(self, member: int) -> int:
        return next((r["t"] for r in self.rows if r["id"] == member), 0)

    # -- the loser's plan ------------------------------------------------------------------------------
    def pair(self, best: Sequence[Individual], loser: Individual) -> tuple[Individual, ...]:
        self.current = self.plan[loser.id]
        return self.current[1]

    def mate(self, child: Individual, *donors: Individual) -> tuple[Individual]:
        kind = self.current[0]
        if kind == "explore" and donors:
            return self.mix_fn(child, *donors)
        if kind == "evaluate":
            donor, = donors
            for i in self.hyper:
                child[i] = donor[i]
            child.parents = (child.parents[0], donor.id)
        return (child,)

    def mutate(self, child: Individual) -> tuple[Individual]:
        if self.current[0] == "explore":
            self.explore_fn(child)
        del child.fitness.values
        return (child,)

    # -- state -------------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {**super().state(), "evaluators": [dict(ev) for ev in self.evaluators],
                "evaluated": sorted(self.evaluated.items()), "evaluated_at": sorted(self.evaluated_at.items())}

    def load(self, state: dict[str, Any]) -> None:
        super().load(state)
        self.evaluators = [dict(ev) for ev in state.get("evaluators", [])]
        self.evaluated = {int(k): int(v) for k, v in state.get("evaluated", [])}
        self.evaluated_at = {int(k): int(v) for k, v in state.get("evaluated_at", [])}
