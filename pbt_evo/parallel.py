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
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch

from .handles import StoredState, TrainResult, WeightHandle, capture, restore
from .task import Task, TaskSpec
from .train import set_task

log = logging.getLogger(__name__)
Progress = Callable[[int, Any], None]


def _failed(error: str) -> TrainResult:
    """A member that failed every attempt: worst fitness, its previous state kept by the loop."""
    return TrainResult(fitness=float("nan"), failed=True, error=error, metrics={"failed": 1.0})


def _unique(items: list[Any]) -> list[bool]:
    """Which items occur once (by identity) in ``items``."""
    counts = Counter(map(id, items))
    return [counts[id(it)] == 1 for it in items]


def _hand_over(item: Any, res: Any, unique: bool) -> None:
    """Give a trained individual its new state as soon as it exists (the loop would at the end of the
    map), so its previous state is freed now, not at the generation's end: the object store then holds
    about one state per member during a generation instead of two. Only on success (a failed member
    keeps its previous state) and only for an item that occurs once in the map's input (a repeated
    item not yet sent must still be sent from its old state). Whoever else refers to the old state (a
    hall of fame, a child's recipe) keeps it alive."""
    if unique and isinstance(res, TrainResult) and not res.failed and isinstance(getattr(item, "handle", None),
                                                                                WeightHandle):
        item.handle = res.state


class SerialMap:
    """Runs everything in this process, with the same semantics as :class:`RayMap` (for tests, debugging).

    >>> # toolbox.map = SerialMap(DigitsTask(), num_threads=1)
    """

    def __init__(self, task: Task, num_threads: int | None = None, max_retries: int = 1):
        self.task = task
        self.num_threads = num_threads
        self.max_retries = max_retries
        self.progress: Progress | None = None
        self.scope = uuid.uuid4().hex
        set_task(task, self.scope)

    def __call__(self, func: Callable[[Any], Any], iterable: Iterable[Any]) -> list[Any]:
        set_task(self.task, self.scope)
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
        items = list(iterable)
        unique = _unique(items)
        for i, item in enumerate(items):
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
            _hand_over(item, res, unique[i])
            results.append(res)
            if self.progress:
                self.progress(i, res)
        return results

    def close(self) -> None:
        self.task.close()
        set_task(None)


class _Kept(WeightHandle):
    """Inside a worker: the item's handle, or the live member that already is its state; records the
    member that ``func`` trains so the worker can keep it."""

    def __init__(self, inner: WeightHandle, cached: Any, sink: list[Any]):
        self.inner, self.cached, self.sink = inner, cached, sink

    def materialise(self, task: Task, genome: Any) -> Any:
        member = self.cached if self.cached is not None else self.inner.materialise(task, genome)
        self.sink.append(member)
        return member

    def __getattr__(self, name: str) -> Any:  # code that inspects the handle sees the real one
        inner = self.__dict__.get("inner")
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)


