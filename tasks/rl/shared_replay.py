"""One replay buffer shared by all agents on a machine: the paper's setting for walker and humanoid,
where 12 buffers of 1e6 transitions did not fit in memory.

With Ray, the buffer is a Ray actor per node and run (named after the node id and the map's
:func:`~pbt_evo.train.current_scope`, created by the first agent on that node, ``num_cpus=0``); with
:class:`~pbt_evo.SerialMap` it lives in the task object, i.e. in the one process. Agents talk to it
through :class:`SharedReplay`, which has the interface of
:class:`~tasks.rl.replay.ReplayBuffer` that :class:`~tasks.rl.task.RLMember` uses:

- writes are staged locally and sent one episode at a time (an episode stays contiguous in the ring,
  so n-step and frame-stack lookups never cross into another agent's steps); a generation's last,
  cut-off episode is sent by :meth:`SharedReplay.flush`;
- samples come in blocks of several batches, one block requested ahead while the agent trains on
  the previous one, so an update never waits for the actor once data exist.

Nothing of the buffer travels with an individual (its extras keep only the agent's step counter): a
child, like every agent on the node, learns from all of the node's experience. The buffer belongs to
the run's workers and is not checkpointed: a resumed run refills it (updates wait until it can serve
a batch).

>>> spec = dict(capacity=100, frame_shape=(3,), action_dim=1, frame_stack=1, nstep=1)
>>> node = NodeReplay(**spec)
>>> a, b = (SharedReplay(node, spec, batch_size=4, gamma=0.9) for _ in range(2))
>>> a.add_first(np.zeros(3, np.float32))
>>> for t in range(5):
...     a.add(np.zeros(1, np.float32), 1.0, 1.0, np.ones(3, np.float32))
>>> a.flush()
>>> b.ready(), node.size()   # b samples what a collected
(True, 6)
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from .replay import ReplayBuffer, newest_frame

# a sample block is at most this large (pixels: 2 batches of 256 stacked frame pairs, 32 MB each)
PREFETCH_BYTES = 64 * 2 ** 20
MAX_BATCHES_PER_BLOCK = 16


class NodeReplay:
    """The shared buffer itself (the Ray actor's class, or an in-process object)."""

    def __init__(self, **spec: Any):
        self.buffer = ReplayBuffer(**spec)

    def add_episode(self, frames: np.ndarray, action: np.ndarray, reward: np.ndarray,
                    discount: np.ndarray) -> int:
        self.buffer.add_episode(frames, action, reward, discount)
        return len(self.buffer)

    def sample(self, n_batches: int, batch_size: int, gamma: float) -> tuple[np.ndarray, ...] | None:
        """``n_batches * batch_size`` transitions drawn uniformly (so any ``batch_size`` slice of them is a
        batch drawn uniformly), or ``None`` while the buffer cannot serve one batch."""
        if self.buffer.n_written - self.buffer.first_key <= self.buffer.nstep + 1:
            return None
        try:
            return self.buffer.sample(n_batches * batch_size, gamma)
        except RuntimeError:  # too few complete n-step transitions yet
            return None

    def size(self) -> int:
        return len(self.buffer)


def node_replay(scope: str, spec: dict[str, Any], cache: dict[str, Any], refresh: bool = False) -> Any:
    """The run's buffer on this node: inside a Ray worker, the node's named actor (created by the first
    agent to ask); elsewhere an in-process :class:`NodeReplay`. ``cache`` (the task's) holds it: a
    Ray actor lives as long as some handle to it does. ``refresh`` looks the actor up again (after
    its owner died)."""
    import ray

    if scope in cache and not refresh:
        return cache[scope]
    if not (ray.is_initialized() and ray.get_runtime_context().get_actor_id() is not None):
        cache[scope] = NodeReplay(**spec)
        return cache[scope]
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    node = ray.get_runtime_context().get_node_id()
    cache[scope] = ray.remote(NodeReplay).options(
        name=f"pbt_evo.replay.{scope}.{node}", get_if_exists=True, num_cpus=0, max_restarts=0,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote(**spec)
    return cache[scope]


class SharedReplay:
    """An agent's connection to the node's buffer, with :class:`ReplayBuffer`'s interface
    (``add_first``, ``add``, ``ready``, ``sample``, ``flush``, ``export``, ``load``).

    ``node`` is a :class:`NodeReplay`, a Ray actor handle of one, or a callable ``node(refresh=False)``
    returning either (called with ``refresh=True`` if the actor has died with the worker that made it).
    """

    def __init__(self, node: Any, spec: dict[str, Any], batch_size: int, gamma: float):
        self._resolve = node if callable(node) and not isinstance(node, NodeReplay) else (lambda refresh=False: node)
        self._node = self._resolve()
        self.frame_stack = int(spec.get("frame_stack", 1))
        self.nstep = int(spec.get("nstep", 1))
        self.batch_size, self.gamma = int(batch_size), float(gamma)
        frame_bytes = int(np.prod(spec["frame_shape"])) * np.dtype(spec.get("dtype", np.float32)).itemsize
        batch_bytes = self.batch_size * (2 * self.frame_stack * frame_bytes + 4 * (spec["action_dim"] + 2))
        self.batches_per_block = int(np.clip(PREFETCH_BYTES // max(batch_bytes, 1), 1, MAX_BATCHES_PER_BLOCK))
        self._frames: list[np.ndarray] = []
        self._steps: list[tuple[np.ndarray, float, float]] = []
        self._batches: deque = deque()
        self._request: Any = None  # the block asked for ahead (a Ray ObjectRef, or a value in-process)

    # -- calls to the node's buffer ------------------------------------------------------------------
    def _remote(self) -> bool:
        return not isinstance(self._node, NodeReplay)

    def _submit(self, method: str, *args: Any) -> Any:
        if not self._remote():
            return getattr(self._node, method)(*args)
        return getattr(self._node, method).remote(*args)

    def _get(self, pending: Any, method: str, *args: Any) -> Any:
        if not self._remote():
            return pending
        import ray
        from ray.exceptions import RayActorError

        try:
            return ray.get(pending)
        except RayActorError:  # the buffer's owner died: a new buffer on this node (empty, refills)
            self._node = self._resolve(refresh=True)
            return ray.get(self._submit(method, *args))

    # -- writing -------------------------------------------------------------------------------------
    def add_first(self, obs: np.ndarray) -> None:
        """Start an episode (the previous one, if any, is sent)."""
        self.flush()
        self._frames.append(newest_frame(obs, self.frame_stack))

    def add(self, action: np.ndarray, reward: float, discount: float, next_obs: np.ndarray) -> None:
        if not self._frames:
            raise RuntimeError("add_first(obs) must start an episode before add(...)")
        self._steps.append((np.asarray(action, np.float32), float(reward), float(discount)))
        self._frames.append(newest_frame(next_obs, self.frame_stack))

    def flush(self) -> None:
        """Send the staged episode (complete or cut off) to the node's buffer."""
        if self._steps:
            args = (np.stack(self._frames), np.stack([s[0] for s in self._steps]),
                    np.array([s[1] for s in self._steps], np.float32),
                    np.array([s[2] for s in self._steps], np.float32))
            self._get(self._submit("add_episode", *args), "add_episode", *args)
        self._frames, self._steps = [], []

    # -- sampling ------------------------------------------------------------------------------------
    def _ask(self) -> Any:
        return self._submit("sample", self.batches_per_block, self.batch_size, self.gamma)

    def ready(self) -> bool:
        """Whether a batch can be sampled now (collects the block asked for ahead, asks for the next)."""
        if not self._batches:
            pending = self._request if self._request is not None else self._ask()
            block = self._get(pending, "sample", self.batches_per_block, self.batch_size, self.gamma)
            self._request = self._ask()
            if block is not None:
                b = self.batch_size
                for i in range(len(block[0]) // b):
                    # copies: arrays from Ray's object store are read-only
                    self._batches.append(tuple(np.array(x[i * b:(i + 1) * b]) for x in block))
        return bool(self._batches)

    def sample(self, batch_size: int, gamma: float) -> tuple[np.ndarray, ...]:
        if (batch_size, gamma) != (self.batch_size, self.gamma):
            raise ValueError(f"this shared buffer serves batches of {self.batch_size} at gamma {self.gamma}, "
                             f"not {batch_size} at {gamma}")
        if not self.ready():
            raise RuntimeError("the shared replay buffer cannot serve a batch yet: collect more steps first")
        return self._batches.popleft()

    def size(self) -> int:
        """Transitions in the node's buffer (staged steps not included)."""
        return int(self._get(self._submit("size"), "size"))

    # -- nothing travels with the individual ---------------------------------------------------------
    def export(self) -> dict[str, np.ndarray]:
        return {}

    def load(self, data: Any) -> None:  # a parent's own buffer is not merged into the shared one
        return None
