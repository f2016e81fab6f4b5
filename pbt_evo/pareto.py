"""Multi-objective PBT-NAS with DEAP's own tools: NSGA-II's order for truncation selection, the Pareto
front of trained states, the hypervolume.

- :func:`nsga2_order`: non-dominated rank first (``tools.sortNondominated``), then crowding distance
  (``deap.tools.emo.assignCrowdingDist``), larger first: NSGA-II's crowded-comparison order on every front.
- :func:`sel_nsga2`: the best and the worst ``round(tau * N)`` in that order; the best are exactly
  ``tools.selNSGA2(population, k)``, the worst exactly those ``tools.selNSGA2(population, N - k)``
  leaves out. A member with a non-finite value has the worst value in every objective (see
  :func:`pbt_evo.parallel.generation.record`): it ranks last and is never a parent.
- :func:`sure_survivors_nsga2`: members that :func:`sel_nsga2` cannot replace whatever the members still
  training score (the loop's early starts stay correct).
- :class:`TrainedFront`: DEAP's ``ParetoFront`` of trained states (non-finite members never enter).
- :func:`hypervolume`: DEAP's (``deap.benchmarks.tools.hypervolume``, moocore) against a stated
  reference point in the objectives' own units.

>>> from pbt_evo.individual import Individual
>>> pop = [Individual([0], id=i, weights=(1.0, -1.0)) for i in range(4)]
>>> for ind, v in zip(pop, [(0.9, 300), (0.8, 100), (0.7, 200), (0.95, 900)]): ind.fitness.values = v
>>> [ind.id for ind in nsga2_order(pop)]     # 0, 1, 3 non-dominated (1 and 3 its ends), then 2
[1, 3, 0, 2]
>>> round(hypervolume(pop, reference=(0.0, 1000)), 6)   # 0.8 x 200 + 0.9 x 600 + 0.95 x 100
795.0
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from deap import tools
from deap.benchmarks.tools import hypervolume as deap_hypervolume
from deap.tools.emo import assignCrowdingDist  # not in deap.tools' __all__

from .individual import Individual, WeightedFitness
from .operators import n_selected


def finite(ind: Individual) -> bool:
    """Whether every objective of ``ind`` has a finite recorded value."""
    return ind.fitness.valid and all(math.isfinite(w) for w in ind.fitness.wvalues)


def nsga2_fronts(individuals: Sequence[Individual]) -> list[list[Individual]]:
    """The non-dominated fronts (``tools.sortNondominated``), each sorted by crowding distance
    (``deap.tools.emo.assignCrowdingDist``, stored on each ``fitness.crowding_dist``), larger first."""
    fronts = tools.sortNondominated(list(individuals), len(individuals))
    for front in fronts:
        assignCrowdingDist(front)
    # sorted() is stable: ties keep sortNondominated's order, as in tools.selNSGA2
    return [sorted(front, key=lambda ind: ind.fitness.crowding_dist, reverse=True) for front in fronts]


def nsga2_order(individuals: Sequence[Individual]) -> list[Individual]:
    """Best first by NSGA-II's crowded comparison: lower non-dominated rank, then larger crowding distance."""
    return [ind for front in nsga2_fronts(individuals) for ind in front]


def sel_nsga2(individuals: Sequence[Individual], tau: float = 0.25) -> tuple[list[Individual], list[Individual]]:
    """Truncation selection by NSGA-II's order: the best ``round(tau * N)`` (best first; members with a
    non-finite value are never among them) and the worst ``round(tau * N)`` (worst last).

    >>> pop = [Individual([0], id=i, weights=(1.0, -1.0)) for i in range(4)]
    >>> for ind, v in zip(pop, [(0.9, 300), (0.8, 100), (0.7, 200), (float("-inf"), float("inf"))]):
    ...     ind.fitness.values = v
    >>> best, worst = sel_nsga2(pop, tau=0.25)
    >>> [b.id for b in best], [w.id for w in worst]
    ([0], [3])
    """
    k = n_selected(len(individuals), tau)
    ranked = nsga2_order(individuals)
    return [ind for ind in ranked[:k] if finite(ind)], ranked[len(ranked) - k:] if k else []


