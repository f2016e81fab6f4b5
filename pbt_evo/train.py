"""What runs inside a worker for one member: materialise, train ``epochs``, evaluate, capture.

Workers (and the serial map) hold one task, built once; :func:`train_member` uses it through
:func:`current_task`. Register it in a toolbox as ``toolbox.register("train", train_member)``.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from .handles import TrainResult, capture
from .individual import Individual
from .objectives import Objectives
from .rng import seed_everything
from .task import Task

_TASK: Task | None = None
_SCOPE = "default"


def set_task(task: Task | None, scope: str | None = None) -> None:
    """Install the task this process trains (done by the maps), and the map's ``scope``."""
    global _TASK, _SCOPE
    _TASK = task
    _SCOPE = scope or "default"


def current_scope() -> str:
    """A name shared by all workers of one map (one run), e.g. to find a per-node service such as a
    shared replay buffer: two runs in one Ray session never share one.

    >>> set_task(None, scope="run-1"); current_scope()
    'run-1'
    """
    return _SCOPE


def current_task() -> Task:
    """The task this process trains (set by the maps)."""
    if _TASK is None:
        raise RuntimeError("no task in this process: use pbt_evo.SerialMap(task) or pbt_evo.RayMap(task_spec)"
                           " as toolbox.map, or call pbt_evo.train.set_task(task) first")
    return _TASK


def train_seed(individual: Individual) -> int:
    """Training randomness of a member for its next step: a function of its seed and age only, so the
    result does not depend on which worker trains it or in which order."""
    return int(np.random.SeedSequence([individual.seed, individual.epochs]).generate_state(1)[0])


def train_member(individual: Individual, epochs: int, objectives: Objectives | None = None) -> TrainResult:
    """Train ``individual`` for ``epochs`` from the state its handle describes, then evaluate it; with
    ``objectives``, also every objective's value (``TrainResult.values``, :mod:`pbt_evo.objectives`).

    Returns a :class:`TrainResult` whose ``state`` the map turns into a handle.

    >>> # toolbox.register("train", train_member); the loop calls toolbox.train(individual, epochs=step)
    """
    task = current_task()
    t0 = time.perf_counter()
    member = individual.handle.materialise(task, individual)
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
