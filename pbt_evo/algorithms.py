"""The PBT loop (Algorithm 1), in the style of DEAP's ``eaSimple``: generations in lockstep, except that
members sure to survive may start their next generation early (same results).

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
from collections import deque
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Union

from deap import base, tools

from .handles import TrainResult, kept_rng
from .individual import Individual, worst_value
from .parallel import _Submitted, stored_locally

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
    wall_seconds: float      # wall time since the previous generation's hook began (or the loop started)
    train_seconds: float     # sum of in-worker training+evaluation seconds
    failed: int = 0
    done: bool = False
    started_early: int = 0   # members of the next generation already training when this one ended
    busy_seconds: float = 0.0  # in-worker training+evaluation of all results that arrived in this generation's
    #                            wall time, each counted in full (with early starts some are the next generation's)


@dataclass
class LoopState:
    """Where a loop is: to resume, pass the last :class:`Generation`'s values back in."""

    generation: int = 0
    epochs: int = 0
    next_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def exploit(population: list[Individual], toolbox: base.Toolbox, next_id: int,
            lost: Collection[int] = ()) -> tuple[list[tuple[int, Individual]], int]:
    """Replace the worst by children of the best (Algorithm 1, lines 8-13), in place; the members at
    indices ``lost`` (their state cannot be read any more) are replaced too and are never parents.

    Returns the (index, child) pairs and the next free id. Children are not evaluated: they train next.
    """
    if not hasattr(toolbox, "select"):
        return [], next_id
    best, worst = toolbox.select(population)
    if lost:
        gone, losing = {id(population[j]) for j in lost}, {id(ind) for ind in worst}
        best = [ind for ind in best if id(ind) not in gone]
        worst = list(worst) + [population[j] for j in sorted(lost) if id(population[j]) not in losing]
        if len(lost) == len(population):
            from .parallel import LostStateError

            raise LostStateError(f"the states of all {len(population)} members were lost with their workers:"
                                 " no parent is left to replace them (resume from the last checkpoint)")
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


class _Batches(_Submitted):
    """``submit``/``wait`` over a plain DEAP map (``map(func, iterable)``: the builtin, SCOOP's
    ``futures.map``, a pool's map): what was submitted runs as one map call at the first ``wait``."""

    def __init__(self, map_: Callable[..., Any]):
        super().__init__()
        self.map = map_
        self._ready: deque = deque()

    def wait(self) -> tuple[int, Any]:
        if not self._ready:
            batch = list(self._queue)
            self._queue.clear()
            func = batch[0][1]
            assert all(f is func for _, f, _ in batch), "one map call runs one function"
            with kept_rng():  # in case the map trains in this process (the builtin map)
                results = list(self.map(func, [item for _, _, item in batch]))
            self._ready.extend(zip([t for t, _, _ in batch], results))
        ticket, res = self._ready.popleft()
        return ticket, stored_locally(res)  # the builtin map returns states in this process


def _positions(population: list[Individual]) -> dict[int, int]:
    """Index of each member by identity; the same object twice would train twice from one state."""
    index: dict[int, int] = {}
    for j, ind in enumerate(population):
        if id(ind) in index:
            raise ValueError(f"the population holds one Individual object at positions {index[id(ind)]} and {j}:"
                             " put a copy (toolbox.clone) in one of them")
        index[id(ind)] = j
    return index


def _snapshot(ind: Individual) -> tuple:
    """What a member's next generation was started from: its state, age, seed and genome."""
    return ind.handle, ind.epochs, ind.seed, list(ind)


def _still_valid(population: list[Individual], ahead: dict[int, tuple], arrived: dict[int, tuple],
                 stream: Any) -> tuple[dict[int, tuple], dict[int, tuple]]:
    """Early starts whose index still holds the same, unchanged member (a hook, or a selection that
    replaces more than ``survivors`` assumed, may have changed it): the others are dropped, and those
    members train from their current state like any other."""
    def valid(k: int, ind: Individual, snap: tuple) -> bool:
        now = _snapshot(population[k])
        return population[k] is ind and now[0] is snap[0] and now[1:] == snap[1:]

    stale = [t for t, (k, ind, snap) in ahead.items() if not valid(k, ind, snap)]
    if stale and hasattr(stream, "discard"):
        stream.discard(stale)
    # an early result whose state died with its worker is dropped too: the member trains again from its state
    return ({t: a for t, a in ahead.items() if t not in stale},
            {k: a for k, a in arrived.items() if valid(k, a[1], a[2]) and not _is_lost(stream, a[0].state)})


