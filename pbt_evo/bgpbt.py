"""BG-PBT (Wan et al. 2022, "Bayesian generational population-based training") as the ``select``, ``pair``
and ``mutate`` of the PBT loop: architectures and hyperparameters searched together, in generations.

Within a (BG-PBT) generation every member keeps its architecture: truncation replaces the worst by
copies of the best, whose hyperparameters a trust-region BO chooses (CASMOPOLITAN's trust region, as
BG-PBT): the GP-UCB argmax of PB2's time-varying GP (:mod:`pbt_evo.gp`) fitted on this generation's
training steps, searched only within a box of side ``length`` (on [0, 1] per hyperparameter) centred on
the base parent's hyperparameters. The region doubles after ``SUCCESS_TOLERANCE`` generations in a row
whose best member's hyperparameters BO chose, and halves after ``fail_tolerance`` in a row whose did not.
Before the GP has two training steps, a child's hyperparameters are drawn at random (as PBT-Zoo does).

A new generation starts when the population's best fitness has not improved for ``patience``
generations or the trust region has shrunk below ``LENGTH_MIN``: the GP's data and the trust region
start over, and, when the space has architecture variables, every member but the best ``tau`` fraction
is replaced by a network of a new architecture and hyperparameters: the GP-UCB argmax (a GP fitted on
every member's last fitness against its genome, architecture genes one-hot) among ``CANDIDATES`` genomes
that differ from the best member's architecture in at most half of its architecture genes (a Hamming
trust region) with random hyperparameters. BG-PBT trains the new generation's networks from scratch and
distils the previous best agent's policy into them; here instead each new network starts from the best
member's weights wherever its architecture agrees (those layers copied), its other layers freshly
initialised, as pbt_evo's mixing and resampling carry weights. Without architecture variables a new
generation only restarts the model (as PBT-Zoo's ``algo/bgpbt.py``).

>>> tr = TrustRegion()
>>> for success in (True, True, True): tr.update(success, fail_tolerance=2)
>>> tr.length
1.6
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from . import gp
from .handles import Reinit, as_recipe
from .individual import Individual
from .operators import n_selected, sel_truncation
from .pb2 import PB2
from .space import SearchSpace

LENGTH_INIT, LENGTH_MIN, LENGTH_MAX = 0.8, 0.5 ** 7, 1.6  # CASMOPOLITAN's continuous trust region
SUCCESS_TOLERANCE = 3
PATIENCE = 5
CANDIDATES = 256


@dataclass
class TrustRegion:
    """The trust region's side and its success and failure counts."""

    length: float = LENGTH_INIT
    successes: int = 0
    failures: int = 0

    def update(self, success: bool, fail_tolerance: int) -> None:
        """Count one generation; double the side after ``SUCCESS_TOLERANCE`` successes in a row (at most
        ``LENGTH_MAX``), halve it after ``fail_tolerance`` failures in a row."""
        self.successes, self.failures = (self.successes + 1, 0) if success else (0, self.failures + 1)
        if self.successes >= SUCCESS_TOLERANCE:
            self.length, self.successes = min(2 * self.length, LENGTH_MAX), 0
        elif self.failures >= fail_tolerance:
            self.length, self.failures = self.length / 2, 0


