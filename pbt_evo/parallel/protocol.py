"""The map contract: what :func:`~pbt_evo.algorithms.ea_pbt` asks of ``toolbox.map``.

What crosses a map is declared: a :class:`Call` (a function, the item it runs on, and for the scheduler
the item's state, expected cost and dispatch order) goes in; the function's result comes out. The function
runs as ``fn(context, item)`` where the map runs it, with a :class:`Context`: the task that process holds
and, when the map keeps trained members alive, the member whose state is the call's. Nothing is written
back into items: the loop gives each individual its result.

A map is DEAP's ``map(func, iterable) -> list`` (plain calls ``func(item)``) and a *stream*: ``submit``
queues one call and returns a ticket, ``wait`` returns the next finished ``(ticket, result)``, so the loop
can start a member before the whole generation has finished. :class:`SerialMap` and :class:`RayMap` are
both, by way of :class:`MapBase`; any other DEAP map (the builtin ``map``, SCOOP's ``futures.map``, a
pool's ``map``) becomes one as :class:`BatchMap` ``(map, task)``, which runs what was submitted as one
map call.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from ..handles import StoredState, TrainResult, WeightHandle
from ..rng import kept_rng
from ..task import Member, Task

Progress = Callable[[int, Any], None]  # (index in the call's input, result), as each result arrives


@dataclass
class Context:
    """What a call runs with where the map runs it: the ``task`` that process holds, the map's ``scope``
    (:func:`pbt_evo.train.current_scope`), and ``live``, a member the worker kept alive whose state is the
    call's (then :meth:`member` continues it instead of building one). ``built`` is the member the call
    trained, which the worker may keep.

    >>> from tasks.digits import DigitsTask
    >>> from pbt_evo.handles import FreshState
    >>> ctx = Context(DigitsTask(channels=4))
    >>> ctx.member(FreshState(0), [0] * 8) is ctx.built
    True
    """

    task: Task
    scope: str = "default"
    live: Member | None = None
    built: Member | None = None

    def member(self, handle: WeightHandle, genome: Sequence[int]) -> Member:
        """The member of ``handle``'s state: the live one, else materialised (built, state loaded)."""
        member = self.live if self.live is not None else handle.materialise(self.task, genome)
        self.built = member
        return member


@dataclass(frozen=True, eq=False)
class Call:
    """One call through a map: ``fn(context, item)``. ``state`` is the item's weight handle (a worker that
    keeps the member of that state continues it; the map keeps what the call returns), ``cost`` its
    expected training time (None: the map's estimate from ``genome``, else equal), ``order`` its dispatch
    rank (lower first: a loop's generation), ``label`` names it in messages.

    >>> Call(plain_call(abs), -2).run(None)
    2
    """

    fn: Callable[[Context, Any], Any]
    item: Any
    state: WeightHandle | None = None
    cost: float | None = None
    order: int = 0
    genome: Sequence[int] | None = None
    label: str = "call"

    def run(self, context: Context | None) -> Any:
        return self.fn(context, self.item)


def apply_plain(func: Callable[[Any], Any], context: Context | None, item: Any) -> Any:
    """A DEAP map's plain function ``func(item)`` as a call (the context is not used)."""
    return func(item)


def plain_call(func: Callable[[Any], Any]) -> Callable[[Context | None, Any], Any]:
    """``func(item)`` in the shape maps run, ``fn(context, item)`` (picklable for Ray)."""
    return partial(apply_plain, func)


class MapBase:
    """A DEAP map on top of ``submit``/``wait``, with the optional parts of the contract as no-ops.

    Subclasses implement ``submit``, ``wait`` and ``discard``; they may override :meth:`retain` (a map
    that keeps trained members alive between calls) and :meth:`close`. Usable as a context manager.

    ``max_early`` caps how many members a loop starts before their generation begins (each holds a second
    state meanwhile; None: no cap, 0: the synchronous loop); ``progress(index, result)`` is called as each
    of a generation's results arrives.
    """

    max_early: int | None = None
    progress: Progress | None = None

    def submit(self, call: Call) -> int:
        """Queue a call; returns its ticket."""
        raise NotImplementedError

    def wait(self, among: Container[int] | None = None) -> tuple[int, Any]:
        """Block until a call of ``among`` (default: any) is done: ``(ticket, result)``."""
        raise NotImplementedError

    def discard(self, tickets: Iterable[int] | None = None) -> None:
        """Forget calls not yet returned by ``wait``: ``tickets``, else all (after an interrupted loop)."""
        raise NotImplementedError

    def __call__(self, func: Callable[[Any], Any], iterable: Iterable[Any]) -> list[Any]:
        return map_calls(self, [Call(plain_call(func), item) for item in iterable])

    def retain(self, handles: Iterable[Any]) -> None:
        """The states still current (the population's): anything kept for other states may go."""

    def close(self) -> None:
        """Release workers and what the task holds."""

    def __enter__(self) -> "MapBase":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def check_max_early(max_early: int | None) -> int | None:
    """``max_early`` as given, or ValueError naming what is allowed."""
    if max_early is not None and (not isinstance(max_early, int) or isinstance(max_early, bool) or max_early < 0):
        raise ValueError(f"max_early must be an int >= 0 (early starts per generation) or None (no cap), got"
                         f" {max_early!r}")
    return max_early


