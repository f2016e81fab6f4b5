"""Training one generation of a population on a map, for :func:`~pbt_evo.algorithms.ea_pbt`: early starts
live here, behind :class:`GenerationRunner`.

:class:`GenerationRunner` submits every member as a :class:`~pbt_evo.parallel.protocol.Call`, records
each result as it arrives (so a member's old state is freed at once) and starts the next generation of a
member that ``survivors`` says truncation cannot replace whatever the members still training score, on a
worker that would otherwise wait for the slowest member (no barrier for sure survivors; the map's
``max_early`` caps how many, ``no_survivors`` or ``max_early=0`` is the synchronous loop).

Why the results are the synchronous loop's: a member's training depends only on its own state, seed
and age, and an early result is used only when its generation begins, if its place still holds the
same, unchanged member (a hook, or a ``select`` that replaces more than ``survivors`` assumed, may have
changed it; then the member trains again from its current state). With a shared replay buffer (RL), what
a member samples depends on timing in either loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from ..handles import TrainResult
from ..individual import Individual, worst_value, worst_values
from .protocol import Call, as_stream, check_max_early


def record(ind: Individual, res: TrainResult, step: int) -> int:
    """Give ``ind`` its training result (fitness, metrics, new state, age); returns 1 if it failed.
    Non-finite fitness (a diverged or failed member) is recorded as the worst possible; with several
    objectives (``res.values``), a non-finite value in any makes every objective the worst.

    >>> ind = Individual([0], id=1)
    >>> record(ind, TrainResult(float("nan")), step=2), ind.fitness.values, ind.epochs
    (0, (-inf,), 2)
    >>> two = Individual([0], id=2, weights=(1.0, -1.0))
    >>> record(two, TrainResult(0.9, values=(0.9, float("nan"))), step=2), two.fitness.values
    (0, (-inf, inf))
    """
    if res.values is not None or len(ind.fitness.weights) > 1:
        return record_values(ind, res, step)
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


def record_values(ind: Individual, res: TrainResult, step: int) -> int:
    """:func:`record` of a multi-objective result (a failed call has no values: the worst in all)."""
    values = res.values if res.values is not None else ()
    if len(values) != len(ind.fitness.weights) and not res.failed:
        raise ValueError(f"member {ind.id}: {len(values)} objective values for a fitness of"
                         f" {len(ind.fitness.weights)} weights: register toolbox.train with the same objectives")
    ind.metrics = dict(res.metrics)
    if res.failed or not all(math.isfinite(v) for v in values):
        ind.metrics["fitness_raw"] = res.fitness
        values = worst_values(ind.fitness)
    if not res.failed:  # a failed member keeps its previous state and age
        ind.handle = res.state
        ind.epochs += step
    ind.metrics["train_seconds"] = res.seconds
    ind.fitness.values = tuple(values)
    return int(res.failed)


def positions(population: list[Individual]) -> dict[int, int]:
    """Index of each member by identity; the same object twice would train twice from one state."""
    index: dict[int, int] = {}
    for j, ind in enumerate(population):
        if id(ind) in index:
            raise ValueError(f"the population holds one Individual object at positions {index[id(ind)]} and {j}:"
                             " put a copy (toolbox.clone) in one of them")
        index[id(ind)] = j
    return index


def next_ask(out: int) -> int:
    """Sure survivors are looked for again once at most this many of the generation's calls are out.

    ``toolbox.survivors`` over F finished members costs O(F log F); asked after every result, a
    generation would cost O(N² log N). So: after every result while fewer than 2 x ``ASK_SPLIT`` calls
    are out, else after every ``1 / ASK_SPLIT`` of those out (O(log N) times). The survivors found later
    lose nothing: an early start is dispatched only once this generation's queued calls are all out,
    and the last calls are looked at one by one.

    >>> next_ask(8), next_ask(512)
    (7, 480)
    """
    return out - max(1, out // ASK_SPLIT)


ASK_SPLIT = 16


@dataclass
class Outcome:
    """What training one generation took."""

    failed: int = 0
    train_seconds: float = 0.0   # in-worker training+evaluation of this generation's own results
    busy_seconds: float = 0.0    # ... of every result that arrived meanwhile (early starts of the next included)
    started_early: int = 0       # members of the next generation started before this one ended


@dataclass(eq=False)
class _Early:
    """A member's next generation, started before its generation began."""

    index: int
    member: Individual
    snapshot: tuple              # what it was started from: state, age, seed, genome
    result: Any = None

    def still_valid(self, population: list[Individual]) -> bool:
        return population[self.index] is self.member and _same(snapshot(self.member), self.snapshot)


