"""The Ray actor that trains members: it builds the task once and keeps the members it trained alive.

Wrapped by ``ray.remote`` in :class:`~pbt_evo.parallel.RayMap`; plain Python here, so it runs (and is
tested) without Ray too.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

import torch

from ..handles import TrainResult, capture, restore
from ..task import Task, TaskSpec
from ..train import set_scope
from .protocol import Context


def nbytes(x: Any) -> int:
    """Bytes of the arrays and tensors in a (nested) state.

    >>> import numpy as np
    >>> nbytes({"w": np.zeros(3), "opt": [torch.zeros(2)]})
    32
    """
    if isinstance(x, dict):
        return sum(nbytes(v) for v in x.values())
    if isinstance(x, (list, tuple)):
        return sum(nbytes(v) for v in x)
    if isinstance(x, torch.Tensor):
        return x.numel() * x.element_size()
    return int(getattr(x, "nbytes", 0))


class Worker:
    """One task per process; ``run`` trains a member and returns its result and, separately, its state
    (a second Ray return value, so the state goes to the object store without passing the driver).

    Live members: a task that sets ``reuse_members = True`` (its members carry nothing besides model,
    optimizers and extras) lets the worker keep the members it trained (``self.live``); a call whose
    stored state is exactly a kept member's is given that member in its context (``use``) instead of
    building one and loading the state. The stored state stays the source of truth for children, retries
    and checkpoints.

    >>> w = Worker(TaskSpec("tasks.digits:DigitsTask", {"channels": 4}), num_threads=1)
    >>> (res, kept), state = w.run(lambda ctx, item: TrainResult(0.5, state={"model": {}}), None)
    >>> res.fitness, kept, state
    (0.5, False, {'model': {}})
    """

    def __init__(self, spec: TaskSpec, num_threads: int, reuse_members: bool | None = None,
                 scope: str | None = None):
        torch.set_num_threads(max(1, num_threads))
        self._spec, self._scope, self._reuse = spec, scope or "default", reuse_members
        self.task: Task | None = None
        self._keep_members = False
        self.live: dict[int, Any] = {}  # token -> member trained here, state identical to a stored one
        self._continued = 0  # calls that continued a live member instead of building one
        self._timeline: deque = deque(maxlen=100_000)  # (start, end) wall clock of each call, for profiling

    def _ready(self) -> Task:
        """The task, built on the first call (some tasks hold thread-bound resources, e.g. a GL context),
        then warmed up: the one-time costs (lazy imports of optimizers and state handling) are paid
        before the first member, not in the first generation's wall time."""
        if self.task is None:
            task = self._spec.build()
            set_scope(self._scope)
            self._keep_members = bool(task.reuse_members if self._reuse is None else self._reuse)
            member = task.build(task.space.first())
            restore(member, capture(member))
            self.task = task
        return self.task

    def run(self, fn: Callable[[Context, Any], Any], item: Any, use: int | None = None, keep: int | None = None,
            live: tuple[int, ...] | None = None) -> tuple[tuple[Any, bool], Any]:
        """``fn(context, item)`` as ``((result, kept), state)``.

        ``use`` names a live member to continue (its state is the call's stored state); ``keep`` the
        name to keep the member just trained under; ``live`` (sent after the driver's ``retain``) lists
        the names still worth keeping, so that a worker holds at most its share of the population.
        """
        task = self._ready()
        start = time.time()
        if live is not None:
            for token in [t for t in self.live if t not in live]:
                del self.live[token]
        context = Context(task, self._scope, live=self.live.pop(use, None) if use is not None else None)
        self._continued += context.live is not None
        res = fn(context, item)
        state, kept = None, False
        if isinstance(res, TrainResult):
            state, res.state = res.state, None
            kept = bool(self._keep_members and keep is not None and context.built is not None and not res.failed)
            if kept:
                self.live[keep] = context.built
        self._timeline.append((start, time.time()))
        return (res, kept), state

    def live_bytes(self) -> int:
        """Bytes of tensors held by the live members this worker keeps (model and optimizer state)."""
        return sum(nbytes([member.model.state_dict()] + [list(opt.state.values())
                                                         for opt in member.optimizers.values()])
                   for member in self.live.values())

    def live_stats(self) -> dict[str, int]:
        """Live members kept now, and calls so far that continued one instead of building a member."""
        return {"held": len(self.live), "continued": self._continued}

    def timeline(self) -> list[tuple[float, float]]:
        """``(start, end)`` wall-clock times of the calls so far (``time.time()``), then forgets them:
        gaps between calls are time the worker spent waiting for the driver or in Ray."""
        out = list(self._timeline)
        self._timeline.clear()
        return out

    def cost(self, genome: Any) -> float:
        """The task's cost estimate of ``genome`` (builds the task if needed)."""
        return float(self._ready().cost(list(genome)))

    def node(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()

    def close(self) -> None:
        """Let the task release what it holds (before the actor is killed, which runs no cleanup)."""
        self.live.clear()
        if self.task is not None:
            self.task.close()
