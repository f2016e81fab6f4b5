"""Maps that train a population: ``toolbox.map = RayMap(spec, workers=2)`` or ``SerialMap(task)``.

Both follow DEAP's ``map(func, iterable)`` contract and return results in input order. When ``func``
returns a :class:`~pbt_evo.handles.TrainResult`, its state is replaced by a
:class:`~pbt_evo.handles.StoredState` handle: with Ray, an ``ObjectRef`` to a task return value, which
lives in the object store of the node that trained it and is owned by the driver (it survives the
worker), so the driver never pulls weights.

RayMap: persistent actors that build the task once (torch threads = CPUs per worker); items are
dispatched costliest first (last measured training time, else ``task.cost``), each to the worker with
the least work queued, with ``pipeline`` calls in flight per worker so that no worker waits for the
driver between members; an item whose function raises is retried on another worker, then returned as a
failed result carrying the input's handle (no work lost, fitness worst) without ending the run.
"""

from __future__ import annotations

import logging
import os
import random
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch

from .handles import StoredState, TrainResult, capture, restore
from .task import Task, TaskSpec
from .train import set_task

log = logging.getLogger(__name__)
Progress = Callable[[int, Any], None]


def _failed(error: str) -> TrainResult:
    """A member that failed every attempt: worst fitness, its previous state kept by the loop."""
    return TrainResult(fitness=float("nan"), failed=True, error=error, metrics={"failed": 1.0})


class SerialMap:
    """Runs everything in this process, with the same semantics as :class:`RayMap` (for tests, debugging).

    >>> # toolbox.map = SerialMap(DigitsTask(), num_threads=1)
    """

    def __init__(self, task: Task, num_threads: int | None = None, max_retries: int = 1):
        self.task = task
        self.num_threads = num_threads
        self.max_retries = max_retries
        self.progress: Progress | None = None
        set_task(task)

    def __call__(self, func: Callable[[Any], Any], iterable: Iterable[Any]) -> list[Any]:
        set_task(self.task)
        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        # members reseed the global generators; the driver's streams (DEAP's operators use `random`)
        # must not depend on whether training ran in this process or in a worker
        saved = random.getstate(), np.random.get_state(), torch.get_rng_state()
        try:
            return self._run(func, iterable)
        finally:
            random.setstate(saved[0])
            np.random.set_state(saved[1])
            torch.set_rng_state(saved[2])

    def _run(self, func: Callable[[Any], Any], iterable: Iterable[Any]) -> list[Any]:
        results = []
        for i, item in enumerate(iterable):
            for attempt in range(self.max_retries + 1):
                try:
                    res = func(item)
                    break
                except Exception:  # a member's failure must not end the run
                    err = traceback.format_exc()
                    log.warning("member %s failed (attempt %d): %s", getattr(item, "id", i), attempt + 1,
                                err.strip().splitlines()[-1])
                    res = _failed(err)
            if isinstance(res, TrainResult) and not res.failed:
                res.state = StoredState(res.state)
            results.append(res)
            if self.progress:
                self.progress(i, res)
        return results

    def close(self) -> None:
        set_task(None)


