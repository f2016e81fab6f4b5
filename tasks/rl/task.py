"""DrQ-v2 on DeepMind Control as a pbt_evo task (the paper's RL setting).

One epoch is ``frames_per_epoch`` environment frames (1e4 in the paper: 5,000 agent steps at action
repeat 2); fitness is the mean return of ``eval_episodes`` episodes of the deterministic policy.

What travels between generations, and what happens on mixing:

- ``member.model`` holds ``encoder``, ``actor``, ``critic`` and ``critic_target``. Mixing takes a
  variable's layers from the donor in *both* critic and target network (the variable owns both
  prefixes), shrink-perturbed alike; ``w_fresh`` of the target comes from a fresh build whose target
  equals its critic, as at the start of DrQ-v2.
- ``member.optimizers`` are three Adams (encoder, actor, critic); the target network has none. Their
  state follows the core's inheritance policy by parameter name.
- ``extras_state()``: the global agent-step counter (drives the std schedule, exploration and seed
  phase, so a child continues its base parent's schedule) and the replay buffer's contents, so a
  child starts from its base parent's experience. With ``shared_replay=True`` (the paper's walker and
  humanoid setting) all agents on a machine use one buffer instead (:mod:`tasks.rl.shared_replay`, a
  Ray actor per node), and only the step counter travels.

On a CPU, state observations are the practical setting; pixel updates at the paper's size need a GPU
(measured costs: docs/PERFORMANCE.md, ``benchmarks/rl_updates.py``).

>>> task = RLTask("cartpole", "swingup", obs="states", hidden_dim=32, batch_size=8,
...               num_seed_frames=40, frames_per_epoch=100, eval_episodes=1)
>>> member = task.build(task.space.sample())
>>> sorted(member.optimizers)
['actor', 'critic', 'encoder']
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from pbt_evo.task import Member, Task
from tasks.device import resolve_device
from pbt_evo.widths import UnitAxis, unit_counts

from .agent import AgentConfig, DrQV2Agent
from .env import RENDER_QUALITIES, DMCEnv, ObsType
from .networks import DrQV2Model
from .replay import ReplayBuffer
from .shared_replay import NodeConnection, SharedReplay, check_shared_memory, node_replay, replay_actor
from .spaces import pixel_space, state_space
from .widths import unit_axes


class RLMember(Member):
    """A DrQ-v2 agent for one genome, trained in the task's environment."""

    def __init__(self, task: "RLTask", model: DrQV2Model):
        self.task = task
        self.model = model
        self.optimizers = DrQV2Agent.make_optimizers(model, task.lr)
        self.agent = DrQV2Agent(model, dict(self.optimizers), task.agent_config, pixels=task.obs == "pixels")
        self.replay: ReplayBuffer | SharedReplay
        if task.shared_replay:
            self.replay = SharedReplay(task.node_replay, task.agent_config.batch_size,
                                       task.agent_config.discount, spec=task.replay_spec())
        else:
            self.replay = ReplayBuffer(**task.replay_spec())
        self.global_step = 0  # agent steps taken over the member's whole lineage

    # -- pbt_evo interface ---------------------------------------------------------------------------
    def train(self, epochs: int) -> dict[str, float]:
        """Run ``epochs * frames_per_epoch`` environment frames of DrQ-v2: act, store, update every
        ``update_every_steps`` steps once ``num_seed_frames`` frames have been collected."""
        task, env, cfg = self.task, self.task.env, self.task.agent_config
        env.seed(int(np.random.randint(2 ** 31 - 1)))
        n_steps = epochs * task.frames_per_epoch // env.action_repeat
        seed_steps = task.num_seed_frames // env.action_repeat
        t0 = time.perf_counter()
        returns: list[float] = []
        stats: dict[str, float] = {}
        n_updates, ep_return, done = 0, 0.0, True
        for _ in range(n_steps):
            if done:  # a generation starts a new episode; a cut-off episode stays in the buffer as is
                obs = env.reset()
                self.replay.add_first(obs)
                ep_return, done = 0.0, False
            action = self.agent.act(obs, self.global_step, eval_mode=False)
            if (self.global_step >= seed_steps and self.global_step % cfg.update_every_steps == 0
                    and self.replay.ready()):
                stats = self.agent.update(self.replay.sample(cfg.batch_size, cfg.discount), self.global_step)
                n_updates += 1
            obs, reward, discount, done = env.step(action)
            self.replay.add(action, reward, discount, obs)
            ep_return += reward
            self.global_step += 1
            if done:
                returns.append(ep_return)
        self.replay.flush()
        seconds = time.perf_counter() - t0
        metrics = {"frames": float(self.global_step * env.action_repeat), "updates": float(n_updates),
                   "train_s": seconds, **stats}
        if returns:
            metrics["train_return"] = float(np.mean(returns))
        return metrics

    @torch.no_grad()
    def evaluate(self) -> float:
        """Mean undiscounted return of ``eval_episodes`` episodes with the mean action."""
        env = self.task.env
        env.seed(int(np.random.randint(2 ** 31 - 1)))
        returns = []
        for _ in range(self.task.eval_episodes):
            obs, done, total = env.reset(), False, 0.0
            while not done:
                obs, reward, _, done = env.step(self.agent.act(obs, self.global_step, eval_mode=True))
                total += reward
            returns.append(total)
        return float(np.mean(returns))

    def extras_state(self) -> dict[str, Any]:
        """``global_step`` and the replay buffer (``replay/<array>``; none when shared), numpy arrays."""
        out: dict[str, Any] = {"global_step": np.array(self.global_step, dtype=np.int64)}
        out.update({f"replay/{k}": v for k, v in self.replay.export().items()})
        return out

    def load_extras(self, extras: Mapping[str, Any]) -> None:
        if "global_step" in extras:
            self.global_step = int(extras["global_step"])
        replay = {k[len("replay/"):]: v for k, v in extras.items() if k.startswith("replay/")}
        if replay:
            self.replay.load(replay)