def run_call(context: Context, call: Call) -> Any:
    """``call`` in this process with ``context`` (what :class:`BatchMap` maps)."""
    return stored_locally(call.run(context))


class BatchMap(MapBase):
    """``submit``/``wait`` over a plain DEAP map, whose function gets the ``task``: what was submitted runs as
    one map call at the first ``wait`` (no early starts).

    >>> m = BatchMap(map, task=None)
    >>> t = m.submit(Call(plain_call(lambda x: 2 * x), 3)); m.wait()
    (1, 6)
    """

    max_early = 0

    def __init__(self, map_: Callable[..., Iterable[Any]], task: Task | None):
        self.map = map_
        self.context = Context(task)
        self._queue: deque = deque()   # (ticket, call)
        self._ready: deque = deque()   # (ticket, result) of the last map call
        self._tickets = 0

    def submit(self, call: Call) -> int:
        self._tickets += 1
        self._queue.append((self._tickets, call))
        return self._tickets

    def wait(self, among: Container[int] | None = None) -> tuple[int, Any]:
        if not self._ready:
            batch = list(self._queue)
            self._queue.clear()
            if not batch:
                raise RuntimeError("BatchMap.wait: nothing submitted")
            with kept_rng():  # in case the map trains in this process (the builtin map)
                results = list(self.map(partial(run_call, self.context), [call for _, call in batch]))
            self._ready.extend(zip([t for t, _ in batch], results))
        for k, (ticket, res) in enumerate(self._ready):
            if among is None or ticket in among:
                del self._ready[k]
                return ticket, res
        raise RuntimeError("BatchMap.wait: none of the tickets asked for was submitted")

    def discard(self, tickets: Iterable[int] | None = None) -> None:
        drop = None if tickets is None else set(tickets)
        self._queue = deque(q for q in self._queue if drop is not None and q[0] not in drop)
        self._ready = deque(r for r in self._ready if drop is not None and r[0] not in drop)


def as_stream(map_: Any) -> MapBase:
    """``map_`` itself when it is a :class:`MapBase`, else a TypeError that says how to make it one.

    >>> as_stream(map)
    Traceback (most recent call last):
    TypeError: toolbox.map must be a pbt_evo map (SerialMap, RayMap) or a DEAP map wrapped with its task: pbt_evo.BatchMap(map, task)
    """
    if isinstance(map_, MapBase):
        return map_
    raise TypeError("toolbox.map must be a pbt_evo map (SerialMap, RayMap) or a DEAP map wrapped with its task:"
                    " pbt_evo.BatchMap(map, task)")


def stored_locally(res: Any) -> Any:
    """``res`` with a state returned in this process (a dict) wrapped as a :class:`StoredState`.

    >>> stored_locally(TrainResult(1.0, state={"model": {}})).state
    StoredState(ref={'model': {}})
    """
    if isinstance(res, TrainResult) and not res.failed and not isinstance(res.state, WeightHandle):
        res.state = StoredState(res.state)
    return res


def map_calls(stream: MapBase, calls: list[Call], progress: Progress | None = None) -> list[Any]:
    """Every call's result, in order (DEAP's ``map`` over declared calls). Other calls still out (a
    loop's early starts, when a hook maps) are left alone; an interrupted call forgets its own tickets.

    >>> map_calls(BatchMap(map, None), [Call(plain_call(abs), -1), Call(plain_call(abs), 2)])
    [1, 2]
    """
    tickets = {stream.submit(call): i for i, call in enumerate(calls)}
    results: list[Any] = [None] * len(calls)
    try:
        while tickets:
            ticket, res = stream.wait(among=tickets)
            i = tickets.pop(ticket)
            results[i] = res
            if progress is not None:
                progress(i, res)
    except BaseException:
        stream.discard(list(tickets))
        raise
    return results
