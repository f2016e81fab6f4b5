"""The PBT loop (Algorithm 1 of the paper), in the style of DEAP's ``eaSimple``: it calls the toolbox's
required entries, ``train``, ``select``, ``pair``, ``mate`` and ``mutate`` (and ``survivors`` through the
map's early starts), and never looks for optional ones: "nothing" is an operator that does nothing.
Every variant is a toolbox of this one loop (:mod:`pbt_evo.variants`):

=================  ==============================================================================
pbt_nas            ``select=sel_truncation``, ``pair=pair_random``, ``mate=cx_mix``, ``mutate=mut_none``
no mixing          ``pair=pair_self`` (a parent mixed with itself; its layers still shrink-perturbed)
shrink-perturb     ``mate=partial(cx_mix, shrink_perturb=(1, 0))`` copies, ``(0, 1)`` re-initialises
SEARL-like         ``pair=pair_one``, ``mate=cx_none``, ``mutate=mut_searl``
random search      ``select=sel_none``: N random networks trained for the whole budget, no exchange
random + s-p       ``select=sel_all``, ``pair=pair_itself``, ``mutate=mut_shrink_perturb``: each network
                   shrink-perturbed every generation
=================  ==============================================================================
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

from deap import base, tools

from .individual import Individual
from .parallel.generation import GenerationRunner, Outcome

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


def steps(e_step: EStep, epochs: int, e_total: int) -> int:
    """The epochs of the generation after ``epochs`` epochs, cut at ``e_total`` (0 when none is left).

    >>> steps(4, 0, 6), steps(4, 4, 6), steps(4, 6, 6)
    (4, 2, 0)
    """
    return min(step_at(e_step, epochs), e_total - epochs) if epochs < e_total else 0


@dataclass(frozen=True)
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
    wall_seconds: float      # wall time since the previous generation's hook began (or the loop started)
    outcome: Outcome         # training: failures, in-worker seconds, early starts
    done: bool = False

    @property
    def failed(self) -> int:
        return self.outcome.failed


@dataclass
class LoopState:
    """Where a loop is: to resume, pass the last :class:`Generation`'s values back in."""

    generation: int = 0
    epochs: int = 0
    next_id: int | None = None


def exploit(population: list[Individual], toolbox: base.Toolbox,
            next_id: int) -> tuple[list[tuple[int, Individual]], int]:
    """Replace each of the worst by a child of the best (Algorithm 1, lines 8-13), in place.

    Returns the (index, child) pairs and the next free id. Children are not evaluated: they train next.
    A member whose parent is itself (``pair_itself``: random search with shrink-perturb) is varied but
    stays the same member (id, seed): it is not a child.
    """
    best, worst = toolbox.select(population)
    if not best:
        return [], next_id  # no member has a finite fitness: nothing to breed from
    index = {id(ind): j for j, ind in enumerate(population)}
    replaced = []
    for loser in worst:
        parents = toolbox.pair(best, loser)
        if parents[0] is loser:
            population[index[id(loser)]] = vary(toolbox.clone(loser), parents, toolbox)
            continue
        child = vary(parents[0].spawn(next_id), parents, toolbox)
        child.seed = random.getrandbits(31)  # drawn after variation: the driver's stream as it always was
        next_id += 1
        population[index[id(loser)]] = child
        replaced.append((index[id(loser)], child))
    return replaced, next_id


def vary(child: Individual, parents: Sequence[Individual], toolbox: base.Toolbox) -> Individual:
    """Algorithm 2 on a spawned child: ``mate`` with the other parents (none for one-parent variants),
    then ``mutate``."""
    child, = toolbox.mate(child, *parents[1:])
    child, = toolbox.mutate(child)
    return child


def ea_pbt(population: list[Individual], toolbox: base.Toolbox, e_total: int, e_step: EStep,
           stats: tools.Statistics | None = None, halloffame: tools.HallOfFame | None = None,
           logbook: tools.Logbook | None = None, hook: Callable[[Generation], Any] | None = None,
           start: LoopState | None = None, verbose: bool = False) -> tuple[list[Individual], tools.Logbook]:
    """PBT-NAS: train all members ``e_step`` epochs, then replace the worst by children of the best,
    until every member has trained ``e_total`` epochs. No mixing after the last generation::

        while epochs < e_total:
            step = e_step (or the schedule's step at epochs)
            train and evaluate every member `step` epochs, in parallel (toolbox.map, toolbox.train)
            record statistics and the hall of fame
            if epochs < e_total:
                best, worst = toolbox.select(population)
                for each loser in worst:
                    parents = toolbox.pair(best, loser)
                    population[loser] = toolbox.mutate(toolbox.mate(spawn(parents[0]), *parents[1:]))
            hook(generation)

    ``toolbox.map`` is a :class:`~pbt_evo.parallel.MapBase` (``RayMap``, ``SerialMap``, or any DEAP map
    wrapped in ``BatchMap(map, task)``); a stream starts ``toolbox.survivors`` early, with the same results
    (:mod:`pbt_evo.parallel.generation`; the map's ``max_early`` caps how many, its ``progress`` is called
    as each result arrives). Non-finite fitness (a diverged or failed member) counts as the worst and is
    never a parent.

    >>> # pop, log = ea_pbt(toolbox.population(), toolbox, e_total=12, e_step=2, halloffame=hof)
    """
    state = start or LoopState()
    generation, epochs = state.generation, state.epochs
    next_id = state.next_id if state.next_id is not None else max(ind.id for ind in population) + 1
    if logbook is None:
        logbook = tools.Logbook()
        logbook.header = ["gen", "epochs", "nevals", "failed"] + (stats.fields if stats else [])
    runner = GenerationRunner(toolbox.map, toolbox.train, toolbox.survivors)
    t0 = time.perf_counter()
    try:
        while epochs < e_total:
            step = steps(e_step, epochs, e_total)
            # Algorithm 1, lines 4-6: train every member `step` epochs in parallel, evaluate it
            run = runner.run(population, step, steps(e_step, epochs + step, e_total), generation)
            epochs, generation = epochs + step, generation + 1
            if halloffame is not None:
                halloffame.update(population)
            record = stats.compile(population) if stats else {}
            logbook.record(gen=generation, epochs=epochs, nevals=len(population), failed=run.failed, **record)
            if verbose:
                print(logbook.stream)
            trained, done = list(population), epochs >= e_total
            # lines 8-13: the worst replaced by children of the best; none after the last generation
            replaced, next_id = ([], next_id) if done else exploit(population, toolbox, next_id)
            if hook is not None:
                now = time.perf_counter()
                hook(Generation(generation=generation, epochs=epochs, trained=trained, replaced=replaced,
                                population=population, logbook=logbook, halloffame=halloffame, next_id=next_id,
                                wall_seconds=now - t0, outcome=run, done=done))
                t0 = now
            del trained  # the losers' states can go while the next generation trains
    except BaseException:
        runner.cancel()  # an interrupted loop leaves calls out; the map stays usable
        raise
    return population, logbook
