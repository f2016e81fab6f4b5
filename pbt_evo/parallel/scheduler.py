"""Which call goes to which worker, and when: the scheduling policy of :class:`~pbt_evo.parallel.RayMap`.

No Ray here: the scheduler sees calls as costs and workers as load, so it is tested on its own.

Why this policy. A synchronous generation ends at a barrier, so its wall time is the busiest worker's
queue plus every moment a worker waits for the driver. So:

- calls go out by ``order`` (a loop's generation: the current one before early starts of the next),
  then costliest first (longest-processing-time-first list scheduling, decided one call at a time, so
  that a misestimate is corrected by the next decision);
- each to the worker with the least work queued, an idle one first;
- each worker has up to ``pipeline`` calls in flight, so the next member is already queued in the actor
  when the current one finishes, except for the last ``workers`` calls of the first ``order`` queued
  (the current generation's smallest), which go only to idle workers, so that the tail is balanced on
  real, not estimated, finish times, whatever early starts of the next generation are queued behind;
- affinity: among equally loaded workers, the one that keeps the call's member alive (``home``); and a
  worker takes, instead of the head call, one of the next few (similar in cost) whose member it keeps,
  except in the tail;
- a call that failed on a worker is retried first, on another worker (anywhere, once it failed on all).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(eq=False)
class Job:
    """A call as the scheduler sees it."""

    cost: float                 # expected training time
    order: int = 0              # dispatch rank before cost (a loop's generation)
    home: int = -1              # worker keeping its member alive (-1: none)
    tried: set[int] = field(default_factory=set)  # workers it failed on
    worker: int = -1            # where it runs (-1: queued)


@dataclass
class Slot:
    """One worker's load."""

    inflight: int = 0           # calls queued in the actor or running
    queued: float = 0.0         # their expected cost


class Scheduler:
    """Queue of calls and per-worker load (see the module docstring).

    >>> s = Scheduler(workers=2, pipeline=1)
    >>> for ticket, cost in ((1, 1.0), (2, 3.0), (3, 2.0)):
    ...     s.add(ticket, Job(cost))
    >>> s.next(), s.next(), s.next()           # costliest first, one call per worker in the tail
    ((2, 0), (3, 1), None)
    >>> _ = s.release(3); s.next()             # worker 1 finished: it takes the last call
    (1, 1)
    """

    def __init__(self, workers: int, pipeline: int = 2):
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if pipeline < 1:
            raise ValueError(f"pipeline must be >= 1 (calls in flight per worker), got {pipeline}")
        self.pipeline = pipeline
        self.slots = [Slot() for _ in range(workers)]
        self.jobs: dict[int, Job] = {}   # ticket -> call not finished
        self.queue: list[int] = []       # tickets not dispatched: by (order, -cost), retries in front
        self._ranks: list[tuple[float, float]] = []  # (order, -cost) of each queued ticket, for bisect

    def add(self, ticket: int, job: Job) -> None:
        """Queue a call after those of equal rank (submission order among equals)."""
        self.jobs[ticket] = job
        rank = (job.order, -job.cost)
        at = bisect.bisect_right(self._ranks, rank)  # O(log N): a generation of N calls is not O(N²)
        self.queue.insert(at, ticket)
        self._ranks.insert(at, rank)

    def next(self) -> tuple[int, int] | None:
        """The call to dispatch now and its worker (marked running there), or None: every worker is full,
        or the calls left wait for a worker they have not failed on."""
        n, queue, jobs = len(self.slots), self.queue, self.jobs
        if not queue:
            return None
        # the tail is the first rank's (the current generation's): early starts of the next one queued
        # behind it must not let its last calls be pipelined behind a busy worker's, delaying the barrier
        lead = bisect.bisect_right(self._ranks, (jobs[queue[0]].order, math.inf))
        depth = self.pipeline if lead > n else 1
        free = [w for w in range(n) if self.slots[w].inflight < depth]
        if not free:
            return None  # asked after every result: must not look through the whole queue then
        for pos, ticket in enumerate(queue):
            job = jobs[ticket]
            allowed = [w for w in free if w not in job.tried or len(job.tried) >= n]
            if not allowed:
                continue  # the workers it may run on are busy: calls behind it may go meanwhile
            w = min(allowed, key=lambda w: (self.slots[w].inflight > 0, self.slots[w].queued, job.home != w,
                                            self.slots[w].inflight))
            if lead > n and job.home != w:
                for k, other in enumerate(queue[pos + 1:pos + n], start=pos + 1):
                    if jobs[other].home == w and w not in jobs[other].tried:
                        ticket, job, pos = other, jobs[other], k
                        break
            del queue[pos], self._ranks[pos]
            job.worker = w
            self.slots[w].inflight += 1
            self.slots[w].queued += job.cost
            return ticket, w
        return None

    def release(self, ticket: int) -> Job:
        """The call returned (or failed) on its worker, which has room again; it stays known until
        :meth:`remove` or :meth:`retry`."""
        job = self.jobs[ticket]
        slot = self.slots[job.worker]
        slot.inflight -= 1
        slot.queued = max(0.0, slot.queued - job.cost) if slot.inflight else 0.0
        job.worker = -1
        return job

    def retry(self, ticket: int, failed_on: int) -> None:
        """Queue a released call again, in front, for a worker it has not failed on."""
        self.jobs[ticket].tried.add(failed_on)
        self.queue.insert(0, ticket)
        self._ranks.insert(0, (-math.inf, -math.inf))

    def remove(self, ticket: int) -> Job:
        """Forget a released call."""
        return self.jobs.pop(ticket)

    def drop(self, tickets: Iterable[int]) -> list[tuple[int, Job]]:
        """Forget calls, queued or running (a running one's worker counts as free again); returns them."""
        out = []
        for ticket in [t for t in tickets if t in self.jobs]:
            job = self.jobs.pop(ticket)
            if ticket in self.queue:
                at = self.queue.index(ticket)
                del self.queue[at], self._ranks[at]
            elif job.worker >= 0:
                slot = self.slots[job.worker]
                slot.inflight -= 1
                slot.queued = max(0.0, slot.queued - job.cost)
            out.append((ticket, job))
        return out