class BGPBT(PB2):
    """BG-PBT's memory (history rows tagged with their generation and where their hyperparameters came
    from; the trust region; the best fitness of the generation and how long since it improved) and
    operators over ``space``. Its GP is PB2's (:class:`~pbt_evo.pb2.PB2`, continuous hyperparameters and
    numeric grids modelled, other grids resampled), fitted on this generation's steps only (the newest ``WINDOW``)."""

    def __init__(self, space: SearchSpace, tau: float = 0.25, patience: int = PATIENCE):
        super().__init__(space)
        self.tau, self.patience = tau, patience
        self.hyper = space.hyperparameters
        self.architecture = [i for i, v in enumerate(space) if not v.hyper]
        self.generation, self.best, self.stalled = 0, -math.inf, 0
        self.region = TrustRegion()
        self.renew = False  # this exploit starts a new generation of architectures
        self.new: list[np.ndarray] = []  # this exploit's new genomes (as GP inputs): not state

    # -- select --------------------------------------------------------------------------------------
    def select(self, population: Sequence[Individual]) -> tuple[list[Individual], list[Individual]]:  # type: ignore[override]
        self.record(population, generation=self.generation)
        self.pending, self.fitted, self.new = [], None, []
        finite = [m for m in population if math.isfinite(m.score)]
        if not finite:
            return [], []
        top = max(finite, key=lambda m: m.score)
        if any(self.source(m.id) == "bo" for m in population):
            k = n_selected(len(population), self.tau)
            self.region.update(self.source(top.id) == "bo", max(1, math.ceil(max(4, len(self.hyper)) / max(k, 1))))
        self.best, self.stalled = (top.score, 0) if top.score > self.best else (self.best, self.stalled + 1)
        self.renew = False
        if self.stalled >= self.patience or self.region.length < LENGTH_MIN:
            self.generation, self.best, self.stalled, self.region = self.generation + 1, -math.inf, 0, TrustRegion()
            if self.architecture:
                self.renew = True
                ranked = sorted(finite, key=lambda m: m.score, reverse=True)
                keep = ranked[:n_selected(len(population), self.tau)]
                return keep, [m for m in population if all(m is not k for k in keep)]
        return sel_truncation(population, self.tau)

    def source(self, member: int) -> str:
        """Where a member's hyperparameters came from: ``bo``, ``random``, ``new`` (a new generation's
        network) or ``initial``."""
        return next((r.get("source", "initial") for r in self.rows if r["id"] == member), "initial")

    # -- a child -------------------------------------------------------------------------------------
    def pair(self, best: Sequence[Individual], loser: Individual) -> tuple[Individual]:
        """The best member (a new generation's networks start from it) or a random one of the best."""
        return (best[0],) if self.renew else (random.choice(list(best)),)

    def mutate(self, child: Individual) -> tuple[Individual]:
        source = self.new_network(child) if self.renew else self.trust_region_explore(child)
        self.start(child, generation=self.generation, source=source)
        del child.fitness.values
        return (child,)

    def trust_region_explore(self, child: Individual) -> str:
        """Trust-region BO of the child's hyperparameters; random before the GP has data."""
        steps = self.steps([r for r in self.rows if r.get("generation") == self.generation])[-self.window:]
        if len(steps) < 2 or not self.modelled:
            for i in self.hyper:
                child[i] = self.space[i].sample(random)
            return "random"
        base = self.last(child.parents[0])
        centre = np.array([self.space[i].to_unit(child[i]) for i in self.modelled])
        half = self.region.length / 2
        x = self.suggest(steps, base["t"], base["f"], child, (np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)))
        for i, u in zip(self.modelled, x):
            child[i] = self.space[i].from_unit(u)
        for i in self.resampled:
            child[i] = self.space[i].sample(random)
        return "bo"

    def features(self, genome: Sequence[Any]) -> list[float]:
        """A genome as GP inputs: architecture genes one-hot (two options at distance 1), hyperparameters on [0, 1]."""
        out: list[float] = []
        for i in self.architecture:
            out += [0.5 ** 0.5 * (genome[i] == k) for k in range(self.space[i].n_options)]
        return out + [self.space[i].to_unit(genome[i]) for i in self.hyper]

    def new_network(self, child: Individual) -> str:
        """A new generation's architecture and hyperparameters for ``child`` (a spawn of the best member)."""
        lasts = {r["id"]: r for r in self.rows if not r["start"] and r["f"] is not None}
        candidates = [self.candidate(child) for _ in range(CANDIDATES)]
        if len(lasts) >= 2:
            X = np.array([self.features(r["genome"]) for r in lasts.values()])
            y = np.array([r["f"] for r in lasts.values()])
            C = np.array([self.features(c) for c in candidates])
            genome = candidates[gp.best_candidate(X, y, C, np.array(self.new).reshape(-1, X.shape[1]))]
        else:
            genome = candidates[0]
        self.new.append(np.array(self.features(genome)))
        changed = tuple(i for i in self.architecture if genome[i] != child[i])
        for i in range(len(child)):
            child[i] = genome[i]
        for i in changed:
            child.origin[i] = child.id
        if changed:
            child.handle = as_recipe(child.handle).then(Reinit(changed), seed=random.getrandbits(31))
        return "new"

    def candidate(self, best: Sequence[Any]) -> list[Any]:
        """The best member's architecture with up to half its architecture genes redrawn, random hyperparameters."""
        genome = list(best)
        k = random.randint(1, max(1, len(self.architecture) // 2))
        for i in random.sample(self.architecture, min(k, len(self.architecture))):
            genome[i] = self.space[i].sample(random)
        for i in self.hyper:
            genome[i] = self.space[i].sample(random)
        return genome

    # -- state ---------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {**super().state(), "generation": self.generation, "best": self.best, "stalled": self.stalled,
                "region": asdict(self.region)}

    def load(self, state: dict[str, Any]) -> None:
        super().load(state)
        self.generation, self.best = int(state.get("generation", 0)), float(state.get("best", -math.inf))
        self.stalled, self.region = int(state.get("stalled", 0)), TrustRegion(**state.get("region", {}))
