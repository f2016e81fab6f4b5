"""Maps that train a population: ``toolbox.map = RayMap(spec, workers=2)`` or ``SerialMap(task)``.

Both follow DEAP's ``map(func, iterable)`` contract and return results in input order. When ``func``
returns a :class:`~pbt_evo.handles.TrainResult`, its state is replaced by a
:class:`~pbt_evo.handles.StoredState` handle: with Ray, an ``ObjectRef`` to a task return value, which
lives in the object store of the node that trained it and is owned by the driver (it survives the
worker), so the driver never pulls weights.

RayMap: persistent actors that build the task once (torch threads = CPUs per worker); items are
dispatched dynamically, costliest first (``task.cost``), to whichever worker is free; an item whose
function raises is retried on another worker, then returned as a failed result carrying the input's
handle (no work lost, fitness worst) without ending the run.
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

    >>> # toolbox.map = RayMap(TaskSpec("tasks.digits:DigitsTask"), workers=2)
    """

    def __init__(self, spec: TaskSpec, workers: int = 2, cpus_per_worker: float = 1, gpus_per_worker: float = 0,
                 max_retries: int = 1, address: str | None = None, local_task: Task | None = None):
        import ray

        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING,
                     log_to_driver=os.environ.get("PBT_EVO_WORKER_LOGS", "0") == "1")
        self.spec = spec
        self.max_retries = max_retries
        self.progress: Progress | None = None
        self._remote = ray.remote(_Worker).options(
            num_cpus=cpus_per_worker, num_gpus=gpus_per_worker, max_restarts=0, scheduling_strategy="SPREAD")
        self._threads = max(1, int(cpus_per_worker))
        self.actors = [self._spawn() for _ in range(workers)]
        self._local_task = local_task  # for cost estimates in the driver, if given

    def _spawn(self):
        return self._remote.remote(self.spec, self._threads)

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
        tried: dict[int, set[int]] = {i: set() for i in range(len(items))}
        free = deque(range(len(self.actors)))
        pending: dict[Any, tuple[int, int, Any]] = {}
        while queue or pending:
            while queue and free:
                pick = self._pick(queue, free, tried)
                if pick is None:
                    if pending:
                        break  # wait for a worker this item has not failed on
                    pick = queue.popleft(), free.popleft()
                i, w = pick
                res_ref, state_ref = self.actors[w].run.options(num_returns=2).remote(func, items[i])
                pending[res_ref] = (i, w, state_ref)
            done, _ = ray.wait(list(pending), num_returns=1)
            i, w, state_ref = pending.pop(done[0])
            try:
                res = ray.get(done[0])
            except (RayTaskError, RayActorError) as exc:
                if isinstance(exc, RayActorError):
                    log.warning("worker %d died; starting a new one", w)
                    self.actors[w] = self._spawn()
                tried[i].add(w)
                if len(tried[i]) <= self.max_retries:
                    log.warning("member %s failed on worker %d, retrying elsewhere: %s",
                                getattr(items[i], "id", i), w, str(exc).strip().splitlines()[-1])
                    queue.appendleft(i)
                else:
                    results[i] = _failed(str(exc))
                    if self.progress:
                        self.progress(i, results[i])
                free.append(w)
                continue
            if isinstance(res, TrainResult):
                res.state = StoredState(state_ref)
            results[i] = res
            free.append(w)
            if self.progress:
                self.progress(i, res)
        return results

    def _pick(self, queue: deque, free: deque, tried: dict[int, set[int]]) -> tuple[int, int] | None:
        """The next item and a free worker it has not failed on (any worker once it failed on all)."""
        for i in queue:
            untried = [w for w in free if w not in tried[i]]
            if untried or len(tried[i]) >= len(self.actors):
                w = untried[0] if untried else free[0]
                queue.remove(i)
                free.remove(w)
                return i, w
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