def snapshot(ind: Individual) -> tuple:
    return ind.handle, ind.epochs, ind.seed, list(ind)


def _same(a: tuple, b: tuple) -> bool:
    return a[0] is b[0] and a[1:] == b[1:]


class GenerationRunner:
    """Trains a population one generation at a time on ``stream`` with ``train`` (``train(context, individual,
    epochs=...)``), starting the members ``survivors(finished, N)`` names early, at most the map's
    ``max_early`` a generation: each holds a second state until its generation begins.

    >>> # runner = GenerationRunner(toolbox.map, toolbox.train, toolbox.survivors)
    >>> # outcome = runner.run(population, step=2, following=2, generation=0)
    """

    def __init__(self, stream: Any, train: Callable[..., Any],
                 survivors: Callable[[list[Individual], int], list[Individual]]):
        self.stream = as_stream(stream)
        self.train = train
        self.survivors = survivors
        self.max_early = check_max_early(self.stream.max_early)
        self._ahead: dict[int, _Early] = {}    # ticket -> next generation's early start, still training
        self._arrived: dict[int, _Early] = {}  # index -> early start whose result waits for its generation

    def call(self, ind: Individual, epochs: int, generation: int) -> Call:
        """The call that trains ``ind`` ``epochs`` epochs (its cost: its last training time, if measured)."""
        return Call(partial(self.train, epochs=epochs), ind, state=ind.handle, cost=ind.metrics.get("train_seconds"),
                    order=generation, genome=ind, label=f"member {ind.id}")

    def run(self, population: list[Individual], step: int, following: int, generation: int) -> Outcome:
        """Train every member ``step`` epochs and record its result; ``following`` is the next
        generation's step (0: none), for early starts."""
        index = positions(population)
        self._drop_stale(population)
        self.stream.retain([ind.handle for ind in population] + [e.result.state for e in self._arrived.values()])
        tickets = {t: e.index for t, e in self._ahead.items()}  # this generation's calls already out
        out = set(tickets.values()) | set(self._arrived)
        tickets.update({self.stream.submit(self.call(ind, step, generation)): j
                        for j, ind in enumerate(population) if j not in out})
        start_early = bool(following) and self.max_early != 0
        progress = self.stream.progress
        outcome, done, started = Outcome(), [False] * len(population), set()
        arrived, self._arrived, self._ahead = self._arrived, {}, {}

        def take(j: int, res: Any) -> None:
            done[j] = True
            outcome.failed += record(population[j], res, step)
            outcome.train_seconds += res.seconds
            if progress is not None:
                progress(j, res)

        for j, early in arrived.items():
            take(j, early.result)
        ask_at = next_ask(len(tickets))
        while tickets:
            ticket, res = self.stream.wait(among=tickets.keys() | self._ahead.keys())
            outcome.busy_seconds += res.seconds
            if ticket in self._ahead:
                early = self._ahead.pop(ticket)
                early.result = res
                self._arrived[early.index] = early
                continue
            take(tickets.pop(ticket), res)
            if not start_early or len(tickets) > ask_at:
                continue
            ask_at = next_ask(len(tickets))
            finished = [ind for ind, d in zip(population, done) if d]
            for ind in self.survivors(finished, len(population)):
                k = index[id(ind)]
                if self.max_early is not None and len(started) >= self.max_early:
                    break
                if k not in started:
                    started.add(k)
                    ticket = self.stream.submit(self.call(ind, following, generation + 1))
                    self._ahead[ticket] = _Early(k, ind, snapshot(ind))
        outcome.started_early = len(started)
        return outcome

    def _drop_stale(self, population: list[Individual]) -> None:
        """Early starts whose place no longer holds the same, unchanged member are dropped."""
        stale = [t for t, e in self._ahead.items() if not e.still_valid(population)]
        self.stream.discard(stale)
        self._ahead = {t: e for t, e in self._ahead.items() if t not in stale}
        self._arrived = {k: e for k, e in self._arrived.items() if e.still_valid(population)}

    def cancel(self) -> None:
        """Forget the calls still out (an interrupted loop): the map stays usable."""
        self.stream.discard()
        self._ahead, self._arrived = {}, {}