class _Worker:
    """A Ray actor holding one task (wrapped by ``ray.remote`` in :class:`RayMap`)."""

    def __init__(self, spec: TaskSpec, num_threads: int, reuse_members: bool | None = None,
                 scope: str | None = None):
        torch.set_num_threads(max(1, num_threads))
        self.task = spec.build()
        set_task(self.task, scope)
        self._keep_members = bool(getattr(self.task, "reuse_members", False) if reuse_members is None
                                  else reuse_members)
        self._live: dict[int, Any] = {}  # token -> member trained here, state identical to a stored one
        self._timeline: deque = deque(maxlen=100_000)  # (start, end) wall clock of each call, for profiling
        self._warm_up()

    def _warm_up(self) -> None:
        """Pay the one-time costs (lazy imports of optimizers and state handling) before the first
        member, so they do not land in the first generation's wall time."""
        member = self.task.build([0] * len(self.task.space))
        restore(member, capture(member))

    def run(self, func: Callable[[Any], Any], item: Any, use: int | None = None, keep: int | None = None,
            live: tuple[int, ...] | None = None) -> tuple[tuple[Any, bool], Any]:
        """``func(item)``; returns ``((result, kept), state)``, the state as a separate return value so
        that it goes to the object store without passing through the driver.

        Live members (tasks with ``reuse_members = True``): ``use`` names a member this worker trained
        before and still holds, whose state is exactly the item's stored state; it is continued instead
        of building a new member and loading that state (saves the build, the ``load_state_dict`` and
        the optimizer reload: ~5-10 ms a member on digits/W1). ``keep`` is the name to keep the member
        just trained under; ``live`` (sent with a generation's first call) lists the names still worth
        keeping, everything else is dropped so a worker holds at most its share of the population.
        """
        start = time.time()
        if live is not None:
            for token in [t for t in self._live if t not in live]:
                del self._live[token]
        cached = self._live.pop(use, None) if use is not None else None
        sink: list[Any] = []
        handle = getattr(item, "handle", None)
        if self._keep_members and isinstance(handle, WeightHandle):
            # a continued member must be exactly the stored state: only for plain stored states (a
            # child's recipe always materialises from its parents' states)
            item.handle = _Kept(handle, cached if isinstance(handle, StoredState) else None, sink)
        try:
            res = func(item)
        finally:
            if sink or isinstance(getattr(item, "handle", None), _Kept):
                item.handle = handle  # a function that returns the item must not return the wrapper
        if isinstance(res, TrainResult):
            state, res.state = res.state, None
            kept = bool(self._keep_members and keep is not None and sink and not res.failed)
            if kept:
                self._live[keep] = sink[-1]
            self._timeline.append((start, time.time()))
            return (res, kept), state
        self._timeline.append((start, time.time()))
        return (res, False), None

    def live_bytes(self) -> int:
        """Bytes of tensors held by the live members this worker keeps (model and optimizer state)."""
        total = 0
        for member in self._live.values():
            tensors = list(member.model.state_dict().values())
            for opt in getattr(member, "optimizers", {}).values():
                tensors += [v for st in opt.state.values() for v in st.values() if isinstance(v, torch.Tensor)]
            total += sum(t.numel() * t.element_size() for t in tensors)
        return total

    def timeline(self) -> list[tuple[float, float]]:
        """``(start, end)`` wall-clock times of the calls so far (``time.time()``), then forgets them:
        gaps between calls are time the worker spent waiting for the driver or in Ray."""
        out = list(self._timeline)
        self._timeline.clear()
        return out

    def cost(self, item: Any) -> float:
        return float(self.task.cost(list(item)))

    def node(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()

    def close(self) -> None:
        """Let the task release what it holds (before the actor is killed, which runs no cleanup)."""
        self.task.close()


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

    Live members (why): rebuilding a member and loading its state costs ~5-10 ms on small tasks (2-3%
    of a digits epoch). A task that sets ``reuse_members = True`` declares that its members carry no
    state besides ``model``, ``optimizers`` and extras (the contract of :class:`~pbt_evo.task.Member`,
    made explicit because e.g. an RL member's environment would continue mid-episode; ``reuse_members``
    overrides it); then each worker
    keeps the members it trained, and a member that trains again on the same worker (the scheduler
    prefers that, except in a generation's tail) continues in memory. Results are bit for bit those of
    rebuilding (tested: serial map == Ray map); the price is one extra copy of a survivor's state in
    its worker between generations (states in the store are still the source of truth for children,
    retries and checkpoints).

    ``last_workers`` holds, after each call, the index of the worker that produced each result (``-1``
    for failed items); :meth:`nodes` maps worker indices to Ray node ids.

    >>> # toolbox.map = RayMap(TaskSpec("tasks.digits:DigitsTask"), workers=2)
    """

    def __init__(self, spec: TaskSpec, workers: int = 2, cpus_per_worker: float = 1, gpus_per_worker: float = 0,
                 max_retries: int = 1, address: str | None = None, local_task: Task | None = None,
                 pipeline: int = 2, resources: dict[str, float] | None = None,
                 reuse_members: bool | None = None):
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
        self.reuse_members = reuse_members
        self.progress: Progress | None = None
        self.last_workers: list[int] = []
        self._remote = ray.remote(_Worker).options(
            num_cpus=cpus_per_worker, num_gpus=gpus_per_worker, max_restarts=0, scheduling_strategy="SPREAD",
            resources=dict(resources or {}))
        self._threads = max(1, int(cpus_per_worker))
        self.scope = uuid.uuid4().hex  # names this run's per-node services (pbt_evo.train.current_scope)
        self.actors = [self._spawn() for _ in range(workers)]
        # bound method handles, built once: `.options()` per call costs driver time for nothing
        self._calls = [a.run.options(num_returns=2) for a in self.actors]
        self._local_task = local_task  # for cost estimates in the driver, if given
        # per-node services of the task (a shared replay buffer), owned by the driver for the map's life
        self._services: list[Any] = []
        if local_task is not None:
            for node in sorted(set(self.nodes())):
                self._services += list(local_task.node_services(self.scope, node))
        self._homes: dict[bytes, tuple[int, int]] = {}  # stored state -> (worker, token) of its live member
        self._token = 0

    def _spawn(self):
        return self._remote.remote(self.spec, self._threads, self.reuse_members, self.scope)

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
        unique = _unique(items)
        costs = self._costs(items)
        queue = deque(sorted(range(len(items)), key=lambda i: -costs[i]))
        results: list[Any] = [None] * len(items)
        self.last_workers = [-1] * len(items)
        tried: dict[int, set[int]] = {i: set() for i in range(len(items))}
        n_workers = len(self.actors)
        home = self._homes_of(items)     # (worker, token) holding each item's live member, if any
        live_sent = [False] * n_workers  # whether this call told the worker which members to keep
        inflight = [0] * n_workers       # calls queued or running per worker
        queued = [0.0] * n_workers       # their expected cost (what the worker still has to do)
        pending: dict[Any, tuple[int, int, Any, Any, int]] = {}
        while queue or pending:
            while queue:
                pick = self._pick(queue, inflight, queued, tried, home)
                if pick is None:
                    break  # every worker is full, or the item waits for a worker it has not failed on
                i, w = pick
                use = home[i][1] if home[i] is not None and home[i][0] == w else None
                live = None
                if not live_sent[w]:
                    live = tuple(h[1] for h in home if h is not None and h[0] == w)
                    live_sent[w] = True
                self._token += 1
                res_ref, state_ref = self._calls[w].remote(func, items[i], use, self._token, live)
                pending[res_ref] = (i, w, state_ref, self.actors[w], self._token)
                inflight[w] += 1
                queued[w] += costs[i]
            if not pending:  # only reachable if no worker can take an item: should not happen
                raise RuntimeError("RayMap: items left but no worker can take them")
            done, _ = ray.wait(list(pending), num_returns=1)
            i, w, state_ref, actor, token = pending.pop(done[0])
            inflight[w] -= 1
            queued[w] = max(0.0, queued[w] - costs[i]) if inflight[w] else 0.0
            try:
                res, kept = ray.get(done[0])
            except (RayTaskError, RayActorError) as exc:
                if isinstance(exc, RayActorError) and self.actors[w] is actor:
                    log.warning("worker %d died; starting a new one", w)
                    self._respawn(w)
                    home = [None if h is not None and h[0] == w else h for h in home]
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
                if kept:
                    self._homes[state_ref.binary()] = (w, token)
            _hand_over(items[i], res, unique[i])
            results[i] = res
            self.last_workers[i] = w
            if self.progress:
                self.progress(i, res)
        return results

    def _homes_of(self, items: list[Any]) -> list[tuple[int, int] | None]:
        """For each item whose handle is a stored state some worker still holds as a live member, that
        (worker, token); forgets every other live member (their states are superseded)."""
        homes: list[tuple[int, int] | None] = []
        current: dict[bytes, tuple[int, int]] = {}
        for it in items:
            handle = getattr(it, "handle", None)
            ref = getattr(handle, "ref", None) if isinstance(handle, StoredState) else None
            key = ref.binary() if hasattr(ref, "binary") else None
            h = self._homes.get(key) if key is not None else None
            if h is not None and key in current:
                h = None  # two items share one state (a clone): only one can continue the live member
            homes.append(h)
            if h is not None:
                current[key] = h
        self._homes = current
        return homes

    def _pick(self, queue: deque, inflight: list[int], queued: list[float], tried: dict[int, set[int]],
              home: list[tuple[int, int] | None]) -> tuple[int, int] | None:
        """The next item (queue order: costliest first, retries at the front) and the worker to run it:
        among workers with room in their pipeline and on which the item has not failed, the one with
        the least work queued (an idle worker first). An item that failed on every worker may run
        anywhere. ``None`` when nothing can be dispatched now.

        Affinity: the chosen worker takes, instead of the head item, one of the next few (similar in
        cost, as the queue is sorted) whose live member it holds, so that member continues without
        being rebuilt; never in the tail (the last ``n`` items), where balance matters more."""
        n = len(inflight)
        # a queued call commits an item to a worker before it is known which worker frees first; that
        # is cheap while big items remain, but the last n items (the smallest) go only to idle workers
        # so that the tail of the generation is balanced on measured, not estimated, finish times
        depth = self.pipeline if len(queue) > n else 1
        order = list(queue)
        for pos, i in enumerate(order):
            allowed = [w for w in range(n) if inflight[w] < depth
                       and (w not in tried[i] or len(tried[i]) >= n)]
            if allowed:
                w = min(allowed, key=lambda w: (inflight[w] > 0, queued[w], inflight[w]))
                if len(queue) > n and not (home[i] is not None and home[i][0] == w):
                    for j in order[pos + 1:pos + n]:
                        if home[j] is not None and home[j][0] == w and w not in tried[j]:
                            i = j
                            break
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

        # each worker releases what its task holds; a dead or busy one must not stop the others
        closing = [a.close.remote() for a in self.actors]
        _, pending = ray.wait(closing, num_returns=len(closing), timeout=60)
        if pending:
            log.warning("%d worker(s) did not close within 60 s", len(pending))
        for a in self.actors:
            ray.kill(a)
        self._services = []
        self.actors = []
        self._calls = []