def _is_lost(stream: Any, handle: Any) -> bool:
    """Whether the map says ``handle``'s state died with its worker (``RayMap.lost``; other maps lose none)."""
    lost = getattr(stream, "lost", None)
    return lost is not None and lost(handle)


def _record(ind: Individual, res: TrainResult, step: int) -> int:
    """Give ``ind`` its training result (fitness, metrics, new state, age); returns 1 if it failed.
    Non-finite fitness (a diverged or failed member) is recorded as the worst possible."""
    value = res.fitness
    if res.failed or not math.isfinite(value):
        ind.metrics = {**res.metrics, "fitness_raw": value}
        value = worst_value(type(ind.fitness))
    else:
        ind.metrics = dict(res.metrics)
    if not res.failed:
        ind.handle = res.state
        ind.epochs += step
    ind.metrics["train_seconds"] = res.seconds
    ind.fitness.values = (value,)
    return int(res.failed)


def ea_pbt(population: list[Individual], toolbox: base.Toolbox, e_total: int, e_step: EStep,
           stats: tools.Statistics | None = None, halloffame: tools.HallOfFame | None = None,
           logbook: tools.Logbook | None = None, hook: Callable[[Generation], Any] | None = None,
           start: LoopState | None = None, verbose: bool = False,
           max_early: int | None = None) -> tuple[list[Individual], tools.Logbook]:
    """PBT-NAS: train all members ``e_step`` epochs, then replace the worst by children of the best,
    until every member has trained ``e_total`` epochs. No mixing after the last generation.

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

    No barrier for sure survivors: when the map is a stream (``submit``/``wait``: ``RayMap``,
    ``SerialMap``) and the toolbox has ``survivors`` (:func:`~pbt_evo.operators.sure_survivors` for
    truncation), a member that the selection cannot replace whatever the members still training score
    starts its next generation at once, on a worker that would otherwise wait for the slowest member.
    Results are those of the synchronous loop when members train independently (training depends only
    on a member's state, seed and age; not so with a shared replay buffer, whose contents depend on
    timing in either loop); its result is used, and the hook and checkpoints see it, only when its
    generation begins. If by then its place holds another member, or the member changed (a hook, or a
    ``select`` that replaces more than ``survivors`` assumed), the early result is dropped and the member
    trains as usual. A stream is ``submit(func, item, cost=None, order=0) -> ticket`` and
    ``wait(among=None) -> (ticket, result)``, optionally ``retain(handles)``, ``discard(tickets)`` and
    ``flush()`` (called once a generation's results are recorded).
    Any other map (DEAP's ``map`` contract) runs one call per generation.

    Memory: a member that starts early has two states until its generation begins (the one its
    generation reads, the one it trained ahead), up to two per member when workers run far ahead.
    ``max_early`` caps the early starts per generation (``None``: every sure survivor; ``0``: none, the
    synchronous loop): the loop then holds at most ``population + max_early`` states, plus the hall of
    fame's and the parents' of children not yet trained (briefly more while a hook trains members).

    Lost states (``RayMap(hold_states=True)``, whose workers hold the states they trained): a member
    whose state died with its worker counts as failed, stays out of the hall of fame and is replaced,
    with the losers, by a child of the best (the hall of fame is put in the object store as it changes,
    so it outlives its workers). If no parent is left, :class:`~pbt_evo.parallel.LostStateError`.

    >>> # pop, log = ea_pbt(toolbox.population(), toolbox, e_total=12, e_step=2, halloffame=hof)
    """
    state = start or LoopState()
    next_id = state.next_id if state.next_id is not None else max(ind.id for ind in population) + 1
    if logbook is None:
        logbook = tools.Logbook()
        logbook.header = ["gen", "epochs", "nevals", "failed"] + (stats.fields if stats else [])
    stream = toolbox.map if hasattr(toolbox.map, "submit") and hasattr(toolbox.map, "wait") else _Batches(toolbox.map)
    if max_early is not None and (not isinstance(max_early, int) or isinstance(max_early, bool) or max_early < 0):
        raise ValueError(f"max_early must be an int >= 0 (early starts per generation) or None (no cap), got"
                         f" {max_early!r}")
    early = hasattr(toolbox, "survivors") and not isinstance(stream, _Batches) and max_early != 0
    generation, epochs = state.generation, state.epochs
    progress = getattr(stream, "progress", None)
    ahead: dict[int, tuple] = {}   # ticket -> (index, member, its snapshot): next generation's early starts
    arrived: dict[int, tuple] = {}  # index -> (result, member, snapshot): an early start, used when its
    #                                 generation begins if that index still holds the member, unchanged
    t0 = time.perf_counter()
    try:
        while epochs < e_total:
            step = min(step_at(e_step, epochs), e_total - epochs)
            after = epochs + step
            train_next = (partial(toolbox.train, epochs=min(step_at(e_step, after), e_total - after))
                          if early and after < e_total else None)
            index = _positions(population)
            ahead, arrived = _still_valid(population, ahead, arrived, stream)
            if hasattr(stream, "retain"):  # live members of superseded states can go
                stream.retain([ind.handle for ind in population] + [a[0].state for a in arrived.values()])
            train = partial(toolbox.train, epochs=step)
            tickets = {t: a[0] for t, a in ahead.items()}  # ticket -> index, this generation's calls still out
            out = set(tickets.values()) | set(arrived)
            tickets.update({stream.submit(train, ind, order=generation): j for j, ind in enumerate(population)
                            if j not in out})
            results: list[Any] = [None] * len(population)
            started: set[int] = set()      # indices whose next generation has started
            ahead, failed, busy = {}, 0, 0.0

            def take(j: int, res: Any) -> None:
                nonlocal failed
                results[j] = res
                failed += _record(population[j], res, step)
                if progress:
                    progress(j, res)

            for j, (res, _, _) in arrived.items():
                take(j, res)
            arrived = {}
            while tickets:
                ticket, res = stream.wait()
                busy += res.seconds
                if ticket in ahead:
                    k, ind, snap = ahead.pop(ticket)
                    arrived[k] = (res, ind, snap)
                    continue
                take(tickets.pop(ticket), res)
                if train_next is None:
                    continue
                # members truncation cannot replace whatever the rest score train on now: their next
                # generation depends only on their own state and seed, so the results are the synchronous loop's
                finished = [ind for ind, r in zip(population, results) if r is not None]
                for ind in toolbox.survivors(finished, len(population)):
                    k = index[id(ind)]
                    if max_early is not None and len(started) >= max_early:
                        break
                    if k not in started:
                        started.add(k)
                        ahead[stream.submit(train_next, ind, order=generation + 1)] = (k, ind, _snapshot(ind))
            if hasattr(stream, "flush"):  # the generation's last results superseded states: free them now
                stream.flush()
            # a member whose state died with its worker (RayMap(hold_states=True)) cannot train on or be a
            # parent: it counts as failed, stays out of the hall of fame and is replaced like a loser
            lost = [j for j, ind in enumerate(population) if _is_lost(stream, ind.handle)]
            for j in lost:
                population[j].fitness.values = (worst_value(type(population[j].fitness)),)
                population[j].metrics["lost"] = 1.0
            failed += sum(1 for j in lost if not results[j].failed)  # a failed one is counted already
            epochs += step
            generation += 1
            if halloffame is not None:
                for i in reversed(range(len(halloffame))):  # an entry whose state turned out lost
                    if _is_lost(stream, halloffame[i].handle):
                        halloffame.remove(i)
                halloffame.update([ind for j, ind in enumerate(population) if j not in lost])
                if hasattr(stream, "keep"):  # the hall of fame must outlive the workers that trained it
                    stream.keep(ind.handle for ind in halloffame)
            record = stats.compile(population) if stats else {}
            logbook.record(gen=generation, epochs=epochs, nevals=len(population), failed=failed, **record)
            if verbose:
                print(logbook.stream)
            trained = list(population)
            done = epochs >= e_total
            replaced, next_id = ([], next_id) if done else exploit(population, toolbox, next_id, lost)
            for j in set(lost) - {k for k, _ in replaced}:
                population[j].handle = None  # nothing to train on (or to checkpoint) any more
            if hook is not None:
                now = time.perf_counter()
                hook(Generation(generation, epochs, trained, replaced, population, logbook, halloffame, next_id,
                                now - t0, sum(r.seconds for r in results), failed, done, len(started), busy))
                t0 = now
            # these hold this generation's states (the losers' too): the next generation frees each as its
            # member trains again, a loser's at once
            del results, trained
    except BaseException:
        if hasattr(stream, "discard"):  # an interrupted loop leaves calls out; the map stays usable
            stream.discard()
        raise
    return population, logbook