def sure_survivors_nsga2(finished: Sequence[Individual], population: int, tau: float = 0.25) -> list[Individual]:
    """Which of the ``finished`` members :func:`sel_nsga2` cannot put among the worst, whatever the members
    still training score: those that dominate at least ``round(tau * N)`` finished members.

    Why that suffices: a member dominated by ``x`` is in a later front than ``x``, so at least ``k``
    members rank after ``x``'s whole front; the worst ``k`` then all come from later fronts (NSGA-II
    orders by front first), and ``x``'s crowding distance does not matter. The rule is sufficient, not
    necessary: some members that will survive start only when the generation ends.

    >>> pop = [Individual([0], id=i, weights=(1.0, -1.0)) for i in range(3)]
    >>> for ind, v in zip(pop, [(0.9, 100), (0.8, 200), (0.7, 300)]): ind.fitness.values = v
    >>> [ind.id for ind in sure_survivors_nsga2(pop, population=8)]   # N=8: 2 replaced; 0 dominates 1 and 2
    [0]
    """
    k = n_selected(population, tau)
    return [x for x in finished if sum(x.fitness.dominates(o.fitness) for o in finished) >= k]


class TrainedFront(tools.ParetoFront):
    """DEAP's ``ParetoFront`` hall of fame of trained states: one trained state for each non-dominated
    point seen, each a copy sharing the member's weight handle (exportable with
    :func:`pbt_evo.export_module`). A later state with the same values as one it holds is a twin (a
    member whose accuracy did not change, another network of equal size and accuracy): the first found
    stays, so the front lists each trade-off once. Members with a non-finite value (failed, or not yet
    trained) never enter.

    >>> front = TrainedFront()
    >>> pop = [Individual([0], id=i, weights=(1.0, -1.0)) for i in range(3)]
    >>> for ind, v in zip(pop, [(0.9, 300), (0.8, 100), (0.7, 200)]): ind.fitness.values = v
    >>> front.update(pop); [ind.id for ind in front]
    [0, 1]
    """

    def __init__(self) -> None:
        super().__init__(similar=lambda a, b: True)  # equal values are enough to be a twin

    def update(self, population: Iterable[Individual]) -> None:
        super().update([ind for ind in population if finite(ind)])


def hypervolume(front: Sequence[Individual], reference: Sequence[float]) -> float:
    """The hypervolume that ``front`` dominates up to ``reference`` (a point in the objectives' own units,
    e.g. ``(0.0, 2000)``: accuracy 0, 2,000 parameters), by DEAP's ``hypervolume``; members with a
    non-finite value, or not better than the reference in every objective, add nothing.

    >>> a = Individual([0], weights=(1.0, -1.0)); a.fitness.values = (0.5, 100)
    >>> hypervolume([a], (0.0, 300)), hypervolume([a], (0.6, 300)), hypervolume([], (0.0, 300))
    (100.0, 0.0, 0.0)
    """
    weights = front[0].fitness.weights if front else ()
    ref = [-w * r for w, r in zip(weights, reference)]  # DEAP's hypervolume minimises -wvalues
    inside = [ind for ind in front if finite(ind) and all(-w < r for w, r in zip(ind.fitness.wvalues, ref))]
    return float(deap_hypervolume(inside, ref=ref)) if inside else 0.0


def points(values: Iterable[Sequence[float]], weights: Sequence[float]) -> list[Individual]:
    """Individuals carrying only objective values (e.g. read back from a run's ``front.jsonl``), for
    :func:`hypervolume` and DEAP's tools.

    >>> round(hypervolume(points([(0.5, 100), (0.4, 50)], (1.0, -1.0)), (0.0, 300)), 6)
    120.0
    """
    out = []
    for v in values:
        ind = Individual([])
        ind.fitness = WeightedFitness(weights, tuple(v))
        out.append(ind)
    return out
