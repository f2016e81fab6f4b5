"""Maps that train a population: ``toolbox.map = RayMap(spec, workers=2)`` or ``SerialMap(task)``.

Both follow DEAP's ``map(func, iterable)`` contract and return results in input order. When ``func``
returns a :class:`~pbt_evo.handles.TrainResult`, its state is replaced by a
:class:`~pbt_evo.handles.StoredState` handle, so the driver never pulls weights. With Ray every state is a
task return value in the object store, owned by the driver (it survives the worker); with
``hold_states=True`` it stays in the worker that trained it (:class:`HeldRef`), which puts it in its
node's object store only when it is read elsewhere (a child on another worker, a checkpoint, the driver).

RayMap: persistent actors that build the task once (torch threads = CPUs per worker); items are
dispatched costliest first (last measured training time, else ``task.cost``), each to the worker with
the least work queued, with ``pipeline`` calls in flight per worker so that no worker waits for the
driver between members; an item whose function raises is retried on another worker, then returned as a
failed result carrying the input's handle (no work lost, fitness worst) without ending the run.
"""

from __future__ import annotations

import copy
import logging
import os
import time
import traceback
import uuid
import weakref
from collections import Counter, deque
from collections.abc import Callable, Container, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import torch

from .handles import StoredState, TrainResult, WeightHandle, capture, kept_rng, restore
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


_HELD: dict[str, dict[int, Any]] = {}  # in a worker: map scope -> {token: a state it trained and holds}


def _nbytes(x: Any) -> int:
    """Bytes of the arrays and tensors in a (nested) state.

    >>> _nbytes({"w": np.zeros(3), "opt": [torch.zeros(2)]})
    32
    """
    if isinstance(x, dict):
        return sum(_nbytes(v) for v in x.values())
    if isinstance(x, (list, tuple)):
        return sum(_nbytes(v) for v in x)
    if isinstance(x, torch.Tensor):
        return x.numel() * x.element_size()
    return int(getattr(x, "nbytes", 0))


class LostStateError(RuntimeError):
    """A held state that cannot be read any more: the worker that held it died. ``key``: the state's id
    (:attr:`HeldRef.key`), so that the map learns which state a failed call could not read.

    >>> LostStateError("gone", b"held:run:0:7").key
    b'held:run:0:7'
    """

    def __init__(self, message: str, key: bytes | None = None):
        super().__init__(message, key)  # both in args: the error crosses process boundaries pickled

    @property
    def key(self) -> bytes | None:
        return self.args[1] if len(self.args) > 1 else None

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class HeldRef:
    """A trained state that stays in the heap of the Ray worker that made it (``RayMap(hold_states=True)``),
    as ``StoredState(HeldRef(...)).ref``. Why: storing every member's state in the object store after
    every generation costs a copy and ~1.5 ms of Ray's time per call, yet a state is read elsewhere only
    when it is a parent, enters a checkpoint, or is loaded in the driver. Then the driver has the worker
    *export* it into the object store (from a separate thread of the worker, so not behind its training;
    for a call, until that call is done; for a read in the driver, for that read only); the worker that
    holds it reads it in place. The worker drops it when the driver no longer refers to it. A state held
    by a worker that died is lost: a member that needs it fails (and :func:`~pbt_evo.algorithms.ea_pbt`
    replaces it by a child of the best, see :meth:`RayMap.lost`), and reading it in the driver (a
    checkpoint) raises :class:`LostStateError` (``pbt_evo.run`` then stops and says how to resume from
    the last checkpoint). ``hold_states=False`` (the default) stores every state in the object store.

    Copies of a ref (``copy``, ``deepcopy``: DEAP's ``clone``, a hall of fame) are the ref itself.

    >>> ref = HeldRef("run", worker=0, incarnation=0, token=7)
    >>> copy.deepcopy(ref) is ref, ref.key
    (True, b'held:run:0:7')
    """

    __slots__ = ("scope", "worker", "incarnation", "token", "stored", "_export", "__weakref__")

    def __init__(self, scope: str, worker: int, incarnation: int, token: int, stored: Any = None,
                 export: Callable[["HeldRef"], Any] | None = None):
        self.scope, self.worker, self.incarnation, self.token = scope, worker, incarnation, token
        self.stored = stored    # ObjectRef of its export, once exported
        self._export = export   # in the driver: asks the holding worker to export it

    @property
    def key(self) -> bytes:
        return f"held:{self.scope}:{self.incarnation}:{self.token}".encode()

    def _export_now(self) -> Any:
        if self._export is None:
            raise RuntimeError(f"state {self.token} is held by worker {self.worker} and was not exported;"
                               " only the driver that runs the map can export it")
        return self._export(self)

    def exported(self) -> Any:
        """The ObjectRef of this state in the object store, exporting it first if needed (driver only)."""
        if self.stored is None:
            self.stored = self._export_now()
        return self.stored

    def resolve(self) -> Any:
        """The state: in place in the worker that holds it, else from its export (in the driver, a read
        exports it for this read only: a checkpoint must not leave a second copy of every state)."""
        held = _HELD.get(self.scope, {}).get(self.token)
        if held is not None:
            return held
        import ray

        ref = self.stored if self.stored is not None else self._export_now()
        try:
            return ray.get(ref)
        except ray.exceptions.RayError as exc:
            # lost: its worker died (before or during the export), or a restarted worker no longer holds it;
            # any other failure (a full object store, ...) says nothing about the state
            gone = isinstance(exc, (ray.exceptions.RayActorError, ray.exceptions.ObjectLostError)) or isinstance(
                getattr(exc, "cause", None), KeyError)
            if not gone:
                raise
            raise LostStateError(
                f"the state of a member (token {self.token}), held by Ray worker {self.worker}, is lost:"
                f" {str(exc).strip().splitlines()[-1]}. A worker that dies takes the states it held"
                " (RayMap(hold_states=True), config parallel.hold_states: true); set it to false to store"
                " every state in the object store", self.key) from exc

    def __reduce__(self) -> tuple:
        return HeldRef, (self.scope, self.worker, self.incarnation, self.token, self.stored)

    def __copy__(self) -> "HeldRef":
        return self

    def __deepcopy__(self, memo: dict) -> "HeldRef":
        return self

    def __repr__(self) -> str:
        return f"HeldRef(worker={self.worker}, token={self.token}, exported={self.stored is not None})"


