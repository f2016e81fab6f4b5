"""PB2's explore (Parker-Holder et al. 2020, "Provably efficient online hyperparameter optimization with
population-based bandits") and PB2-Mix's (Parker-Holder et al. 2021, "Tuning mixed input hyperparameters
on the fly for efficient population based AutoRL"), as the ``select`` and ``mutate`` of the PBT loop:
``select`` records the trained population in the history (:class:`~pbt_evo.history.History`) and then
selects as the variant's own selection does (truncation); ``mutate`` chooses a child's hyperparameters.

PB2 (Algorithm 1 of its paper): the child of a base parent trained ``t`` epochs to fitness ``f`` gets the
hyperparameters ``x`` that maximise GP-UCB of a time-varying GP fitted on every earlier training step's
``(t, f, x) -> improvement per epoch`` (the last ``window`` steps, as Ray Tune keeps the last 1,000 rows;
:mod:`pbt_evo.gp`), the children made before it in this generation counting as pending points. Modelled:
continuous hyperparameters and numeric grids (a grid gene's option index on [0, 1], the suggestion rounded
to the nearest option); other grids are resampled uniformly (PB2-Rand, as PBT-Zoo calls it).

PB2-Mix: each grid (categorical) hyperparameter is first drawn by its own EXP3 bandit (:mod:`pbt_evo.exp3`)
whose rounds are the generations and whose rewards are the training steps' improvements scaled to [0, 1];
the GP, whose inputs include the categorical genes one-hot, then chooses the continuous ones with the
categorical part fixed at the bandit's draw (conditioned on it). PB2-Mix's paper uses a CoCaBO-style
mixture of an overlap kernel and the continuous one; a one-hot RBF is an exponentiated overlap kernel.

Until the history holds two training steps (after the first generation only the initial population's
first step exists, without a starting fitness) a child is explored as classic PBT does
(:func:`~pbt_evo.operators.mut_explore`); Ray Tune's PB2 keeps the base parent's values then.

>>> from pbt_evo.space import SearchSpace, Variable
>>> model = PB2(SearchSpace([Variable("lr", bounds=(1e-4, 1e-1), log=True, hyper=True)]))
>>> model.modelled, model.categorical
([0], [])
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import gp
from .exp3 import replay, scaled
from .history import History, Step
from .individual import Individual
from .operators import mut_explore
from .space import SearchSpace

WINDOW = 200  # training steps the GP is fitted on (the newest); Ray Tune keeps 1,000 rows


class PB2(History):
    """The history and explore of PB2 (``mix=False``) or PB2-Mix (``mix=True``) over ``space``'s
    hyperparameters; ``resample_probability`` and ``explore_probability`` are classic PBT's, for the first
    generation's children."""

    def __init__(self, space: SearchSpace, mix: bool = False, window: int = WINDOW,
                 resample_probability: float = 0.25, explore_probability: float = 1.0):
        super().__init__()
        self.space, self.mix, self.window = space, mix, window
        self.resample_probability, self.explore_probability = resample_probability, explore_probability
        hyper = space.hyperparameters
        self.categorical = [i for i in hyper if not space[i].continuous] if mix else []
        self.modelled = [i for i in hyper if space[i].continuous or (not mix and space[i].numeric)]
        self.resampled = [i for i in hyper if i not in self.modelled and i not in self.categorical]
        self.pending: list[np.ndarray] = []  # this generation's suggestions (unit points): not state
        self.fitted: tuple[Any, ...] | None = None  # this generation's GP and scales: not state (refitted alike)

    # -- operators ----------------------------------------------------------------------------------
    def select(self, population: Sequence[Individual], select: Callable[..., Any]) -> Any:
        """Record the trained population, then ``select(population)``."""
        self.record(population)
        self.pending, self.fitted = [], None
        return select(population)

    def explore(self, child: Individual) -> tuple[Individual]:
        """Choose the spawned ``child``'s hyperparameters (see the module docstring)."""
        steps = self.steps()[-self.window:]
        if len(steps) < 2:
            mut_explore(child, self.space, self.resample_probability, self.explore_probability)
        else:
            base = self.last(child.parents[0])
            for i in self.categorical:
                child[i] = self.bandit_draw(i, steps)
            if self.modelled:
                x = self.suggest(steps, base["t"], base["f"], child)
                for i, u in zip(self.modelled, x):
                    child[i] = self.space[i].from_unit(u)
            for i in self.resampled:
                child[i] = self.space[i].sample(random)
        self.start(child)
        del child.fitness.values
        return (child,)

    # -- the models -----------------------------------------------------------------------------------
    def bandit_draw(self, i: int, steps: Sequence[Step]) -> int:
        """Variable ``i``'s option drawn by EXP3 after one round per start time of ``steps``."""
        rewards = scaled([s.y for s in steps])
        rounds: dict[int, list[tuple[int, float]]] = {}
        for s, r in zip(steps, rewards):
            rounds.setdefault(s.t, []).append((s.genome[i], r))
        return replay(self.space[i].n_options, [rounds[t] for t in sorted(rounds)]).draw(random)

    def inputs(self, genome: Sequence[Any]) -> list[float]:
        """The GP's inputs of a genome besides time and fitness: categorical genes one-hot (scaled so that
        two different options are at distance 1), then the modelled genes on [0, 1]."""
        out: list[float] = []
        for i in self.categorical:
            out += [0.5 ** 0.5 * (genome[i] == k) for k in range(self.space[i].n_options)]
        return out + [self.space[i].to_unit(genome[i]) for i in self.modelled]

    def model(self, steps: Sequence[Step]) -> tuple[Any, Callable[[float], float], Callable[[float], float]]:
        """The GP of ``steps`` with the scales of time and fitness, fitted once per generation (the data
        are the same for every child of a generation): times and fitness are scaled over the steps' and
        the population's latest values (every base parent's)."""
        if self.fitted is None:
            trained = [r for r in self.rows if not r["start"] and r["f"] is not None]
            latest = max(r["t"] for r in trained)
            now = [r for r in trained if r["t"] == latest]
            scale_t = unit_scale([s.t for s in steps] + [r["t"] for r in now])
            scale_f = unit_scale([s.f for s in steps] + [r["f"] for r in now])
            X = np.array([[scale_t(s.t), scale_f(s.f)] + self.inputs(s.genome) for s in steps])
            self.fitted = (gp.fit(X, gp.standardise(np.array([s.y for s in steps]))), scale_t, scale_f)
        return self.fitted

    def suggest(self, steps: Sequence[Step], t: int, f: float, child: Individual,
                box: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """The modelled genes' unit values for a child starting at time ``t`` with fitness ``f`` (within
        ``box``, default all of [0, 1])."""
        fitted, scale_t, scale_f = self.model(steps)
        d = len(self.modelled)
        n_fixed = fitted.X_train_.shape[1] - d
        fixed = np.array([scale_t(t), scale_f(f)] + self.inputs(child)[:n_fixed - 2])
        pending = np.array(self.pending).reshape(-1, d)
        x = gp.suggest(fitted, fixed, pending, np.random.default_rng(random.getrandbits(32)), box)
        self.pending.append(x)
        return x


def unit_scale(values: Sequence[float]) -> Callable[[float], float]:
    """``v -> (v - min) / (max - min)`` over ``values`` (0 when they are all equal).

    >>> s = unit_scale([2, 4, 6]); s(4), unit_scale([1, 1])(1)
    (0.5, 0.0)
    """
    low, high = min(values), max(values)
    return lambda v: 0.0 if high == low else (v - low) / (high - low)