class RLTask(Task):
    """DrQ-v2 on a dm_control task, searching the paper's space (``obs="pixels"``) or its state
    counterpart (``obs="states"``). Defaults are the paper's quadruped-run settings.

    ``shared_replay=True``: one buffer of ``buffer_size`` per machine for all agents (the paper's walker
    and humanoid), instead of one per agent that travels with the individual.
    ``hidden_dims`` (e.g. ``[64, 128, 256]``): search the hidden width of the actor and of the critic
    (two width variables, the target critic following the critic; :mod:`tasks.rl.widths`) instead of
    using ``hidden_dim`` for both.
    ``render_quality``: ``"fast"`` (no shadows, reflections or multisampling: ~5x the frames per second
    on a software renderer) or ``"paper"`` (dm_control's defaults, as DrQ-v2 and the paper rendered).
    ``time_limit`` (simulated seconds, default the task's own: 1000 frames) shortens episodes, for
    smoke runs only. ``device="auto"`` trains on the GPU when torch sees one (pbt_evo's ``gpus_per_worker``), else CPU;
    ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` name one (:func:`tasks.device.resolve_device`).
    The environment is built once per task object (i.e. once per worker) on first use and shared by
    the members that worker trains one after another.
    """

    averaged_prefixes = ("critic_target.",)  # the target network: an average of the critic's layers

    @property
    def epoch_unit(self) -> str:  # type: ignore[override]
        return f"epoch of {self.frames_per_epoch:,} frames"

    def __init__(self, domain: str = "cartpole", task: str = "swingup", obs: ObsType = "states",
                 frames_per_epoch: int = 10000, eval_episodes: int = 10, action_repeat: int = 2,
                 frame_stack: int = 3, image_size: int = 84, camera_id: int | None = None,
                 hidden_dim: int = 1024, encoder_dim: int = 256, lr: float = 1e-4, batch_size: int = 256,
                 buffer_size: int = 1_000_000, nstep: int = 3, discount: float = 0.99,
                 critic_target_tau: float = 0.01, update_every_steps: int = 2, num_seed_frames: int = 4000,
                 num_expl_steps: int = 2000, stddev_schedule: str | float = "linear(1.0,0.1,500000)",
                 stddev_clip: float = 0.3, augment: bool = True, torch_threads: int | None = None,
                 device: str = "auto", time_limit: float | None = None, shared_replay: bool = False,
                 hidden_dims: Sequence[int] | None = None, render_quality: str = "fast"):
        if obs not in ("states", "pixels"):
            raise ValueError(f"RLTask obs must be 'states' or 'pixels', got {obs!r}")
        if render_quality not in RENDER_QUALITIES:
            raise ValueError(f"task.args.render_quality: {render_quality!r} is not one of {RENDER_QUALITIES}")
        if frames_per_epoch < action_repeat:
            raise ValueError(f"frames_per_epoch ({frames_per_epoch}) must be >= action_repeat ({action_repeat})")
        if eval_episodes < 1:
            raise ValueError(f"eval_episodes must be >= 1, got {eval_episodes}")
        self.domain, self.task_name, self.obs = domain, task, obs
        self.frames_per_epoch, self.eval_episodes = int(frames_per_epoch), int(eval_episodes)
        self.env_kwargs = dict(action_repeat=action_repeat, frame_stack=frame_stack, image_size=image_size,
                               camera_id=camera_id, time_limit=time_limit, render_quality=render_quality)
        self.hidden_dim, self.encoder_dim = int(hidden_dim), int(encoder_dim)
        self.lr, self.buffer_size, self.nstep = float(lr), int(buffer_size), int(nstep)
        self.num_seed_frames = int(num_seed_frames)
        self.agent_config = AgentConfig(lr=float(lr), batch_size=int(batch_size), discount=discount, nstep=nstep,
                                        critic_target_tau=critic_target_tau,
                                        update_every_steps=update_every_steps, num_expl_steps=num_expl_steps,
                                        stddev_schedule=stddev_schedule, stddev_clip=stddev_clip,
                                        augment=augment)
        self.torch_threads = torch_threads
        self.device = resolve_device(device)
        widths = None if hidden_dims is None else unit_counts("hidden_dims", hidden_dims)
        self.space = (pixel_space if obs == "pixels" else state_space)(widths)
        self.shared_replay = bool(shared_replay)
        self._env: DMCEnv | None = None
        if self.shared_replay:  # fail before the run starts, with what to change, not in the workers
            check_shared_memory(self.replay_spec())
        self._node_replays: dict = {}  # connections to the shared buffer, one per map scope

    def replay_spec(self) -> dict[str, Any]:
        """Arguments of this task's :class:`ReplayBuffer` (pixels store single uint8 frames)."""
        env, pixels = self.env, self.obs == "pixels"
        frame_shape = (env.obs_shape[0] // env.frame_stack, *env.obs_shape[1:]) if pixels else env.obs_shape
        return dict(capacity=self.buffer_size, frame_shape=tuple(frame_shape), action_dim=env.action_dim,
                    frame_stack=env.frame_stack if pixels else 1, nstep=self.nstep,
                    dtype=np.uint8 if pixels else np.float32)

    def node_services(self, scope: str, node_id: str) -> list[Any]:
        """The run's shared replay buffer on ``node_id``, started by the driver (see
        :meth:`pbt_evo.task.Task.node_services`); nothing without ``shared_replay``."""
        return [replay_actor(scope, node_id, self.replay_spec())] if self.shared_replay else []

    def close(self) -> None:
        """Free the shared replay buffers this process connected to (their shared memory)."""
        for connection in self._node_replays.values():
            connection.release()
        self._node_replays.clear()

    def node_replay(self) -> NodeConnection:
        """This process's connection to the run's shared buffer on this machine
        (see :mod:`tasks.rl.shared_replay`)."""
        from pbt_evo.train import current_scope

        return node_replay(current_scope(), self.replay_spec(), self._node_replays)

    @property
    def env(self) -> DMCEnv:
        """The worker's environment, built on first use (seeded from ``numpy.random``)."""
        if self._env is None:
            self._env = DMCEnv(self.domain, self.task_name, obs=self.obs, **self.env_kwargs)
        return self._env

    def build_model(self, genome: Sequence[int]) -> DrQV2Model:
        """The agent's networks alone (no replay buffer), on the task's device."""
        arch = self.space.decode(genome)
        return DrQV2Model(self.obs, self.env.obs_shape, self.env.action_dim, self.hidden_dim, arch,
                          encoder_dim=self.encoder_dim).to(self.device)

    def build(self, genome: Sequence[int]) -> RLMember:
        """A fresh agent for ``genome`` (weights from the caller's torch seed) with an empty buffer."""
        if self.torch_threads:
            torch.set_num_threads(self.torch_threads)
        return RLMember(self, self.build_model(genome))

    def unit_axes(self, genome: Sequence[int]) -> dict[str, UnitAxis]:
        """The hidden units of actor and critic (target included) when ``hidden_dims`` is searched
        (:mod:`tasks.rl.widths`)."""
        return unit_axes(self.space.decode(genome))

    def cost(self, genome: Sequence[int]) -> float:
        """Relative cost: pixel encoders dominate, so count their searchable conv layers."""
        if self.obs != "pixels":
            return 1.0
        arch = self.space.decode(genome)
        return 1.0 + sum(arch[f"encoder.layer{i}"] != "identity" for i in (1, 2, 3))
