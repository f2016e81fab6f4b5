"""DEAP-compatible individuals: a categorical genome plus a handle to the trained weights.

Defined in an importable module (not with ``creator.create``) so Ray workers unpickle them.
Cloning (``copy.deepcopy``, DEAP's default ``toolbox.clone``) copies the genome and bookkeeping but
shares the weight handle: no tensor is ever copied by the driver.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from deap import base

from .handles import WeightHandle, as_recipe


class FitnessMax(base.Fitness):
    """Single objective, maximised (accuracy, return, -FID)."""

    weights = (1.0,)


class WeightedFitness(base.Fitness):
    """A fitness whose weights (one per objective: 1.0 maximised, -1.0 minimised) are the instance's,
    so that one importable class serves every objective list a config names and Ray workers unpickle it
    (a class made by ``creator.create`` at run time would not be found in a worker).

    >>> f = WeightedFitness((1.0, -1.0), (0.9, 120))
    >>> f.wvalues, copy.deepcopy(f).weights, f.dominates(WeightedFitness((1.0, -1.0), (0.8, 150)))
    ((0.9, -120.0), (1.0, -1.0), True)
    """

    def __init__(self, weights: Sequence[float], values: Sequence[float] = ()):
        self.weights = tuple(float(w) for w in weights)
        super().__init__(values)

    def __deepcopy__(self, memo: dict) -> "WeightedFitness":
        new = WeightedFitness(self.weights)  # DEAP's own deepcopy rebuilds with the class's weights
        new.wvalues = self.wvalues
        return new


class Individual(list):
    """A genome (option indices; values of continuous variables) that DEAP's tools accept, with PBT bookkeeping.

    Attributes: ``fitness``; ``id`` (stable, unique in a run); ``parents`` (ids); ``origin`` (per
    variable, the id of the initial network the gene descends from); ``handle`` (weights);
    ``seed`` (training randomness); ``epochs`` (epochs its weights have been trained);
    ``taken`` (variables taken from the donor when it was made); ``base_genome`` (its base parent's genome
    when it was spawned: :attr:`changed` is the difference); ``metrics`` (last training metrics).

    Two individuals are equal when they are the same network at the same training age (same id,
    epochs and genome), so ``tools.HallOfFame`` keeps the best *trained state* rather than refusing a
    better-trained copy of an architecture it already holds.

    >>> ind = Individual([0, 2, 1], id=7)
    >>> ind.fitness.values = (0.9,)
    >>> clone = copy.deepcopy(ind)
    >>> clone.fitness.values, clone.id, clone.origin
    ((0.9,), 7, [7, 7, 7])

    ``weights`` makes a multi-objective individual (a :class:`WeightedFitness`); without it the fitness is
    ``fitness_class()``, one maximised objective.
    """

    fitness_class: type[base.Fitness] = FitnessMax
    __hash__ = None  # mutable, like list

    def __init__(self, genome: Iterable[int] = (), *, id: int = -1, parents: Sequence[int] = (),
                 origin: Sequence[int] | None = None, handle: WeightHandle | None = None,
                 seed: int = 0, epochs: int = 0, weights: Sequence[float] | None = None):
        super().__init__(genome)
        self.fitness = self.fitness_class() if weights is None else WeightedFitness(weights)
        self.id = id
        self.parents = tuple(parents)
        self.origin = list(origin) if origin is not None else [id] * len(self)
        self.handle = handle
        self.seed = seed
        self.epochs = epochs
        self.taken: tuple[int, ...] = ()
        self.base_genome: tuple[int, ...] | None = None
        self.metrics: dict[str, Any] = {}

    def __deepcopy__(self, memo: dict) -> "Individual":
        new = copy.copy(self)  # shares handle; containers copied below
        list.__init__(new, self)
        new.fitness = copy.deepcopy(self.fitness, memo)
        new.origin = list(self.origin)
        new.metrics = dict(self.metrics)
        return new

    def spawn(self, id: int) -> "Individual":
        """A child of this (trained) individual as its base parent: a copy of its genome, origins and
        state, with id ``id`` and no fitness, whose recipe operators then extend (Algorithm 2's child
        before mixing). Its seed is set by the loop.

        >>> from pbt_evo.handles import StoredState
        >>> child = Individual([1, 0], id=3, handle=StoredState({})).spawn(8)
        >>> child.id, child.parents, child.origin, type(child.handle).__name__, child.fitness.valid
        (8, (3,), [3, 3], 'MixedState', False)
        """
        child = copy.deepcopy(self)
        child.id, child.parents, child.taken = id, (self.id,), ()
        child.base_genome = tuple(self)
        child.handle = as_recipe(self.handle)
        del child.fitness.values
        return child

    @property
    def changed(self) -> tuple[tuple[int, Any, Any], ...]:
        """``(variable, old option, new option)`` of each gene in which it differs from its base parent (by
        mixing, resampling or explore), for the lineage; empty for a member of the initial population.

        >>> ind = Individual([1, 0], id=3)
        >>> ind.base_genome = (1, 1); ind.changed
        ((1, 1, 0),)
        """
        if self.base_genome is None:
            return ()
        return tuple((i, plain_gene(old), plain_gene(new)) for i, (old, new) in enumerate(zip(self.base_genome, self))
                     if old != new)

    def __reduce__(self):
        return (self.__class__, (list(self),), self.__dict__)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Individual):
            return NotImplemented
        return (self.id, self.epochs, list(self)) == (other.id, other.epochs, list(other))

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __repr__(self) -> str:
        fit = self.fitness.values[0] if self.fitness.valid else None
        return f"Individual(id={self.id}, genome={list(self)}, fitness={fit}, epochs={self.epochs})"

    @property
    def score(self) -> float:
        """Weighted fitness for sorting: non-finite or missing fitness is ``-inf`` (the worst)."""
        if not self.fitness.valid:
            return -math.inf
        w = self.fitness.wvalues[0]
        return w if math.isfinite(w) else -math.inf


def plain_gene(gene: Any) -> int | float:
    """A gene as a plain number: a continuous value stays a float, an option index becomes an int (numpy
    integers included), so records and logs keep each gene's kind.

    >>> plain_gene(np.int64(2)), plain_gene(0.5)
    (2, 0.5)
    """
    return float(gene) if isinstance(gene, (float, np.floating)) else int(gene)


def worst_value(fitness_class: type[base.Fitness]) -> float:
    """The value that makes a fitness the worst possible (``-inf`` when maximising)."""
    return -math.inf if fitness_class.weights[0] > 0 else math.inf


def worst_values(fitness: base.Fitness) -> tuple[float, ...]:
    """The values that make ``fitness`` the worst possible in every objective: dominated by any member
    with finite values, so a failed member ranks last whatever the objectives.

    >>> worst_values(WeightedFitness((1.0, -1.0)))
    (-inf, inf)
    """
    return tuple(-math.inf if w > 0 else math.inf for w in fitness.weights)
