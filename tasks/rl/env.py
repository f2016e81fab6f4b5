"""DeepMind Control environments as DrQ-v2 sees them.

Pixels: 84x84 RGB renders, the last ``frame_stack`` frames stacked on the channel axis
(``(3 * frame_stack, 84, 84)`` uint8), camera 2 for quadruped and 0 otherwise. States: the
observation dict flattened to one float32 vector. Both repeat each action ``action_repeat`` times
(rewards summed, discounts multiplied), so one agent step is ``action_repeat`` environment frames.

Rendering is headless: ``MUJOCO_GL=egl`` is set unless the user chose a backend. ``render_quality``:
``"fast"`` (the CPU default) turns off the knobs that cost most on a software renderer (multisampling,
shadows, reflections); ``"paper"`` keeps dm_control's defaults, the frames the paper's DrQ-v2 agents saw
(the paper configs use it; frames per second of both: docs/REPRODUCING.md).

>>> env = DMCEnv("cartpole", "swingup", obs="states", seed=0)
>>> obs = env.reset(); obs.shape, obs.dtype
((5,), dtype('float32'))
>>> obs, reward, discount, last = env.step(np.zeros(env.action_dim, dtype=np.float32))
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # must precede the dm_control import; it picks the GL backend once

try:
    # torch loads triton lazily (on the first optimizer it builds); loading triton's library *after*
    # dm_control has brought up EGL (mesa) crashes the process with a segfault (measured with torch
    # 2.14 / mujoco 3.17). Loading it first is safe and costs ~0.15 s.
    import triton._C.libtriton  # noqa: F401
except ImportError:
    pass

from collections import deque
from typing import Literal

import numpy as np

ObsType = Literal["states", "pixels"]
RENDER_QUALITIES = ("fast", "paper")


def dm_suite():
    """dm_control's suite, imported on first use: the agent, its networks and the replay buffer need no
    environment (a GPU machine without dm_control still trains and times them)."""
    try:
        from dm_control import suite
    except ImportError as exc:
        raise ImportError(f"tasks.rl's environments need dm_control with mujoco<4 ({exc}):"
                          " pip install -e .[rl]") from exc
    return suite


def default_camera(domain: str) -> int:
    """The camera DrQ-v2 renders from: 2 for quadruped (a view that follows the body), else 0."""
    return 2 if domain == "quadruped" else 0


def flatten_observation(observation: dict) -> np.ndarray:
    """dm_control's ordered observation dict as one float32 vector (keys in the suite's order)."""
    return np.concatenate([np.asarray(v, dtype=np.float32).ravel() for v in observation.values()])


class DMCEnv:
    """One dm_control task with action repeat and either stacked pixels or flat states.

    ``seed`` defaults to a draw from ``numpy.random`` so an env built after pbt_evo seeded numpy is
    reproducible; :meth:`seed` reseeds the task's randomness (initial states) later.
    """

    def __init__(self, domain: str, task: str, obs: ObsType = "states", action_repeat: int = 2,
                 frame_stack: int = 3, image_size: int = 84, camera_id: int | None = None,
                 seed: int | None = None, time_limit: float | None = None, render_quality: str = "fast"):
        if obs not in ("states", "pixels"):
            raise ValueError(f"obs must be 'states' or 'pixels', got {obs!r}")
        if render_quality not in RENDER_QUALITIES:
            raise ValueError(f"render_quality must be one of {', '.join(RENDER_QUALITIES)}, got {render_quality!r}")
        if action_repeat < 1 or frame_stack < 1:
            raise ValueError(f"action_repeat and frame_stack must be >= 1, got {action_repeat}, {frame_stack}")
        suite = dm_suite()
        if (domain, task) not in suite.ALL_TASKS:
            raise ValueError(f"unknown dm_control task {domain}/{task}; e.g. cartpole/swingup, walker/walk, "
                             f"quadruped/run, humanoid/run")
        seed = int(np.random.randint(2 ** 31 - 1)) if seed is None else int(seed)
        task_kwargs: dict = {"random": seed}
        if time_limit is not None:  # seconds of simulated time; shortens episodes for smoke runs
            task_kwargs["time_limit"] = float(time_limit)
        self._env = suite.load(domain, task, task_kwargs=task_kwargs)
        self.obs_type = obs
        self.action_repeat = action_repeat
        self.frame_stack = frame_stack
        self.image_size = image_size
        self.camera_id = default_camera(domain) if camera_id is None else camera_id
        self._frames: deque[np.ndarray] = deque(maxlen=frame_stack)
        spec = self._env.action_spec()
        self.action_dim = int(spec.shape[0])
        # The actor outputs tanh-squashed actions in [-1, 1]; rescale to the task's bounds (quadruped's
        # differ), as DrQ-v2's action-scale wrapper does.
        self._act_low = np.asarray(spec.minimum, dtype=np.float64)
        self._act_high = np.asarray(spec.maximum, dtype=np.float64)
        self.render_quality = render_quality
        if obs == "pixels" and render_quality == "fast":
            self._fast_render_settings()
        if obs == "pixels":
            self.obs_shape: tuple[int, ...] = (3 * frame_stack, image_size, image_size)
        else:
            self.obs_shape = (sum(int(np.prod(s.shape)) for s in self._env.observation_spec().values()),)

    def _fast_render_settings(self) -> None:
        # Set before the first render: the offscreen buffers are sized from these on context creation.
        model = self._env.physics.model
        model.vis.quality.offsamples = 0
        model.vis.quality.shadowsize = 0
        model.mat_reflectance[:] = 0

    def seed(self, seed: int) -> None:
        """Reseed the task's randomness (initial states, noise) for the following episodes."""
        self._env.task._random = np.random.RandomState(seed)  # dm_control keeps no public setter

    def render(self) -> np.ndarray:
        """The current frame, ``(3, size, size)`` uint8."""
        img = self._env.physics.render(height=self.image_size, width=self.image_size, camera_id=self.camera_id)
        return np.ascontiguousarray(img.transpose(2, 0, 1))

    def _observe(self, time_step) -> np.ndarray:
        if self.obs_type == "states":
            return flatten_observation(time_step.observation)
        self._frames.append(self.render())
        return np.concatenate(list(self._frames), axis=0)

    def reset(self) -> np.ndarray:
        """Start an episode; pixel stacks start as copies of the first frame, as in DrQ-v2."""
        time_step = self._env.reset()
        if self.obs_type == "pixels":
            frame = self.render()
            self._frames.clear()
            self._frames.extend([frame] * self.frame_stack)
            return np.concatenate(list(self._frames), axis=0)
        return flatten_observation(time_step.observation)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, float, bool]:
        """Repeat ``action`` (in [-1, 1]); return ``(obs, summed reward, product of discounts, episode ended)``."""
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        action = self._act_low + (action + 1.0) * 0.5 * (self._act_high - self._act_low)
        reward, discount = 0.0, 1.0
        for _ in range(self.action_repeat):
            time_step = self._env.step(action)
            reward += (time_step.reward or 0.0) * discount
            discount *= time_step.discount if time_step.discount is not None else 1.0
            if time_step.last():
                break
        return self._observe(time_step), float(reward), float(discount), bool(time_step.last())

    @property
    def last_frame(self) -> np.ndarray:
        """The newest frame of the stack (pixels only): what the replay buffer stores per step."""
        return self._frames[-1]
