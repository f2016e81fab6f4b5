"""The map contract: what :func:`~pbt_evo.algorithms.ea_pbt` asks of ``toolbox.map``.

A map is DEAP's ``map(func, iterable) -> list`` and, to let the loop start a member before the whole
generation has finished, also a *stream*: ``submit`` queues one call and returns a ticket, ``wait``
returns the next finished ``(ticket, result)``. :class:`SerialMap` and :class:`RayMap` are both, by
way of :class:`MapBase`; any other DEAP map (the builtin ``map``, SCOOP's ``futures.map``, a pool's
``map``) is wrapped in :class:`BatchMap`, which runs what was submitted as one map call.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Container, Iterable
from typing import Any, Protocol, runtime_checkable

from ..handles import StoredState, TrainResult, WeightHandle
from ..rng import kept_rng

Progress = Callable[[int, Any], None]  # (index in the call's input, result), as each result arrives


@runtime_checkable
class Stream(Protocol):
    """Calls submitted one at a time and collected as they finish."""

    def submit(self, func: Callable[[Any], Any], item: Any, cost: float | None = None, order: int = 0) -> int:
        """Queue ``func(item)``; ``cost`` is its expected training time, ``order`` a dispatch rank (lower first)."""

    def wait(self, among: Container[int] | None = None) -> tuple[int, Any]:
        """Block until a call of ``among`` (default: any) is done: ``(ticket, result)``."""

    def discard(self, tickets: Iterable[int] | None = None) -> None:
        """Forget calls not yet returned by ``wait``: ``tickets``, else all (after an interrupted loop)."""

    def retain(self, handles: Iterable[Any]) -> None:
        """The states still current (the population's): anything kept for other states may go."""


class MapBase:
    """A DEAP map on top of ``submit``/``wait``, with the optional parts of the contract as no-ops.

    Subclasses implement ``submit``, ``wait`` and ``discard``; they may override :meth:`retain` (a map
    that keeps trained members alive between calls) and :meth:`close`. Usable as a context manager.
    """

    def __call__(self, func: Callable[[Any], Any], iterable: Iterable[Any]) -> list[Any]:
        return map_by_stream(self, func, list(iterable))  # type: ignore[arg-type]

    def retain(self, handles: Iterable[Any]) -> None:
        """The states still current (the population's): anything kept for other states may go."""

    def close(self) -> None:
        """Release workers and what the task holds."""

    def __enter__(self) -> "MapBase":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class BatchMap(MapBase):
    """``submit``/``wait`` over a plain DEAP map: what was submitted runs as one map call at the first ``wait``.

    >>> m = BatchMap(map)
    >>> t = m.submit(lambda x: 2 * x, 3); m.wait()
    (1, 6)
    """

    def __init__(self, map_: Callable[..., Iterable[Any]]):
        self.map = map_
        self._queue: deque = deque()   # (ticket, func, item)
        self._ready: deque = deque()   # (ticket, result) of the last map call
        self._tickets = 0

    def submit(self, func: Callable[[Any], Any], item: Any, cost: float | None = None, order: int = 0) -> int:
        self._tickets += 1
        self._queue.append((self._tickets, func, item))
        return self._tickets

    def wait(self, among: Container[int] | None = None) -> tuple[int, Any]:
        if not self._ready:
            batch = list(self._queue)
            self._queue.clear()
            if not batch:
                raise RuntimeError("BatchMap.wait: nothing submitted")
            func = batch[0][1]
            if any(f is not func for _, f, _ in batch):
                raise ValueError("a plain map runs one function per call: submit one function at a time")
            with kept_rng():  # in case the map trains in this process (the builtin map)
                results = list(self.map(func, [item for _, _, item in batch]))
            self._ready.extend(zip([t for t, _, _ in batch], results))
        for k, (ticket, res) in enumerate(self._ready):
            if among is None or ticket in among:
                del self._ready[k]
                return ticket, stored_locally(res)  # the builtin map returns states in this process
        raise RuntimeError("BatchMap.wait: none of the tickets asked for was submitted")

    def discard(self, tickets: Iterable[int] | None = None) -> None:
        drop = None if tickets is None else set(tickets)
        self._queue = deque(q for q in self._queue if drop is not None and q[0] not in drop)
        self._ready = deque(r for r in self._ready if drop is not None and r[0] not in drop)


def as_stream(map_: Any) -> Stream:
    """``map_`` itself when it is a :class:`Stream`, else a :class:`BatchMap` around it.

    >>> isinstance(as_stream(map), BatchMap)
    True
    """
    return map_ if isinstance(map_, Stream) else BatchMap(map_)


def stored_locally(res: Any) -> Any:
    """``res`` with a state returned in this process (a dict) wrapped as a :class:`StoredState`.

    >>> stored_locally(TrainResult(1.0, state={"model": {}})).state
    StoredState(ref={'model': {}})
    """
    if isinstance(res, TrainResult) and not res.failed and not isinstance(res.state, WeightHandle):
        res.state = StoredState(res.state)
    return res


def map_by_stream(stream: Stream, func: Callable[[Any], Any], items: list[Any],
                  costs: list[float] | None = None, progress: Progress | None = None) -> list[Any]:
    """DEAP's ``map(func, items)`` over ``submit``/``wait``: results in input order.

    Each item that occurs once is handed its new state as soon as it arrives, so its previous state is
    freed during the call rather than after it (about one state per member in store, not two); a
    repeated item keeps its old state until its last call was sent. Other calls still out (a loop's
    early starts, when a hook maps) are left alone; an interrupted call forgets its own tickets.

    >>> map_by_stream(BatchMap(map), abs, [-1, 2])
    [1, 2]
    """
    counts = Counter(map(id, items))
    tickets = {stream.submit(func, it, None if costs is None else costs[i]): i for i, it in enumerate(items)}
    results: list[Any] = [None] * len(items)
    try:
        while tickets:
            ticket, res = stream.wait(among=tickets)
            i = tickets.pop(ticket)
            if counts[id(items[i])] == 1:
                hand_over(items[i], res)
            results[i] = res
            if progress is not None:
                progress(i, res)
    except BaseException:
        stream.discard(list(tickets))
        raise
    return results


def hand_over(item: Any, res: Any) -> None:
    """Give a trained individual its new state (on success only: a failed member keeps its old one)."""
    if isinstance(res, TrainResult) and not res.failed and isinstance(getattr(item, "handle", None), WeightHandle):
        item.handle = res.state
