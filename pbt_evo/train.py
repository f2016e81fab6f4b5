"""What runs inside a worker for one member: materialise, train ``epochs``, evaluate, capture.

Maps run :func:`train_member` as a declared call with a :class:`~pbt_evo.parallel.protocol.Context`
(the task that process holds, and a live member to continue, if any). Register it in a toolbox as
``toolbox.register("train", train_member)``.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from .handles import TrainResult, capture
from .individual import Individual
from .objectives import Objectives
from .rng import seed_everything

if TYPE_CHECKING:
    from .parallel.protocol import Context

_SCOPE = "default"


def set_scope(scope: str | None) -> None:
    """Name the map this process trains for (done by the maps before they run calls)."""
    global _SCOPE
    _SCOPE = scope or "default"


def current_scope() -> str:
    """A name shared by all workers of one map (one run), e.g. to find a per-node service such as a
    shared replay buffer: two runs in one Ray session never share one.

    >>> set_scope("run-1"); current_scope()
    'run-1'
    """
    return _SCOPE


def train_seed(individual: Individual) -> int:
    """Training randomness of a member for its next step: a function of its seed and age only, so the
    result does not depend on which worker trains it or in which order."""
    return int(np.random.SeedSequence([individual.seed, individual.epochs]).generate_state(1)[0])


def train_member(context: Context, individual: Individual, epochs: int,
                 objectives: Objectives | None = None) -> TrainResult:
    """Train ``individual`` for ``epochs`` from the state its handle describes (or the live member the
    ``context`` holds for it), then evaluate it; with ``objectives``, also every objective's value
    (``TrainResult.values``, :mod:`pbt_evo.objectives`).

    Returns a :class:`TrainResult` whose ``state`` the map turns into a handle.

    >>> # toolbox.register("train", train_member); the loop submits Call(partial(toolbox.train, epochs=step), ind)
    """
    task = context.task
    t0 = time.perf_counter()
    member = context.member(individual.handle, individual)
    seed = train_seed(individual)
    seed_everything(seed)
    t1 = time.perf_counter()
    metrics: dict[str, Any] = dict(member.train(epochs) or {})
    seed_everything(seed + 1)
    fitness = float(member.evaluate())
    t2 = time.perf_counter()
    values = None if objectives is None else objectives.evaluate(task, list(individual), member, fitness)
    state = capture(member)
    if not math.isfinite(fitness):
        metrics["nonfinite_fitness"] = fitness
    # `seconds` is the task's own training and evaluation; building and (un)loading state is framework time
    metrics["worker_framework_s"] = (t1 - t0) + (time.perf_counter() - t2)
    return TrainResult(fitness=fitness, metrics=metrics, state=state, seconds=t2 - t1, values=values)