def _read_only(x: Any) -> Any:
    """``x`` with its numpy arrays made read-only, as states read from the object store are: a member
    materialised from a held state in place cannot write into it (a task's ``load_extras`` that keeps
    an array fails loudly, as with a stored state, instead of changing a parent's state).

    >>> _read_only({"w": np.zeros(2)})["w"].flags.writeable
    False
    """
    if isinstance(x, np.ndarray):
        x.flags.writeable = False
    elif isinstance(x, dict):
        for v in x.values():
            _read_only(v)
    elif isinstance(x, (list, tuple)):
        for v in x:
            _read_only(v)
    return x


def _held_refs(handle: Any) -> Iterator[HeldRef]:
    """The held states a handle reads: a stored state's, or a child recipe's parents'."""
    if isinstance(handle, StoredState):
        if isinstance(handle.ref, HeldRef):
            yield handle.ref
    elif handle is not None:
        for part in (getattr(handle, "base", None), getattr(handle, "donor", None)):
            yield from _held_refs(part)


def _state_key(handle: Any) -> bytes | None:
    """The id of a stored state in the object store or a worker (what live members and trained-on
    records are keyed by)."""
    ref = getattr(handle, "ref", None) if isinstance(handle, StoredState) else None
    if isinstance(ref, HeldRef):
        return ref.key
    return ref.binary() if hasattr(ref, "binary") else None


def _claim(done: dict[int, Any], among: Container[int] | None) -> int | None:
    """A ticket of ``among`` (any, if None) whose result already waits in ``done``."""
    return next((t for t in done if among is None or t in among), None)


def stored_locally(res: Any) -> Any:
    """``res`` with a state returned in this process (a dict) wrapped as a :class:`StoredState`."""
    if isinstance(res, TrainResult) and not res.failed and not isinstance(res.state, WeightHandle):
        res.state = StoredState(res.state)
    return res


def map_by_stream(stream: Any, func: Callable[[Any], Any], items: list[Any],
                  costs: list[float] | None = None) -> list[Any]:
    """DEAP's ``map(func, items)`` over a map's ``submit``/``wait``: results in input order, each item
    handed its new state on arrival, ``stream.progress(index, result)`` called as results arrive. Other
    calls still out (a loop's early starts, when a hook maps) are left alone."""
    unique = _unique(items)
    tickets = {stream.submit(func, it, None if costs is None else costs[i]): i for i, it in enumerate(items)}
    results: list[Any] = [None] * len(items)
    where = [-1] * len(items)
    progress = getattr(stream, "progress", None)
    try:
        while tickets:
            ticket, res = stream.wait(among=tickets)
            i = tickets.pop(ticket)
            _hand_over(items[i], res, unique[i])
            results[i], where[i] = res, getattr(stream, "last_worker", -1)
            if progress:
                progress(i, res)
    except BaseException:  # interrupted: forget this call's items, so the map can be called again
        stream.discard(list(tickets))
        raise
    if hasattr(stream, "last_workers"):
        stream.last_workers = where
    return results


