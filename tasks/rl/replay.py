"""A numpy replay buffer that samples DrQ-v2's n-step transitions and travels with an individual.

Storage is one flat ring of time steps. Slot ``k`` holds the observation at step ``k`` of an episode
(``ep_pos[k]``) and the action taken there with the reward and discount that followed. An n-step
transition starts at ``k`` when slot ``k + n`` belongs to the same episode, i.e.
``ep_pos[k + n] == ep_pos[k] + n`` (a new episode restarts ``ep_pos`` at 0, so that test also
catches episode ends and episodes cut short between generations).

Pixels stay compact: only the newest frame of each stacked observation is stored (uint8), and the
stack is rebuilt at sampling time from the previous slots of the same episode, repeating the first
frame at an episode start exactly as the environment's frame stack does. That is ``frame_stack``
times less memory than storing stacks (a 1e5 buffer of 84x84 frames: 2.1 GB instead of 6.4 GB).

>>> buf = ReplayBuffer(capacity=100, frame_shape=(3,), action_dim=1, frame_stack=1, nstep=2)
>>> buf.add_first(np.zeros(3, np.float32))
>>> for t in range(4):
...     buf.add(np.zeros(1, np.float32), 1.0, 1.0, np.full(3, t + 1, np.float32))
>>> obs, action, reward, discount, next_obs = buf.sample(8, gamma=0.5)
>>> float(reward[0, 0]), float(discount[0, 0])   # 1 + 0.5 * 1, 0.5 ** 2
(1.5, 0.25)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def newest_frame(obs: np.ndarray, frame_stack: int) -> np.ndarray:
    """What a buffer stores of an observation: a stacked pixel observation ``(3*stack, H, W)``
    contributes only its newest frame; unstacked observations are stored whole."""
    if frame_stack == 1:
        return obs
    return obs[-(obs.shape[0] // frame_stack):]


class ReplayBuffer:
    """Ring buffer of time steps; ``frame_shape`` is one stored frame (pixels: ``(3, 84, 84)``).

    ``storage`` (optional) supplies the arrays of :meth:`layout`, e.g. views of shared memory, so that
    several processes read one buffer (:mod:`tasks.rl.shared_replay`); the write counters live in it too.
    """

    @staticmethod
    def layout(capacity: int, frame_shape: tuple[int, ...], action_dim: int, dtype: np.dtype | type = np.float32,
               **_: Any) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """The arrays a buffer consists of: name -> (shape, dtype).

        >>> ReplayBuffer.layout(10, (3,), 1)["counters"]
        ((2,), dtype('int64'))
        """
        f32 = np.dtype(np.float32)
        return {"frames": ((int(capacity), *frame_shape), np.dtype(dtype)), "action": ((int(capacity), action_dim), f32),
                "reward": ((int(capacity),), f32), "discount": ((int(capacity),), f32),
                "ep_pos": ((int(capacity),), np.dtype(np.int64)), "counters": ((2,), np.dtype(np.int64))}

    def __init__(self, capacity: int, frame_shape: tuple[int, ...], action_dim: int, frame_stack: int = 1,
                 nstep: int = 1, dtype: np.dtype | type = np.float32,
                 storage: Mapping[str, np.ndarray] | None = None):
        if capacity < nstep + frame_stack:
            raise ValueError(f"buffer capacity {capacity} too small for nstep={nstep}, frame_stack={frame_stack}")
        self.capacity = int(capacity)
        self.frame_stack = int(frame_stack)
        self.nstep = int(nstep)
        layout = self.layout(capacity, frame_shape, action_dim, dtype)
        if storage is None:
            storage = {name: np.zeros(shape, dt) for name, (shape, dt) in layout.items()}
        for name, (shape, dt) in layout.items():
            if storage[name].shape != shape or storage[name].dtype != dt:
                raise ValueError(f"replay storage {name!r}: expected {shape} {dt}, got "
                                 f"{storage[name].shape} {storage[name].dtype}")
        self.frames, self.action = storage["frames"], storage["action"]
        self.reward, self.discount, self.ep_pos = storage["reward"], storage["discount"], storage["ep_pos"]
        # [n_written, first_key]: n_written is the logical index of the next slot (slot of logical index
        # k is k % capacity); first_key the oldest logical index held (> 0 after loading a wrapped export)
        self._counters = storage["counters"]

    n_written = property(lambda self: int(self._counters[0]),
                         lambda self, value: self._counters.__setitem__(0, value))
    first_key = property(lambda self: int(self._counters[1]),
                         lambda self, value: self._counters.__setitem__(1, value))

    def __len__(self) -> int:
        return self.n_written - self.oldest_key()

    def oldest_key(self) -> int:
        """The key of the oldest frame still held (keys count every frame written).

        >>> buf = ReplayBuffer(capacity=4, frame_shape=(1,), action_dim=1)
        >>> buf.oldest_key()
        0
        """
        return max(self.first_key, self.n_written - self.capacity)

    def _write(self, obs: np.ndarray, ep_pos: int) -> None:
        slot = self.n_written % self.capacity
        self.frames[slot] = newest_frame(obs, self.frame_stack)
        self.ep_pos[slot] = ep_pos
        self.n_written += 1

    def add_first(self, obs: np.ndarray) -> None:
        """The first observation of an episode."""
        self._write(obs, 0)

    def add(self, action: np.ndarray, reward: float, discount: float, next_obs: np.ndarray) -> None:
        """The action taken at the newest observation, its outcome, and the observation it led to."""
        if self.n_written == 0:
            raise RuntimeError("add_first(obs) must start an episode before add(...)")
        slot = (self.n_written - 1) % self.capacity
        self.action[slot] = action
        self.reward[slot] = reward
        self.discount[slot] = discount
        self._write(next_obs, int(self.ep_pos[slot]) + 1)

    def add_episode(self, frames: np.ndarray, action: np.ndarray, reward: np.ndarray,
                    discount: np.ndarray) -> None:
        """An episode (or its first part) written in one piece: ``frames`` are the ``T + 1`` stored
        frames (newest frame of each observation, as :meth:`add_first` keeps them), then the ``T``
        actions and their outcomes. Equal to ``add_first`` followed by ``T`` calls of ``add``.

        >>> buf = ReplayBuffer(capacity=10, frame_shape=(1,), action_dim=1)
        >>> buf.add_episode(np.zeros((4, 1)), np.zeros((3, 1)), np.ones(3), np.ones(3))
        >>> len(buf), buf.n_valid()
        (4, 3)
        """
        n = len(frames)
        if n != len(action) + 1 or len(reward) != len(action) or len(discount) != len(action):
            raise ValueError(f"an episode needs T+1 frames and T actions, rewards, discounts; got {n} frames, "
                             f"{len(action)} actions, {len(reward)} rewards, {len(discount)} discounts")
        if n > self.capacity:
            raise ValueError(f"an episode of {n} steps does not fit a buffer of capacity {self.capacity}")
        # readers of a shared buffer sample below n_written: retire the oldest slots before they are
        # overwritten (first_key), publish the new ones after (n_written)
        self.first_key = max(self.first_key, self.n_written + n - self.capacity)
        slots = np.arange(self.n_written, self.n_written + n) % self.capacity
        self.frames[slots] = frames
        self.ep_pos[slots] = np.arange(n)
        self.action[slots[:-1]] = action
        self.reward[slots[:-1]] = reward
        self.discount[slots[:-1]] = discount
        self.n_written += n

    def _valid(self, k: np.ndarray) -> np.ndarray:
        lo = self.oldest_key()
        c = self.capacity
        ok = (k >= lo) & (k + self.nstep < self.n_written)
        pos = self.ep_pos[k % c]
        ok &= self.ep_pos[(k + self.nstep) % c] == pos + self.nstep
        # the oldest frame of the stack must not have been overwritten
        ok &= k - np.minimum(self.frame_stack - 1, pos) >= lo
        return ok

    def ready(self) -> bool:
        """Whether updates may start sampling (DrQ-v2 waits for more than ``nstep + 1`` steps)."""
        return len(self) > self.nstep + 1

    def flush(self) -> None:
        """Nothing to send: the buffer is the agent's own (see :class:`~tasks.rl.shared_replay.SharedReplay`)."""

    def n_valid(self) -> int:
        """How many n-step transitions can be sampled now."""
        lo = self.oldest_key()
        return int(self._valid(np.arange(lo, self.n_written)).sum())

    def stacked(self, k: np.ndarray) -> np.ndarray:
        """The stacked observations of keys ``k``: the frames up to each, the episode's first repeated."""
        c = self.capacity
        pos = self.ep_pos[k % c]
        # oldest first, like the environment's frame stack; clamp to the episode's first frame
        parts = [self.frames[(k - np.minimum(d, pos)) % c] for d in range(self.frame_stack - 1, -1, -1)]
        if self.frame_stack == 1:
            return parts[0]
        return np.concatenate(parts, axis=1)

    def sample(self, batch_size: int, gamma: float) -> tuple[np.ndarray, ...]:
        """``(obs, action, reward, discount, next_obs)`` of ``batch_size`` n-step transitions drawn
        uniformly with ``numpy.random``: ``reward = sum_i gamma^i r_i`` and ``discount = prod_i gamma d_i``
        over the n steps (DrQ-v2's definition), ``next_obs`` n steps later."""
        lo = self.oldest_key()
        keys = np.empty(0, dtype=np.int64)
        for _ in range(1000):  # rejection sampling; almost all slots are valid once episodes are stored
            if keys.size >= batch_size or self.n_written == lo:
                break
            cand = np.random.randint(lo, self.n_written, size=2 * batch_size)
            keys = np.concatenate([keys, cand[self._valid(cand)]])
        if keys.size < batch_size:
            raise RuntimeError(f"replay buffer has {self.n_valid()} complete {self.nstep}-step transitions; "
                               f"store more steps before sampling (num_seed_frames)")
        k = keys[:batch_size]
        batch = self._gather(k, gamma)
        # a buffer shared with a writer (tasks.rl.shared_replay) retires slots (first_key) before it
        # overwrites them: a key retired by the time the batch is gathered may hold a torn transition,
        # so it is drawn again (never happens with a buffer of one's own)
        oldest = k - np.minimum(self.frame_stack - 1, self.ep_pos[k % self.capacity])
        stale = np.flatnonzero(oldest < self.oldest_key())
        if stale.size:
            again = self.sample(stale.size, gamma)
            for part, redo in zip(batch, again):
                part[stale] = redo
        return batch

    def _gather(self, k: np.ndarray, gamma: float) -> tuple[np.ndarray, ...]:
        batch_size = len(k)
        c = self.capacity
        reward = np.zeros(batch_size, dtype=np.float32)
        discount = np.ones(batch_size, dtype=np.float32)
        for i in range(self.nstep):
            reward += discount * self.reward[(k + i) % c]
            discount *= self.discount[(k + i) % c] * gamma
        return (self.stacked(k), self.action[k % c].copy(), reward[:, None], discount[:, None],
                self.stacked(k + self.nstep))

    # -- travelling with the individual -------------------------------------------------------------
    def export(self) -> dict[str, np.ndarray]:
        """Contents oldest first (only the filled part) as numpy arrays; see :meth:`load`."""
        lo = self.oldest_key()
        order = np.arange(lo, self.n_written) % self.capacity
        return {"frames": self.frames[order], "action": self.action[order], "reward": self.reward[order],
                "discount": self.discount[order], "ep_pos": self.ep_pos[order],
                "n_written": np.array(self.n_written, dtype=np.int64)}

    def load(self, data: Mapping[str, Any]) -> None:
        """Replace the contents with an :meth:`export` (of a buffer of any capacity: the newest fit)."""
        n_written = int(data["n_written"])
        m = min(len(data["ep_pos"]), self.capacity)
        keys = np.arange(n_written - m, n_written)
        slots = keys % self.capacity
        self.frames[slots] = data["frames"][-m:] if m else data["frames"][:0]
        for name in ("action", "reward", "discount", "ep_pos"):
            getattr(self, name)[slots] = np.asarray(data[name])[len(data[name]) - m:]
        self.n_written = n_written
        self.first_key = n_written - m
