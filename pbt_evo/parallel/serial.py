"""Everything in this process, with :class:`~pbt_evo.parallel.RayMap`'s semantics (tests, debugging, tiny tasks)."""

from __future__ import annotations

import logging
import traceback
import uuid
from collections import deque
from collections.abc import Callable, Container, Iterable
from typing import Any

import torch

from ..handles import TrainResult
from ..rng import kept_rng
from ..task import Task
from ..train import set_scope
from .protocol import Call, Context, MapBase, check_max_early, stored_locally

failures = logging.getLogger("pbt_evo.parallel.failures")  # each failed attempt, its traceback in `extra`


def failed_result(error: str) -> TrainResult:
    """A member that failed every attempt: worst fitness; the loop keeps its previous state."""
    return TrainResult(fitness=float("nan"), failed=True, error=error, metrics={"failed": 1.0})


class SerialMap(MapBase):
    """Runs every call in this process, oldest first: a DEAP map and a stream (``submit``/``wait``).

    A call that raises is retried ``max_retries`` times, then returned as a failed result, so one
    member's failure does not end the run. The driver's random streams are kept across calls. Calls run
    with a :class:`~pbt_evo.parallel.protocol.Context` holding ``task``; ``max_early`` and ``progress``:
    see :class:`~pbt_evo.parallel.protocol.MapBase`. Members train with ``num_threads`` torch threads, 1
    by default as a Ray worker of 1 CPU does: small networks run no faster on more, and on a busy machine
    many times slower (None: torch's own count); :meth:`close` gives the process its previous count back.

    >>> from tasks.digits import DigitsTask
    >>> smap = SerialMap(DigitsTask(channels=4))
    >>> smap(lambda x: x + 1, [1, 2])
    [2, 3]
    """

    def __init__(self, task: Task, num_threads: int | None = 1, max_retries: int = 1,
                 max_early: int | None = None, progress: Callable[[int, Any], None] | None = None):
        self.task = task
        self.num_threads = num_threads
        self._threads_before: int | None = None
        self.max_retries = max_retries
        self.max_early, self.progress = check_max_early(max_early), progress
        self.scope = uuid.uuid4().hex  # names this map's per-node services (pbt_evo.train.current_scope)
        self._queue: deque = deque()       # (ticket, call) not yet run
        self._done: dict[int, Any] = {}    # results that ran while ``wait`` looked for other tickets
        self._tickets = 0

    def submit(self, call: Call) -> int:
        """Queue a call; it runs in :meth:`wait` (its ``cost`` and ``order`` are ignored: queue order)."""
        self._tickets += 1
        self._queue.append((self._tickets, call))
        return self._tickets

    def wait(self, among: Container[int] | None = None) -> tuple[int, Any]:
        """Run queued calls, oldest first, until one of ``among`` (default: any) is done."""
        for ticket in self._done:
            if among is None or ticket in among:
                return ticket, self._done.pop(ticket)
        set_scope(self.scope)  # several maps may share this process
        if self.num_threads and torch.get_num_threads() != self.num_threads:  # (setting it costs milliseconds)
            self._threads_before = self._threads_before or torch.get_num_threads()
            torch.set_num_threads(self.num_threads)
        while self._queue:
            ticket, call = self._queue.popleft()
            with kept_rng():
                res = self._run(call)
            if among is None or ticket in among:
                return ticket, res
            self._done[ticket] = res
        raise RuntimeError("SerialMap.wait: nothing submitted")

    def discard(self, tickets: Iterable[int] | None = None) -> None:
        drop = None if tickets is None else set(tickets)
        self._queue = deque(q for q in self._queue if drop is not None and q[0] not in drop)
        self._done = {t: r for t, r in self._done.items() if drop is not None and t not in drop}

    def _run(self, call: Call) -> Any:
        for attempt in range(self.max_retries + 1):
            try:
                return stored_locally(call.run(Context(self.task, self.scope)))
            except Exception:  # a member's failure must not end the run
                err = traceback.format_exc()
                failures.warning("%s failed (attempt %d): %s", call.label, attempt + 1, err.strip().splitlines()[-1],
                                 extra={"traceback": err})
        return failed_result(err)

    def close(self) -> None:
        self.task.close()
        if self._threads_before is not None:
            torch.set_num_threads(self._threads_before)
            self._threads_before = None
