"""Training on persistent Ray actors: ``toolbox.map = RayMap(TaskSpec("tasks.digits:DigitsTask"), workers=2)``.

Every trained state is a Ray return value in the object store of the node that trained it, owned by
the driver, so it outlives the worker that made it; the driver only holds handles. A call whose
function raises, or whose worker dies, is retried on another worker (a dead worker is replaced), then
returned as a failed result: the member keeps its previous state and counts as the worst, and the run
goes on. Scheduling: :mod:`pbt_evo.parallel.scheduler`; the actor: :mod:`pbt_evo.parallel.worker`.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass
from typing import Any

from ..handles import StoredState, TrainResult
from ..task import Task, TaskSpec
from .connect import init_ray
from .protocol import Call, MapBase, check_max_early
from .resources import ResourceError, WorkerRequest, check, room_now, timeout_message, waiting_line
from .scheduler import Job, Scheduler
from .serial import failed_result
from .worker import Worker

log = logging.getLogger(__name__)
failures = logging.getLogger("pbt_evo.parallel.failures")  # each failed attempt, its traceback in `extra`
# seconds until the first "waiting for workers" line when they wait for resources (or half the wait timeout,
# if shorter), and between lines; workers that had room are only reported after WAIT_REPORT_EVERY (a normal
# start takes a few seconds, more on a busy machine, and prints nothing)
WAIT_FIRST_REPORT, WAIT_REPORT_EVERY = 10.0, 30.0


@dataclass(eq=False)
class _Job(Job):
    """A submitted call, from ``submit`` until ``wait`` returns it."""

    call: Call | None = None
    key: bytes | None = None   # the call's stored state (what a live member must match)
    use: int = 0               # token of the live member it would continue on ``home``
    failures: int = 0          # attempts that failed
    token: int = 0             # the live member it leaves on its worker
    state: Any = None          # ObjectRef of the state it returns
    actor: Any = None          # the actor it runs on (a replaced worker's calls are failures)


def _state_key(handle: Any) -> bytes | None:
    """The object-store id of a stored state (what live members are keyed by); None for any other handle."""
    import ray

    ref = handle.ref if isinstance(handle, StoredState) else None
    return ref.binary() if isinstance(ref, ray.ObjectRef) else None


class RayMap(MapBase):
    """A DEAP map and a stream over persistent Ray actors, one task each.

    Connects to a running cluster when ``ray.init(address=...)`` was called; otherwise starts one of its
    own (``address``, e.g. ``"auto"``, is passed to ``ray.init``; None starts a new local instance).
    ``local_task`` (the task built in the driver) gives cost estimates before anything was measured and
    starts the task's per-node services (a shared replay buffer). Live members: see
    :class:`~pbt_evo.parallel.worker.Worker` (``reuse_members`` overrides the task's choice).

    Before anything waits, the workers' resources are compared with the cluster's nodes
    (:mod:`~pbt_evo.parallel.resources`): a request the cluster can never hold raises
    :class:`~pbt_evo.parallel.resources.ResourceError` at once. Workers that fit but find the resources
    busy are waited for with a line every so often; ``wait_timeout`` (seconds; None: forever) ends the
    wait with a ResourceError, and, when set, lets a request beyond the cluster as it is wait for nodes to
    be added (an autoscaling cluster). ``key_prefix`` prefixes setting names in messages (the CLI's
    ``parallel.``). ``max_early`` and ``progress``: see :class:`~pbt_evo.parallel.protocol.MapBase`.

    >>> # toolbox.map = RayMap(TaskSpec("tasks.digits:DigitsTask"), workers=2)
    >>> # ticket = rmap.submit(Call(partial(train_member, epochs=1), ind, state=ind.handle)); rmap.wait()
    """

    def __init__(self, spec: TaskSpec, workers: int = 2, cpus_per_worker: float = 1, gpus_per_worker: float = 0,
                 max_retries: int = 1, address: str | None = None, local_task: Task | None = None,
                 pipeline: int = 2, resources: dict[str, float] | None = None,
                 reuse_members: bool | None = None, wait_timeout: float | None = None, key_prefix: str = "",
                 max_early: int | None = None, progress: Callable[[int, Any], None] | None = None):
        import ray

        self.max_early, self.progress = check_max_early(max_early), progress
        self._scheduler = Scheduler(workers, pipeline)
        joined = address is not None or ray.is_initialized()  # a cluster that may grow, unlike one started here
        # None starts a Ray instance of this process's own ("local"); Ray's default would join any cluster
        # that `ray start` left on this machine, someone else's included. Joining is bounded (connect.py)
        init_ray(address, key=f"{key_prefix}address", include_dashboard=False, logging_level=logging.WARNING,
                 log_to_driver=os.environ.get("PBT_EVO_WORKER_LOGS", "0") == "1")
        request = WorkerRequest(workers, cpus_per_worker, gpus_per_worker, dict(resources or {}), key_prefix)
        busy = self._check_resources(request, wait_timeout, joined)
        self.spec = spec
        self.max_retries = max_retries
        self.reuse_members = reuse_members
        self.scope = uuid.uuid4().hex  # names this map's per-node services (pbt_evo.train.current_scope)
        self._remote = ray.remote(Worker).options(
            num_cpus=cpus_per_worker, num_gpus=gpus_per_worker, max_restarts=0, scheduling_strategy="SPREAD",
            resources=dict(resources or {}))
        self._threads = max(1, int(cpus_per_worker))
        self.actors = [self._spawn() for _ in range(workers)]
        self._await_workers(request, wait_timeout, busy)
        self._run = [a.run.options(num_returns=2) for a in self.actors]  # bound once: .options() per call costs
        self._local_task = local_task
        self._services: list[Any] = []  # per-node services of the task, owned by the driver for the map's life
        if local_task is not None:
            for node in sorted(set(self.nodes())):
                self._services += list(local_task.node_services(self.scope, node))
        self._homes: dict[bytes, tuple[int, int]] = {}  # stored state -> (worker, token) of its live member
        self._trained_on: dict[bytes, int] = {}         # stored state -> worker that made it
        self._prune = [False] * workers   # send the worker the live members to keep with its next call
        self._pending: dict[Any, int] = {}  # result ref -> ticket of a dispatched call
        self._done: dict[int, Any] = {}     # results that arrived while ``wait`` looked for other tickets
        self._tickets = self._token = 0
        self._request, self._wait_timeout = request, wait_timeout
        self._starting: dict[int, tuple[Any, float]] = {}  # replaced worker -> (its start probe, since when)

    def _spawn(self) -> Any:
        return self._remote.remote(self.spec, self._threads, self.reuse_members, self.scope)

    # -- resources -------------------------------------------------------------------------------
    @staticmethod
    def _check_resources(request: WorkerRequest, wait_timeout: float | None, joined: bool) -> bool:
        """Fail at once when the cluster's nodes can never hold the workers (unless waiting for more nodes);
        returns whether the workers will have to wait for resources (others hold them, or nodes to come)."""
        import ray

        nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
        advice = (f"; on a cluster that adds nodes on demand, set {request.prefix}wait_timeout to wait for them"
                  if joined else "")
        try:
            check(request, nodes, advice)
        except ResourceError as exc:
            if wait_timeout is None:
                raise
            log.warning("%s. Waiting up to %g s (%swait_timeout) for nodes to be added",
                        str(exc).split(": set ")[0], wait_timeout, request.prefix)
            return True
        return not room_now(request, ray.available_resources())

    def _await_workers(self, request: WorkerRequest, timeout: float | None, busy: bool) -> None:
        """Wait until every worker has started, saying what is pending every so often; on ``timeout``
        stop the workers and raise ResourceError."""
        import ray

        pending = [a.node.remote() for a in self.actors]
        start = time.monotonic()
        first = WAIT_FIRST_REPORT if busy else WAIT_REPORT_EVERY
        report = start + min(first, timeout / 2 if timeout is not None else first)
        while pending:
            until = report if timeout is None else min(report, start + timeout)
            _, pending = ray.wait(pending, num_returns=len(pending), timeout=max(0.0, until - time.monotonic()))
            if not pending:
                return
            now = time.monotonic()
            free, total = ray.available_resources(), ray.cluster_resources()
            if timeout is not None and now >= start + timeout:
                for a in self.actors:
                    ray.kill(a)
                self.actors = []
                raise ResourceError(timeout_message(request, len(pending), free, total, timeout, busy))
            if now >= report:
                left = None if timeout is None else start + timeout - now
                log.warning(waiting_line(request, len(pending), free, total, left, busy))
                report = now + WAIT_REPORT_EVERY

    # -- the stream ------------------------------------------------------------------------------
    def submit(self, call: Call) -> int:
        """Queue a call (its item is serialized when dispatched, in :meth:`wait`); without a ``cost``, the
        local task's estimate for its ``genome`` (else 1) orders it."""
        self._tickets += 1
        key = _state_key(call.state)
        home = self._homes.pop(key, None)  # one call continues a live member
        self._scheduler.add(self._tickets, _Job(self._cost(call), call.order, home[0] if home else -1,
                                                call=call, key=key, use=home[1] if home else 0))
        return self._tickets

    def wait(self, among: Container[int] | None = None) -> tuple[int, Any]:
        """Dispatch what fits, then block until a call of ``among`` (default: any) returns."""
        while True:
            for ticket in self._done:
                if among is None or ticket in among:
                    return ticket, self._done.pop(ticket)
            self._dispatch()
            if not self._pending:
                raise RuntimeError("RayMap.wait: nothing submitted" if not self._scheduler.jobs else
                                   "RayMap: calls left but no worker can take them")
            done = self._next_done()
            ticket = self._pending.pop(done)
            res = self._collect(ticket, done)
            if res is not None:
                if among is None or ticket in among:
                    return ticket, res
                self._done[ticket] = res

    def _collect(self, ticket: int, ref: Any) -> Any:
        """The result of a returned call, or None when it failed and was queued again."""
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        job = self._scheduler.jobs[ticket]
        w = job.worker
        self._scheduler.release(ticket)
        try:
            res, kept = ray.get(ref)
        except (RayTaskError, RayActorError) as exc:
            try:  # its state holds the same error: read, or Ray prints it when the reference goes
                ray.get(job.state)
            except (RayTaskError, RayActorError):
                pass
            died = isinstance(exc, RayActorError)
            if died and self.actors[w] is job.actor:
                log.warning("worker %d died; starting a new one", w)
                self._respawn(w)
            job.failures += 1
            if job.failures <= self.max_retries:
                self._scheduler.retry(ticket, w)
                if died:
                    # the others may have died at the same moment (a lost node, a killed process group), unseen
                    # as yet: the call waits for the new worker rather than go to a worker that may be dead too
                    job.tried = set(range(len(self.actors))) - {w}
                    log.warning("%s was on worker %d, which died: it is retried on the new worker %d once that"
                                " has started", job.call.label, w, w)
                else:
                    failures.warning("%s failed on worker %d, retrying elsewhere: %s", job.call.label, w,
                                     str(exc).strip().splitlines()[-1], extra={"traceback": str(exc)})
                return None
            self._scheduler.remove(ticket)
            return failed_result(str(exc))
        self._scheduler.remove(ticket)
        if isinstance(res, TrainResult) and not res.failed:
            res.state = StoredState(job.state)
            key = job.state.binary()
            self._trained_on[key] = w
            if kept:
                self._homes[key] = (w, job.token)
        return res

    def _next_done(self) -> Any:
        """The next call that returned; meanwhile, a line every so often about a new worker that has not
        started (and ResourceError after ``wait_timeout``)."""
        import ray

        while True:
            done, _ = ray.wait(list(self._pending), num_returns=1,
                               timeout=WAIT_REPORT_EVERY if self._starting else None)
            if done:
                return done[0]
            for w, (probe, since) in list(self._starting.items()):
                if ray.wait([probe], timeout=0)[0]:
                    del self._starting[w]
                    continue
                waited, free, total = time.monotonic() - since, ray.available_resources(), ray.cluster_resources()
                if self._wait_timeout is not None and waited >= self._wait_timeout:
                    raise ResourceError(timeout_message(self._request, 1, free, total, self._wait_timeout))
                log.warning("the new worker %d has not started after %.0f s; %s", w, waited,
                            waiting_line(self._request, 1, free, total, None if self._wait_timeout is None
                                         else self._wait_timeout - waited))

    def _dispatch(self) -> None:
        """Send queued calls to workers while they have room."""
        while (pick := self._scheduler.next()) is not None:
            ticket, w = pick
            job = self._scheduler.jobs[ticket]
            use = job.use if job.home == w else None
            if job.home >= 0 and use is None:
                self._prune[job.home] = True  # that live member is superseded: drop it with the next call
            live = None
            if self._prune[w]:
                live, self._prune[w] = self._live_tokens(w), False
            self._token += 1
            res_ref, job.state = self._run[w].remote(job.call.fn, job.call.item, use, self._token, live)
            job.token, job.actor = self._token, self.actors[w]
            self._pending[res_ref] = ticket

    def _live_tokens(self, w: int) -> tuple[int, ...]:
        """The live members worker ``w`` must keep: those of current states, those queued calls will
        continue, and those its calls in flight will leave (they run before the call carrying this)."""
        tokens = {t for v, t in self._homes.values() if v == w}
        for job in self._scheduler.jobs.values():
            if job.home == w:
                tokens.add(job.use)
            if job.worker == w:
                tokens.add(job.token)
        return tuple(sorted(tokens))

    def _respawn(self, w: int) -> None:
        """Replace a dead worker; the members it kept alive are gone with it."""
        self.actors[w] = self._spawn()
        self._run[w] = self.actors[w].run.options(num_returns=2)
        self._starting[w] = (self.actors[w].node.remote(), time.monotonic())
        self._homes = {k: h for k, h in self._homes.items() if h[0] != w}
        for job in self._scheduler.jobs.values():
            if job.home == w:
                job.home = -1
        self._prune[w] = False

    def discard(self, tickets: Iterable[int] | None = None) -> None:
        """Forget calls not yet returned by ``wait`` (all, after an interrupted loop); calls already
        running finish in their workers and their results are dropped."""
        drop = set(self._scheduler.jobs) | set(self._done) if tickets is None else set(tickets)
        self._scheduler.drop(drop)
        self._pending = {ref: t for ref, t in self._pending.items() if t not in drop}
        self._done = {t: r for t, r in self._done.items() if t not in drop}

    # -- the rest of the map contract ------------------------------------------------------------
    def _cost(self, call: Call) -> float:
        """A call's expected cost: its own, else the local task's estimate for its genome, else 1."""
        if call.cost is not None:
            return float(call.cost)
        if self._local_task is None or call.genome is None:
            return 1.0
        return float(self._local_task.cost(list(call.genome)))

    def retain(self, handles: Iterable[Any]) -> None:
        """Forget every live member whose state is not among ``handles`` (superseded); the workers drop
        them with their next call."""
        keys = {k for k in map(_state_key, handles) if k is not None}
        self._homes = {k: h for k, h in self._homes.items() if k in keys}
        self._trained_on = {k: w for k, w in self._trained_on.items() if k in keys}
        self._prune = [True] * len(self.actors)

    def worker_of(self, handle: Any) -> int:
        """Index of the worker that trained a stored state of the current population (``-1``: unknown).

        >>> # node = rmap.nodes()[rmap.worker_of(individual.handle)]
        """
        return self._trained_on.get(_state_key(handle), -1)

    def nodes(self) -> list[str]:
        """The Ray node id of each worker."""
        import ray

        return ray.get([a.node.remote() for a in self.actors])

    def close(self) -> None:
        """Stop the workers (each first lets its task release what it holds); states stay in the store."""
        import ray

        if not self.actors:
            return
        closing = [a.close.remote() for a in self.actors]
        _, pending = ray.wait(closing, num_returns=len(closing), timeout=60)
        if pending:
            log.warning("%d worker(s) did not close within 60 s", len(pending))
        for a in self.actors:
            ray.kill(a)
        self._services = []
        self.actors = []
        self._run = []