class _Submitted:
    """Calls queued in this process, first in first out (the serial map, plain DEAP maps)."""

    def __init__(self) -> None:
        self._queue: deque = deque()  # (ticket, func, item)
        self._done: dict[int, Any] = {}  # results that arrived while ``wait`` looked for other tickets
        self._tickets = 0

    def submit(self, func: Callable[[Any], Any], item: Any, cost: float | None = None, order: int = 0) -> int:
        """Queue ``func(item)``; it runs in ``wait`` (``cost`` and ``order`` are ignored: queue order)."""
        self._tickets += 1
        self._queue.append((self._tickets, func, item))
        return self._tickets

    def discard(self, tickets: Iterable[int] | None = None) -> None:
        """Forget queued calls and unclaimed results: ``tickets``, else all (after an interrupted loop)."""
        drop = None if tickets is None else set(tickets)
        self._queue = deque(q for q in self._queue if drop is not None and q[0] not in drop)
        self._done = {t: r for t, r in self._done.items() if drop is not None and t not in drop}


class SerialMap(_Submitted):
    """Runs everything in this process, with the same semantics as :class:`RayMap` (for tests, debugging).

    Like :class:`RayMap` it is both a DEAP map and a stream: ``submit(func, item)`` queues a call and
    returns a ticket, ``wait()`` runs the oldest queued call and returns ``(ticket, result)``.

    >>> # toolbox.map = SerialMap(DigitsTask(), num_threads=1)
    """

    def __init__(self, task: Task, num_threads: int | None = None, max_retries: int = 1):
        self.task = task
        self.num_threads = num_threads
        self.max_retries = max_retries
        self.progress: Progress | None = None
        self.scope = uuid.uuid4().hex
        super().__init__()
        set_task(task, self.scope)

    def __call__(self, func: Callable[[Any], Any], iterable: Iterable[Any]) -> list[Any]:
        return map_by_stream(self, func, list(iterable))

    def wait(self, among: Container[int] | None = None) -> tuple[int, Any]:
        """Run queued calls, oldest first, until one of ``among`` (default: any) is done:
        ``(ticket, result)``. Results of other calls are kept for a later ``wait``."""
        ticket = _claim(self._done, among)
        if ticket is not None:
            return ticket, self._done.pop(ticket)
        set_task(self.task, self.scope)
        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        while self._queue:
            ticket, func, item = self._queue.popleft()
            with kept_rng():
                res = self._run(func, item)
            if among is None or ticket in among:
                return ticket, res
            self._done[ticket] = res
        raise RuntimeError("SerialMap.wait: nothing submitted")

    def retain(self, handles: Iterable[Any]) -> None:
        """Nothing to forget: members are rebuilt from their states in this process."""

    def _run(self, func: Callable[[Any], Any], item: Any) -> Any:
        for attempt in range(self.max_retries + 1):
            try:
                res = func(item)
                break
            except Exception:  # a member's failure must not end the run
                err = traceback.format_exc()
                log.warning("member %s failed (attempt %d): %s", getattr(item, "id", "?"), attempt + 1,
                            err.strip().splitlines()[-1])
                res = _failed(err)
        return stored_locally(res)

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
    """A Ray actor holding one task (wrapped by ``ray.remote`` in :class:`RayMap`).

    Two threads: training (``run``, ``cost``, ...) and ``export`` (concurrency group ``io``), so that a
    state another worker needs is exported at once rather than after the members queued here. The task
    is built on the training thread, by its first call (some tasks hold thread-bound resources, e.g. a
    GL context for rendering)."""

    def __init__(self, spec: TaskSpec, num_threads: int, reuse_members: bool | None = None,
                 scope: str | None = None, hold_states: bool = False):
        torch.set_num_threads(max(1, num_threads))
        self._spec, self._scope, self._reuse, self._hold = spec, scope or "default", reuse_members, hold_states
        self._held = _HELD.setdefault(self._scope, {})  # token -> state held for the driver (hold_states)
        self.task: Task | None = None
        self._live: dict[int, Any] = {}  # token -> member trained here, state identical to a stored one
        self._continued = 0  # calls that continued a live member instead of building one
        self._timeline: deque = deque(maxlen=100_000)  # (start, end) wall clock of each call, for profiling

    def _ready(self) -> Task:
        """The task, built on first use (on the training thread), then warmed up: pay the one-time
        costs (lazy imports of optimizers and state handling) before the first member, so they do not
        land in the first generation's wall time."""
        if self.task is None:
            task = self._spec.build()
            set_task(task, self._scope)
            self._keep_members = bool(getattr(task, "reuse_members", False) if self._reuse is None
                                      else self._reuse)
            member = task.build([0] * len(task.space))
            restore(member, capture(member))
            self.task = task
        return self.task

    def run(self, func: Callable[[Any], Any], item: Any, use: int | None = None, keep: int | None = None,
            live: tuple[int, ...] | None = None, release: tuple[int, ...] = ()) -> Any:
        """``func(item)``; returns ``((result, kept), state)``, the state as a separate return value so
        that it goes to the object store without passing through the driver; when the worker holds
        states (``hold_states``), only ``(result, kept)``, and the state is kept here under ``keep`` until
        the driver lists it in ``release`` (it may :meth:`export` it meanwhile).

        Live members (tasks with ``reuse_members = True``): ``use`` names a member this worker trained
        before and still holds, whose state is exactly the item's stored state; it is continued instead
        of building a new member and loading that state (saves the build, the ``load_state_dict`` and
        the optimizer reload: ~5-10 ms a member on digits/W1). ``keep`` is the name to keep the member
        just trained under; ``live`` (sent with the first call after the driver's ``retain``, or after a
        member of this worker was sent elsewhere) lists the names still worth keeping; everything else
        is dropped, so a worker holds at most its share of the population.
        """
        self._ready()
        start = time.time()
        self.release(release)
        if live is not None:
            for token in [t for t in self._live if t not in live]:
                del self._live[token]
        cached = self._live.pop(use, None) if use is not None else None
        self._continued += cached is not None
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
        state, kept = None, False
        if isinstance(res, TrainResult):
            state, res.state = res.state, None
            kept = bool(self._keep_members and keep is not None and sink and not res.failed)
            if kept:
                self._live[keep] = sink[-1]
            if self._hold and state is not None and keep is not None and not res.failed:
                # a captured state shares memory with the member's tensors: copy it if the member trains on
                self._held[keep] = _read_only(copy.deepcopy(state) if kept else state)
                state = None
        self._timeline.append((start, time.time()))
        return (res, kept) if self._hold else ((res, kept), state)

    def release(self, tokens: tuple[int, ...]) -> None:
        """Drop held states the driver no longer refers to (runs on the ``io`` thread)."""
        for token in tokens:
            self._held.pop(token, None)

    def export(self, token: int) -> Any:
        """A state this worker holds, into the object store (runs on the ``io`` thread)."""
        state = self._held.get(token)
        if state is None:
            raise KeyError(f"worker does not hold state {token}: it was released, or this worker was restarted"
                           " after the one that trained it died (its states are lost)")
        return state

    def held_bytes(self) -> int:
        """Bytes of the states this worker holds for the driver (``hold_states``)."""
        return _nbytes(list(self._held.values()))

    def live_bytes(self) -> int:
        """Bytes of tensors held by the live members this worker keeps (model and optimizer state)."""
        return sum(_nbytes([member.model.state_dict()] + [list(opt.state.values())
                                                          for opt in getattr(member, "optimizers", {}).values()])
                   for member in self._live.values())

    def live_stats(self) -> dict[str, int]:
        """Live members held now, calls so far that continued one (instead of building a member), and
        states held for the driver (``hold_states``)."""
        return {"held": len(self._live), "continued": self._continued,
                "states": len(self._held)}

    def timeline(self) -> list[tuple[float, float]]:
        """``(start, end)`` wall-clock times of the calls so far (``time.time()``), then forgets them:
        gaps between calls are time the worker spent waiting for the driver or in Ray."""
        out = list(self._timeline)
        self._timeline.clear()
        return out

    def cost(self, item: Any) -> float:
        return float(self._ready().cost(list(item)))

    def node(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()

    def close(self) -> None:
        """Let the task release what it holds (before the actor is killed, which runs no cleanup)."""
        self._held.clear()
        if self.task is not None:
            self.task.close()


class _Calls(NamedTuple):
    """A worker's bound methods: training calls, and exports and releases on its ``io`` thread."""

    run: Any
    export: Any
    release: Any


@dataclass(eq=False)
class _Job:
    """A submitted call of :class:`RayMap`, from ``submit`` until ``wait`` returns it."""

    func: Callable[[Any], Any]
    item: Any
    cost: float                       # expected training time: the scheduler's weight
    home: tuple[int, int] | None      # (worker, token) of the live member it would continue
    key: bytes | None = None          # its stored state's id when submitted
    order: int = 0                    # dispatch rank before cost (a loop's generation)
    tried: set[int] = field(default_factory=set)  # workers it failed on
    worker: int = -1                  # where it runs (-1: queued)
    incarnation: int = 0              # of that worker
    near: int = -1                    # a child's: the worker holding its base parent's state
    exported: list = field(default_factory=list)  # held states exported for it (dropped from the store after)
    token: int = 0                    # the live member (and held state) it leaves there
    state_ref: Any = None
    actor: Any = None


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
    its worker between generations (the held or stored state is the source of truth for children,
    retries and checkpoints).

    Held states (why, opt-in): storing every state in the object store after every call costs a copy and
    ~1.5 ms of Ray's time a call (digits: 0.021 of the workers' time between calls with it, 0.012
    without), yet most states are only ever read by the worker that trained them (a survivor continues
    there). With ``hold_states=True`` a worker keeps each state it trained until the driver drops the
    handle, and exports it into its node's object store (on a second thread, not behind its training)
    only when a child on another worker, a checkpoint or the driver reads it; among equally loaded
    workers, a child goes to the one holding its base parent. :meth:`close` exports the states the
    driver still refers to. The price: a worker that dies takes the states it held (see
    :class:`HeldRef`; the loop replaces the members that lose theirs, :meth:`lost`, and keeps the hall of
    fame in the object store, :meth:`keep`); with the default, a dead worker loses no state. A run that
    checkpoints every generation exports every state anyway, so the gain is for runs that checkpoint
    rarely.

    Stream (why): the same scheduler also takes calls one at a time, ``ticket = submit(func, item)``
    and ``ticket, result = wait()``, so a loop can start a member's next generation while others are
    still training (:func:`~pbt_evo.algorithms.ea_pbt` does for members sure to survive) instead of
    waiting at a barrier. A map call is ``submit`` for every item and ``wait`` until all are back.

    ``last_workers`` holds, after each map call, the index of the worker that produced each result
    (``-1`` for failed items); with ``submit``/``wait`` (the loop), :meth:`worker_of` a state's worker.
    :meth:`nodes` maps worker indices to Ray node ids.

    >>> # toolbox.map = RayMap(TaskSpec("tasks.digits:DigitsTask"), workers=2)
    """

    def __init__(self, spec: TaskSpec, workers: int = 2, cpus_per_worker: float = 1, gpus_per_worker: float = 0,
                 max_retries: int = 1, address: str | None = None, local_task: Task | None = None,
                 pipeline: int = 2, resources: dict[str, float] | None = None,
                 reuse_members: bool | None = None, hold_states: bool = False):
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
        self.hold_states = hold_states
        self.progress: Progress | None = None
        self.last_workers: list[int] = []  # after a map call (not submit/wait): each result's worker, -1: failed
        self.last_worker = -1  # after wait(): the worker of the result it returned (see also worker_of)
        self._remote = ray.remote(concurrency_groups={"io": 1})(_Worker).options(
            num_cpus=cpus_per_worker, num_gpus=gpus_per_worker, max_restarts=0, scheduling_strategy="SPREAD",
            resources=dict(resources or {}))
        self._threads = max(1, int(cpus_per_worker))
        self.scope = uuid.uuid4().hex  # names this run's per-node services (pbt_evo.train.current_scope)
        self._incarnation = [0] * workers  # +1 when a worker is replaced: the states it held are lost
        self.actors = [self._spawn() for _ in range(workers)]
        # bound method handles, built once: `.options()` per call costs driver time for nothing
        self._calls = [self._bind(a) for a in self.actors]
        self._held = weakref.WeakSet()  # held states the driver still refers to (exported on close)
        self._kept = weakref.WeakSet()  # held states whose export stays (keep())
        self._lost: set[bytes] = set()  # held states a call could not read (their worker died)
        self._released: list[tuple[int, int, int]] = []  # (worker, incarnation, token) nobody refers to
        # per worker: (incarnation, token) left by discarded calls, released by its next call (which runs
        # after them; a release on the io thread could come first)
        self._orphans: list[list[tuple[int, int]]] = [[] for _ in range(workers)]
        self._local_task = local_task  # for cost estimates in the driver, if given
        # per-node services of the task (a shared replay buffer), owned by the driver for the map's life
        self._services: list[Any] = []
        if local_task is not None:
            for node in sorted(set(self.nodes())):
                self._services += list(local_task.node_services(self.scope, node))
        self._homes: dict[bytes, tuple[int, int]] = {}  # stored state -> (worker, token) of its live member
        self._trained_on: dict[bytes, int] = {}  # stored state -> worker that made it (current states)
        self._token = 0
        n = len(self.actors)
        self._jobs: dict[int, _Job] = {}       # ticket -> call not yet returned by wait()
        self._queue: list[int] = []            # tickets not dispatched: costliest first, retries in front
        self._pending: dict[Any, int] = {}     # result ref -> ticket of a dispatched call
        self._done: dict[int, tuple[Any, int]] = {}  # ticket -> (result, worker) waiting for its caller
        self._inflight = [0] * n               # calls queued or running per worker
        self._queued = [0.0] * n               # their expected cost (what the worker still has to do)
        self._prune = [False] * n              # tell the worker which live members to keep with its next call
        self._tickets = 0

    def _spawn(self):
        return self._remote.remote(self.spec, self._threads, self.reuse_members, self.scope, self.hold_states)

    def _bind(self, actor: Any) -> _Calls:
        return _Calls(actor.run.options(num_returns=1 if self.hold_states else 2),
                      actor.export.options(concurrency_group="io"), actor.release.options(concurrency_group="io"))

    def _alive(self, ref: HeldRef) -> bool:
        """Whether the worker that holds ``ref`` is the one that trained it (not a replacement)."""
        return ref.incarnation == self._incarnation[ref.worker]

    def _respawn(self, w: int) -> None:
        import ray

        mine = [ref for ref in list(self._held) if ref.worker == w and self._alive(ref)]
        # exports of its states that had not run when it died never will: those states are lost too
        asked = [ref for ref in mine if ref.stored is not None]
        if asked:
            ready, _ = ray.wait([ref.stored for ref in asked], num_returns=len(asked), timeout=0, fetch_local=False)
            done = set(ready)
            self._lost.update(ref.key for ref in asked if ref.stored not in done)
        lost = len(mine) - len(asked)
        if lost:
            log.warning("the states of %d member(s) held by worker %d are lost with it: members that need them"
                        " fail and are replaced by selection (RayMap(hold_states=False) stores every state)",
                        lost, w)
        self._incarnation[w] += 1
        self.actors[w] = self._spawn()
        self._calls[w] = self._bind(self.actors[w])
        self._homes = {k: h for k, h in self._homes.items() if h[0] != w}
        for job in self._jobs.values():
            if job.home is not None and job.home[0] == w:
                job.home = None
        self._prune[w] = False

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
        items = list(iterable)
        self.retain(getattr(it, "handle", None) for it in items)
        try:
            return map_by_stream(self, func, items, self._costs(items))
        finally:
            self.flush()

    def submit(self, func: Callable[[Any], Any], item: Any, cost: float | None = None, order: int = 0) -> int:
        """Queue ``func(item)`` (``item`` is serialized when dispatched, in :meth:`wait`) and return its
        ticket. ``cost``: its expected training time, else :meth:`_costs`' estimate. Calls go out by
        ``order`` (a loop's generation: the current one's members before early starts of the next),
        then costliest first. An item whose state a worker holds as a live member goes to that worker
        if it is free soon enough.

        >>> # ticket = rmap.submit(partial(train_member, epochs=1), individual); ticket, result = rmap.wait()
        """
        self._tickets += 1
        key = _state_key(getattr(item, "handle", None))
        job = _Job(func, item, self._costs([item])[0] if cost is None else float(cost),
                   self._homes.pop(key, None), key=key, order=order)  # one item continues a live member
        base = getattr(getattr(item, "handle", None), "base", None)
        if isinstance(base, StoredState) and isinstance(base.ref, HeldRef) and self._alive(base.ref):
            job.near = base.ref.worker  # read in place there; elsewhere it must be exported first
        self._jobs[self._tickets] = job
        rank = (order, -job.cost)  # after queued items of equal rank (submission order among equals)
        at = next((k for k, t in enumerate(self._queue)
                   if (self._jobs[t].order, -self._jobs[t].cost) > rank), len(self._queue))
        self._queue.insert(at, self._tickets)
        return self._tickets

    def wait(self, among: Container[int] | None = None) -> tuple[int, Any]:
        """Dispatch what fits, then block until a call of ``among`` (default: any) returns:
        ``(ticket, result)``; other results are kept for a later ``wait``. A call whose function raises
        is retried on another worker (``max_retries``), then returned as a failed result."""
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        while True:
            ticket = _claim(self._done, among)
            if ticket is not None:
                res, self.last_worker = self._done.pop(ticket)
                return ticket, res
            self._dispatch()
            if _claim(self._done, among) is not None:
                continue  # a call failed at dispatch (its state was lost)
            self.flush(idle_only=True)  # a busy worker gets its releases with its next call
            if not self._pending:
                raise RuntimeError("RayMap.wait: nothing submitted" if not self._jobs else
                                   "RayMap: items left but no worker can take them")
            done, _ = ray.wait(list(self._pending), num_returns=1)
            ticket = self._pending.pop(done[0])
            job = self._jobs[ticket]
            w = job.worker
            self._inflight[w] -= 1
            self._queued[w] = max(0.0, self._queued[w] - job.cost) if self._inflight[w] else 0.0
            try:
                res, kept = ray.get(done[0])
            except (RayTaskError, RayActorError) as exc:
                cause = getattr(exc, "cause", None)  # the exception the call raised (exc may subclass it too)
                lost = isinstance(cause, LostStateError)
                if lost and cause.key is not None:
                    self._lost.add(cause.key)  # its export failed: it died with its worker
                if isinstance(exc, RayActorError) and self.actors[w] is job.actor:
                    log.warning("worker %d died; starting a new one", w)
                    self._respawn(w)
                job.tried.add(w)
                job.worker, job.token = -1, 0
                if len(job.tried) <= self.max_retries and not lost:  # a lost state is lost everywhere
                    log.warning("member %s failed on worker %d, retrying elsewhere: %s",
                                getattr(job.item, "id", ticket), w, str(exc).strip().splitlines()[-1])
                    self._queue.insert(0, ticket)
                    continue
                del self._jobs[ticket]
                self._drop_exports(job)
                res, w = _failed(str(exc)), -1
            else:
                del self._jobs[ticket]
                self._drop_exports(job)
                if isinstance(res, TrainResult) and not res.failed:
                    res.state = StoredState(self._held_ref(job) if self.hold_states else job.state_ref)
                    key = _state_key(res.state)
                    self._trained_on[key] = w
                    if kept:
                        self._homes[key] = (w, job.token)
            if among is not None and ticket not in among:
                self._done[ticket] = (res, w)
                continue
            self.last_worker = w
            return ticket, res

    def discard(self, tickets: Iterable[int] | None = None) -> None:
        """Forget submitted calls not yet returned by ``wait``: ``tickets``, else all (an interrupted
        loop). Calls already running finish in their workers; their results are dropped."""
        drop = set(self._jobs) | set(self._done) if tickets is None else set(tickets)
        for ticket in drop & set(self._jobs):
            job = self._jobs.pop(ticket)
            if ticket in self._queue:
                self._queue.remove(ticket)
            elif job.worker >= 0:
                self._inflight[job.worker] -= 1
                self._queued[job.worker] = max(0.0, self._queued[job.worker] - job.cost)
                if self.hold_states:  # the state it will leave there has no handle: drop it after the call
                    self._orphans[job.worker].append((job.incarnation, job.token))
            self._drop_exports(job)
        self._pending = {ref: t for ref, t in self._pending.items() if t not in drop}
        self._done = {t: r for t, r in self._done.items() if t not in drop}

    def _dispatch(self) -> None:
        """Send queued calls to workers while they have room (see :meth:`_pick`)."""
        while self._queue:
            pick = self._pick()
            if pick is None:
                return  # every worker is full, or the item waits for a worker it has not failed on
            ticket, w = pick
            job = self._jobs[ticket]
            if self.hold_states and self.lost(getattr(job.item, "handle", None)):  # no call can read it
                del self._jobs[ticket]
                self._done[ticket] = (_failed("the state this member trains from was lost with the worker that"
                                              " held it (RayMap(hold_states=True))"), -1)
                continue
            # continue a live member only if the item still has the state it was submitted with
            same = _state_key(getattr(job.item, "handle", None)) == job.key
            use = job.home[1] if job.home is not None and job.home[0] == w and same else None
            if job.home is not None and use is None:
                self._prune[job.home[0]] = True  # that live member is superseded: drop it with the next call
            live = None
            if self._prune[w]:
                live = self._live_tokens(w)
                self._prune[w] = False
            for ref in _held_refs(getattr(job.item, "handle", None)):
                if (ref.worker != w or not self._alive(ref)) and ref.stored is None:
                    ref.exported()  # another worker holds it: have it exported before this call needs it
                    job.exported.append(ref)
            release = self._take_releases([w]).get(w, ()) + tuple(
                t for inc, t in self._orphans[w] if inc == self._incarnation[w])
            self._orphans[w].clear()
            self._token += 1
            if self.hold_states:
                res_ref = self._calls[w].run.remote(job.func, job.item, use, self._token, live, release)
            else:
                res_ref, job.state_ref = self._calls[w].run.remote(job.func, job.item, use, self._token, live,
                                                                   release)
            job.worker, job.token, job.actor, job.incarnation = w, self._token, self.actors[w], self._incarnation[w]
            self._pending[res_ref] = ticket
            self._inflight[w] += 1
            self._queued[w] += job.cost

    def _held_ref(self, job: _Job) -> HeldRef:
        """The handle of a state that ``job``'s worker holds; the worker drops it once the driver has no
        reference to it left (told with the worker's next call)."""
        ref = HeldRef(self.scope, job.worker, job.incarnation, job.token, export=self._export)
        weakref.finalize(ref, self._released.append, (job.worker, job.incarnation, job.token))
        self._held.add(ref)
        return ref

    def _export(self, ref: HeldRef) -> Any:
        """Have the worker holding ``ref`` put it in the object store (on its ``io`` thread): an ObjectRef
        owned by the driver."""
        if not self.actors:
            raise RuntimeError(f"{ref!r}: the RayMap was closed before this state was exported")
        return self._calls[ref.worker].export.remote(ref.token)

    def _drop_exports(self, job: _Job) -> None:
        """A call is done with the states exported for it: free their copies in the object store (the
        worker still holds each; it is exported again if read elsewhere again), unless that worker died
        meanwhile: then the export is the only copy left."""
        for ref in job.exported:
            if self._alive(ref) and ref not in self._kept:
                ref.stored = None
        job.exported.clear()

    def flush(self, idle_only: bool = False) -> None:
        """Tell the workers now which held states to drop (the driver let go of them), on their ``io``
        thread, not behind their training: so a state is freed about when the driver drops it, as Ray
        frees a stored one. Otherwise a worker's next call carries them (no extra call). Done after a
        map call, for idle workers before ``wait`` blocks, and by a loop once a generation's results are
        recorded (the last ones supersede states after the last ``wait``)."""
        workers = [w for w in range(len(self.actors)) if not (idle_only and self._inflight[w])]
        for w, tokens in self._take_releases(workers).items():
            self._calls[w].release.remote(tokens)

    def _take_releases(self, workers: list[int]) -> dict[int, tuple[int, ...]]:
        """Held states of ``workers`` the driver no longer refers to, by worker, taken off the queue
        (those of a worker's earlier incarnation are gone with it)."""
        if not self._released:
            return {}
        batch = self._released[:]  # finalizers may append meanwhile (they only append)
        del self._released[:len(batch)]
        self._released.extend(r for r in batch if r[0] not in workers)
        out: dict[int, list[int]] = {}
        for w, inc, token in batch:
            if w in workers and inc == self._incarnation[w]:
                out.setdefault(w, []).append(token)
        return {w: tuple(tokens) for w, tokens in out.items()}

    def _live_tokens(self, w: int) -> tuple[int, ...]:
        """The live members worker ``w`` must keep: those of retained states, those queued calls will
        continue, and those its calls in flight will leave (they run before the call carrying this)."""
        tokens = {t for v, t in self._homes.values() if v == w}
        for job in self._jobs.values():
            if job.home is not None and job.home[0] == w:
                tokens.add(job.home[1])
            if job.worker == w:
                tokens.add(job.token)
        return tuple(sorted(tokens))

    def retain(self, handles: Iterable[Any]) -> None:
        """Forget every live member (and trained-on record) whose state is not among ``handles``: their
        states are superseded. The workers drop them with their next call."""
        keys = {k for k in map(_state_key, handles) if k is not None}
        self._homes = {k: h for k, h in self._homes.items() if k in keys}
        self._trained_on = {k: w for k, w in self._trained_on.items() if k in keys}
        self._prune = [True] * len(self.actors)

    def lost(self, handle: Any) -> bool:
        """Whether ``handle`` reads a held state whose worker died before it was exported (it cannot be
        read any more; the loop replaces such a member like a loser). A death is known once a call on
        that worker has failed.

        >>> # gone = [ind for ind in population if rmap.lost(ind.handle)]
        """
        return any(ref.key in self._lost or (not self._alive(ref) and ref.stored is None)
                   for ref in _held_refs(handle))

    def keep(self, handles: Iterable[Any]) -> None:
        """Put the held states ``handles`` read into the object store now (on their workers' ``io``
        threads), where they outlive their workers: for states worth more than the run's next
        generation, such as the hall of fame. Stored states need nothing."""
        for handle in handles:
            for ref in _held_refs(handle):
                if self._alive(ref):
                    self._kept.add(ref)  # not dropped after a call it was exported for
                    ref.exported()

    def worker_of(self, handle: Any) -> int:
        """Index of the worker that trained a stored state of the current population (``-1``: unknown).

        >>> # node = rmap.nodes()[rmap.worker_of(individual.handle)]
        """
        return self._trained_on.get(_state_key(handle), -1)

    def _pick(self) -> tuple[int, int] | None:
        """The next ticket (queue order: costliest first, retries at the front) and the worker to run it:
        among workers with room in their pipeline and on which the item has not failed, the one with
        the least work queued (an idle worker first). An item that failed on every worker may run
        anywhere. ``None`` when nothing can be dispatched now.

        Affinity: the chosen worker takes, instead of the head item, one of the next few (similar in
        cost, as the queue is sorted) whose live member it holds, so that member continues without
        being rebuilt; never in the tail (the last ``n`` items), where balance matters more."""
        n, queue, jobs = len(self.actors), self._queue, self._jobs
        # a queued call commits an item to a worker before it is known which worker frees first; that
        # is cheap while big items remain, but the last n items (the smallest) go only to idle workers
        # so that the tail of the generation is balanced on measured, not estimated, finish times
        # (measured: queueing a tail item behind its live member's busy worker costs more in balance
        # than the rebuild it saves)
        depth = self.pipeline if len(queue) > n else 1
        for pos, ticket in enumerate(queue):
            tried, home, near = jobs[ticket].tried, jobs[ticket].home, jobs[ticket].near
            allowed = [w for w in range(n) if self._inflight[w] < depth and (w not in tried or len(tried) >= n)]
            if not allowed:
                continue  # a worker it may run on is busy: let items behind it go meanwhile
            # among equally loaded workers, the one holding its live member (a child: its base parent)
            w = min(allowed, key=lambda w: (self._inflight[w] > 0, self._queued[w],
                                            (home is None or home[0] != w) and near != w, self._inflight[w]))
            if len(queue) > n and not (home is not None and home[0] == w):
                for other in queue[pos + 1:pos + n]:
                    h = jobs[other].home
                    if h is not None and h[0] == w and w not in jobs[other].tried:
                        ticket = other
                        break
            queue.remove(ticket)
            return ticket, w
        return None

    def nodes(self) -> list[str]:
        """The Ray node id of each worker."""
        import ray

        return ray.get([a.node.remote() for a in self.actors])

    def close(self) -> None:
        """Stop the workers. States they hold that the driver still refers to (the population, a hall
        of fame) are exported first, so those handles stay loadable while Ray runs."""
        import ray

        if not self.actors:
            return
        exports = [ref.exported() for ref in list(self._held)
                   if ref.stored is None and self._alive(ref)]
        if exports:
            _, late = ray.wait(exports, num_returns=len(exports), timeout=120, fetch_local=False)
            if late:
                log.warning("%d held state(s) were not exported within 120 s of close()", len(late))
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