class _Worker:
    """A Ray actor holding one task (wrapped by ``ray.remote`` in :class:`RayMap`)."""

    def __init__(self, spec: TaskSpec, num_threads: int):
        torch.set_num_threads(max(1, num_threads))
        self.task = spec.build()
        set_task(self.task)
        self._warm_up()

    def _warm_up(self) -> None:
        """Pay the one-time costs (lazy imports of optimizers and state handling) before the first
        member, so they do not land in the first generation's wall time."""
        member = self.task.build([0] * len(self.task.space))
        restore(member, capture(member))

    def run(self, func: Callable[[Any], Any], item: Any) -> tuple[Any, Any]:
        res = func(item)
        if isinstance(res, TrainResult):
            state, res.state = res.state, None
            return res, state
        return res, None

    def cost(self, item: Any) -> float:
        return float(self.task.cost(list(item)))

    def node(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()


class RayMap:
    """A DEAP map over persistent Ray actors.

    ``spec`` builds the task in each worker. Connects to a running cluster when the caller has called
    ``ray.init(address=...)``; otherwise starts a local one (``address`` is passed to ``ray.init``).

    Scheduling (why): a synchronous generation ends at a barrier, so its wall time is the busiest
    worker's queue plus every moment a worker waits for the driver. Items go out costliest first
    (measured ``train_seconds`` of the last generation, else ``task.cost``), each to the worker whose
    queued work is smallest (greedy list scheduling, i.e. longest-processing-time-first, decided one item
    at a time so that a misestimate is corrected by the next decision), and each worker keeps
    ``pipeline`` calls in flight: the next member is already queued in the actor when the current one
    finishes, so a worker never idles for a driver round trip (~2-12 ms a call, plus the driver's own
    latency when it is busy). ``pipeline=1`` is pure dynamic dispatch.

    ``last_workers`` holds, after each call, the index of the worker that produced each result (``-1``
    for failed items); :meth:`nodes` maps worker indices to Ray node ids.

    >>> # toolbox.map = RayMap(TaskSpec("tasks.digits:DigitsTask"), workers=2)
    """

    def __init__(self, spec: TaskSpec, workers: int = 2, cpus_per_worker: float = 1, gpus_per_worker: float = 0,
                 max_retries: int = 1, address: str | None = None, local_task: Task | None = None,
                 pipeline: int = 2, resources: dict[str, float] | None = None):
        import ray

        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if pipeline < 1:
            raise ValueError(f"pipeline must be >= 1 (calls in flight per worker), got {pipeline}")
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING,
                     log_to_driver=os.environ.get("PBT_EVO_WORKER_LOGS", "0") == "1")
        self.spec = spec
        self.max_retries = max_retries
        self.pipeline = pipeline
        self.progress: Progress | None = None
        self.last_workers: list[int] = []
        self._remote = ray.remote(_Worker).options(
            num_cpus=cpus_per_worker, num_gpus=gpus_per_worker, max_restarts=0, scheduling_strategy="SPREAD",
            resources=dict(resources or {}))
        self._threads = max(1, int(cpus_per_worker))
        self.actors = [self._spawn() for _ in range(workers)]
        # bound method handles, built once: `.options()` per call costs driver time for nothing
        self._calls = [a.run.options(num_returns=2) for a in self.actors]
        self._local_task = local_task  # for cost estimates in the driver, if given

    def _spawn(self):
        return self._remote.remote(self.spec, self._threads)

    def _respawn(self, w: int) -> None:
        self.actors[w] = self._spawn()
        self._calls[w] = self.actors[w].run.options(num_returns=2)

    def _costs(self, items: list[Any]) -> list[float]:
        """Expected cost per item: its last measured training time (children inherit their base
        parent's), else the task's estimate, else equal."""
        measured = [getattr(it, "metrics", {}).get("train_seconds") for it in items]
        if all(m is not None for m in measured):
            return [float(m) for m in measured]
        task = self._local_task
        if task is None or not all(isinstance(it, list) for it in items):
            return [1.0] * len(items)
        return [float(task.cost(list(it))) for it in items]

    def __call__(self, func: Callable[[Any], Any], iterable: Iterable[Any]) -> list[Any]:
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        items = list(iterable)
        costs = self._costs(items)
        queue = deque(sorted(range(len(items)), key=lambda i: -costs[i]))
        results: list[Any] = [None] * len(items)
        self.last_workers = [-1] * len(items)
        tried: dict[int, set[int]] = {i: set() for i in range(len(items))}
        n_workers = len(self.actors)
        inflight = [0] * n_workers       # calls queued or running per worker
        queued = [0.0] * n_workers       # their expected cost (what the worker still has to do)
        pending: dict[Any, tuple[int, int, Any, Any]] = {}
        while queue or pending:
            while queue:
                pick = self._pick(queue, inflight, queued, tried)
                if pick is None:
                    break  # every worker is full, or the item waits for a worker it has not failed on
                i, w = pick
                res_ref, state_ref = self._calls[w].remote(func, items[i])
                pending[res_ref] = (i, w, state_ref, self.actors[w])
                inflight[w] += 1
                queued[w] += costs[i]
            if not pending:  # only reachable if no worker can take an item: should not happen
                raise RuntimeError("RayMap: items left but no worker can take them")
            done, _ = ray.wait(list(pending), num_returns=1)
            i, w, state_ref, actor = pending.pop(done[0])
            inflight[w] -= 1
            queued[w] = max(0.0, queued[w] - costs[i]) if inflight[w] else 0.0
            try:
                res = ray.get(done[0])
            except (RayTaskError, RayActorError) as exc:
                if isinstance(exc, RayActorError) and self.actors[w] is actor:
                    log.warning("worker %d died; starting a new one", w)
                    self._respawn(w)
                tried[i].add(w)
                if len(tried[i]) <= self.max_retries:
                    log.warning("member %s failed on worker %d, retrying elsewhere: %s",
                                getattr(items[i], "id", i), w, str(exc).strip().splitlines()[-1])
                    queue.appendleft(i)
                else:
                    results[i] = _failed(str(exc))
                    if self.progress:
                        self.progress(i, results[i])
                continue
            if isinstance(res, TrainResult):
                res.state = StoredState(state_ref)
            results[i] = res
            self.last_workers[i] = w
            if self.progress:
                self.progress(i, res)
        return results

    def _pick(self, queue: deque, inflight: list[int], queued: list[float],
              tried: dict[int, set[int]]) -> tuple[int, int] | None:
        """The next item (queue order: costliest first, retries at the front) and the worker to run it:
        among workers with room in their pipeline and on which the item has not failed, the one with
        the least work queued (an idle worker first). An item that failed on every worker may run
        anywhere. ``None`` when nothing can be dispatched now."""
        n = len(inflight)
        # a queued call commits an item to a worker before it is known which worker frees first; that
        # is cheap while big items remain, but the last n items (the smallest) go only to idle workers
        # so that the tail of the generation is balanced on measured, not estimated, finish times
        depth = self.pipeline if len(queue) > n else 1
        for i in queue:
            allowed = [w for w in range(n) if inflight[w] < depth
                       and (w not in tried[i] or len(tried[i]) >= n)]
            if allowed:
                w = min(allowed, key=lambda w: (inflight[w] > 0, queued[w], inflight[w]))
                queue.remove(i)
                return i, w
            if any(w not in tried[i] for w in range(n)):
                continue  # a worker it may run on is busy: let items behind it go meanwhile
        return None

    def nodes(self) -> list[str]:
        """The Ray node id of each worker."""
        import ray

        return ray.get([a.node.remote() for a in self.actors])

    def close(self) -> None:
        import ray

        for a in self.actors:
            ray.kill(a)
        self.actors = []
        self._calls = []
