"""The synchronous PBT loop (Algorithm 1), in the style of DEAP's ``eaSimple``.

Every variant of the paper is a toolbox configuration of this one loop:

=================  ==============================================================================
pbt_nas            ``select=sel_truncation``, ``pair=pair_random``, ``mate=cx_mix``
no mixing          ``pair=pair_self`` (a parent mixed with itself; its layers still shrink-perturbed)
shrink-perturb     ``mate=partial(cx_mix, shrink_perturb=(1, 0))`` copies, ``(0, 1)`` re-initialises
SEARL-like         ``select=sel_truncation``, ``mutate=mut_searl`` and no ``mate``
random search      no ``select``: N random networks trained for the whole budget, no exchange
=================  ==============================================================================
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Union

from deap import base, tools

from .individual import Individual, worst_value

EStep = Union[int, Mapping[int, int], Callable[[int], int]]


def step_at(e_step: EStep, epochs_done: int) -> int:
    """Epochs to train in the generation that starts after ``epochs_done`` epochs.

    ``e_step`` is an int, a schedule ``{first epoch: step}`` or a function of ``epochs_done``.

    >>> step_at({0: 20, 150: 10}, 140), step_at({0: 20, 150: 10}, 160)
    (20, 10)
    """
    if callable(e_step):
        step = e_step(epochs_done)
    elif isinstance(e_step, Mapping):
        starts = sorted(int(k) for k in e_step)
        if not starts or starts[0] != 0:
            raise ValueError(f"an e_step schedule must start at epoch 0, got {dict(e_step)}")
        step = e_step[max(s for s in starts if s <= epochs_done)]
    else:
        step = e_step
    if not isinstance(step, int) or isinstance(step, bool) or step < 1:
        raise ValueError(f"e_step must be a positive integer, got {step!r}")
    return step


@dataclass
class Generation:
    """What one generation did, handed to the hook after the population is ready for the next one."""

    generation: int          # generations completed
    epochs: int              # epochs completed by every member
    trained: list[Individual]  # the population as trained and evaluated this generation
    replaced: list[tuple[int, Individual]]  # (index in population, child) made after it
    population: list[Individual]  # the population that trains next
    logbook: tools.Logbook
    halloffame: tools.HallOfFame | None
    next_id: int
    wall_seconds: float      # this generation's wall time, training and exploitation
    train_seconds: float     # sum of in-worker training+evaluation seconds
    failed: int = 0
    done: bool = False


@dataclass
class LoopState:
    """Where a loop is: to resume, pass the last :class:`Generation`'s values back in."""

    generation: int = 0
    epochs: int = 0
    next_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def exploit(population: list[Individual], toolbox: base.Toolbox, next_id: int) -> tuple[list[tuple[int, Individual]], int]:
    """Replace the worst by children of the best (Algorithm 1, lines 8-13), in place.

    Returns the (index, child) pairs and the next free id. Children are not evaluated: they train next.
    """
    if not hasattr(toolbox, "select"):
        return [], next_id
    best, worst = toolbox.select(population)
    if not best:
        return [], next_id
    index = {id(ind): j for j, ind in enumerate(population)}
    replaced = []
    for loser in worst:
        if hasattr(toolbox, "mate"):
            pair = toolbox.pair(best) if hasattr(toolbox, "pair") else random.sample(list(best), 2)
            child, = toolbox.mate(toolbox.clone(pair[0]), toolbox.clone(pair[1]))
        else:
            parent = random.choice(list(best))
            child = toolbox.clone(parent)
            child.parents = (parent.id,)
            child.taken = ()
        if hasattr(toolbox, "mutate"):
            child, = toolbox.mutate(child)
        child.id = next_id
        child.seed = random.getrandbits(31)
        child.origin = [next_id if o is None else o for o in child.origin]
        next_id += 1
        j = index[id(loser)]
        population[j] = child
        replaced.append((j, child))
    return replaced, next_id


def ea_pbt(population: list[Individual], toolbox: base.Toolbox, e_total: int, e_step: EStep,
           stats: tools.Statistics | None = None, halloffame: tools.HallOfFame | None = None,
           logbook: tools.Logbook | None = None, hook: Callable[[Generation], Any] | None = None,
           start: LoopState | None = None, verbose: bool = False) -> tuple[list[Individual], tools.Logbook]:
    """Synchronous PBT-NAS: train all members ``e_step`` epochs, then replace the worst by children of
    the best, until every member has trained ``e_total`` epochs. No mixing after the last generation.

    The toolbox needs ``map`` (a :class:`~pbt_evo.parallel.RayMap` or ``SerialMap``) and ``train``
    (:func:`~pbt_evo.train.train_member`); ``select``, ``pair``, ``mate``, ``mutate`` and ``clone`` decide
    the variant (see the module docstring). Pseudocode::

        while epochs < e_total:
            step = e_step (or the schedule's step at epochs)
            results = toolbox.map(toolbox.train(epochs=step), population)   # in parallel
            record fitness, statistics, hall of fame
            if epochs < e_total:
                best, worst = toolbox.select(population)
                for loser in worst:
                    child = toolbox.mate(*clone(toolbox.pair(best)));  child = toolbox.mutate(child)
                    population[loser] = child
            hook(generation)

    Non-finite fitness (a diverged or failed member) counts as the worst and is never a parent.

    >>> # pop, log = ea_pbt(toolbox.population(), toolbox, e_total=12, e_step=2, halloffame=hof)
    """
    state = start or LoopState()
    next_id = state.next_id if state.next_id is not None else max(ind.id for ind in population) + 1
    if logbook is None:
        logbook = tools.Logbook()
        logbook.header = ["gen", "epochs", "nevals", "failed"] + (stats.fields if stats else [])
    generation, epochs = state.generation, state.epochs
    while epochs < e_total:
        t0 = time.perf_counter()
        step = min(step_at(e_step, epochs), e_total - epochs)
        results = toolbox.map(partial(toolbox.train, epochs=step), population)
        failed = 0
        for ind, res in zip(population, results):
            value = res.fitness
            if res.failed or not math.isfinite(value):
                failed += res.failed
                ind.metrics = {**res.metrics, "fitness_raw": value}
                value = worst_value(type(ind.fitness))
            else:
                ind.metrics = dict(res.metrics)
            if not res.failed:
                ind.handle = res.state
                ind.epochs += step
            ind.metrics["train_seconds"] = res.seconds
            ind.fitness.values = (value,)
        epochs += step
        generation += 1
        if halloffame is not None:
            halloffame.update(population)
        record = stats.compile(population) if stats else {}
        logbook.record(gen=generation, epochs=epochs, nevals=len(population), failed=failed, **record)
        if verbose:
            print(logbook.stream)
        trained = list(population)
        done = epochs >= e_total
        replaced, next_id = ([], next_id) if done else exploit(population, toolbox, next_id)
        if hook is not None:
            hook(Generation(generation, epochs, trained, replaced, population, logbook, halloffame, next_id,
                            time.perf_counter() - t0, sum(r.seconds for r in results), failed, done))
        del results  # holds this generation's states: the next map frees each as its member trains again
    return population, logbook
