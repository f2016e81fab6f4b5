"""The DrQ-v2 update (Yarats et al. 2022), on a :class:`tasks.rl.networks.DrQV2Model`.

Per update: sample n-step transitions; random-shift both observations (pixels, pad 4); critic loss
``MSE(Q_i(h, a), r + discount * min(Q'_1, Q'_2)(h', a'))`` with ``a'`` from the actor at the
scheduled std (noise clipped to ``stddev_clip``), stepping the encoder and critic; actor loss
``-min(Q_1, Q_2)(h.detach(), a)``; soft target update with ``critic_target_tau``.

>>> schedule("linear(1.0,0.1,500000)", 250000)
0.55
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .networks import DrQV2Model


def schedule(spec: str | float, step: int) -> float:
    """A constant (``"0.2"``) or ``"linear(init, final, duration)"`` in agent steps, as in DrQ-v2."""
    if isinstance(spec, (int, float)):
        return float(spec)
    m = re.fullmatch(r"\s*linear\(\s*([^,]+),\s*([^,]+),\s*([^,)]+)\)\s*", spec)
    if m:
        init, final, duration = (float(x) for x in m.groups())
        mix = min(max(step / duration, 0.0), 1.0)
        return round((1.0 - mix) * init + mix * final, 12)
    try:
        return float(spec)
    except ValueError:
        raise ValueError(f"stddev_schedule {spec!r}: expected a number or 'linear(init, final, duration)'") from None


def random_shift(x: torch.Tensor, pad: int = 4) -> torch.Tensor:
    """DrQ's augmentation: replicate-pad by ``pad`` and crop back at a random integer offset per sample.

    >>> random_shift(torch.zeros(2, 9, 84, 84)).shape
    torch.Size([2, 9, 84, 84])
    """
    n, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    dy = torch.randint(0, 2 * pad + 1, (n,), device=x.device)
    dx = torch.randint(0, 2 * pad + 1, (n,), device=x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    return padded[torch.arange(n, device=x.device)[:, None, None, None],
                  torch.arange(c, device=x.device)[None, :, None, None], rows, cols]


def sample_truncated(mu: torch.Tensor, std: float, clip: float | None) -> torch.Tensor:
    """DrQ-v2's truncated normal sample: noise clipped to ``clip``, action clamped inside (-1, 1) with a
    straight-through gradient to ``mu``."""
    eps = torch.randn_like(mu) * std
    if clip is not None:
        eps = eps.clamp(-clip, clip)
    x = mu + eps
    clamped = x.clamp(-1.0 + 1e-6, 1.0 - 1e-6)
    return x - x.detach() + clamped.detach()


@dataclass
class AgentConfig:
    """DrQ-v2 hyperparameters; defaults are the paper's (quadruped run)."""

    lr: float = 1e-4
    batch_size: int = 256
    discount: float = 0.99
    nstep: int = 3
    critic_target_tau: float = 0.01
    update_every_steps: int = 2
    num_expl_steps: int = 2000
    stddev_schedule: str | float = "linear(1.0,0.1,500000)"
    stddev_clip: float = 0.3
    augment: bool = True


class DrQV2Agent:
    """Acts and updates; owns nothing but references to the model and its optimizers."""

    def __init__(self, model: DrQV2Model, optimizers: dict[str, torch.optim.Optimizer], config: AgentConfig,
                 pixels: bool):
        self.model = model
        self.opt = optimizers
        self.cfg = config
        self.pixels = pixels
        self.device = next(model.parameters()).device
        model.train()
        model.critic_target.train()
        # Acting runs no spectral-norm power iteration (DrQ-v2 acts in eval mode). Switching just the
        # spectral layers of encoder and actor is exact and avoids model.eval()/train(), which walk
        # every module at every environment step.
        self._acting_sn = [mod for net in (model.encoder, model.actor) for mod in net.modules()
                           if getattr(mod, "spectral", False)]

    @staticmethod
    def make_optimizers(model: DrQV2Model, lr: float) -> dict[str, torch.optim.Optimizer]:
        """Adam for encoder, actor and critic, as DrQ-v2 (the target network has none)."""
        return {"encoder": torch.optim.Adam(model.encoder.parameters(), lr=lr),
                "actor": torch.optim.Adam(model.actor.parameters(), lr=lr),
                "critic": torch.optim.Adam(model.critic.parameters(), lr=lr)}

    @torch.no_grad()
    def act(self, obs: np.ndarray, step: int, eval_mode: bool) -> np.ndarray:
        """Mean action in evaluation; otherwise a scheduled-std sample, uniform for the first
        ``num_expl_steps`` steps."""
        modes = [mod.training for mod in self._acting_sn]
        for mod in self._acting_sn:
            mod.training = False
        h = self.model.encoder(torch.as_tensor(obs, dtype=torch.float32, device=self.device)[None])
        mu = self.model.actor(h)
        if eval_mode:
            action = mu
        else:
            action = sample_truncated(mu, schedule(self.cfg.stddev_schedule, step), None)
            if step < self.cfg.num_expl_steps:
                action = torch.empty_like(mu).uniform_(-1.0, 1.0)
        for mod, mode in zip(self._acting_sn, modes):
            mod.training = mode
        return action[0].cpu().numpy().astype(np.float32)

    def update(self, batch: tuple[np.ndarray, ...], step: int) -> dict[str, float]:
        """One DrQ-v2 update on a sampled batch ``(obs, action, reward, discount, next_obs)``."""
        obs, action, reward, discount, next_obs = (torch.as_tensor(x, dtype=torch.float32, device=self.device)
                                                     for x in batch)
        if self.pixels and self.cfg.augment:
            obs, next_obs = random_shift(obs), random_shift(next_obs)
        m, std = self.model, schedule(self.cfg.stddev_schedule, step)
        h = m.encoder(obs)
        with torch.no_grad():
            next_h = m.encoder(next_obs)
            next_action = sample_truncated(m.actor(next_h), std, self.cfg.stddev_clip)
            tq1, tq2 = m.critic_target(next_h, next_action)
            target_q = reward + discount * torch.min(tq1, tq2)
        q1, q2 = m.critic(h, action)
        critic_loss = F.mse_loss(q1, target_q) + F.mse_loss(q2, target_q)
        self.opt["encoder"].zero_grad(set_to_none=True)
        self.opt["critic"].zero_grad(set_to_none=True)
        critic_loss.backward()
        self.opt["critic"].step()
        self.opt["encoder"].step()

        # the actor does not shape the encoder (DrQ-v2): detach the representation
        action_pi = sample_truncated(m.actor(h.detach()), std, self.cfg.stddev_clip)
        pq1, pq2 = m.critic(h.detach(), action_pi)
        actor_loss = -torch.min(pq1, pq2).mean()
        self.opt["actor"].zero_grad(set_to_none=True)
        actor_loss.backward()
        self.opt["actor"].step()

        soft_update(m.critic, m.critic_target, self.cfg.critic_target_tau)
        return {"critic_loss": critic_loss.item(), "actor_loss": actor_loss.item(),
                "critic_q": q1.detach().mean().item()}


@torch.no_grad()
def soft_update(net: nn.Module, target: nn.Module, tau: float) -> None:
    """``target <- tau * net + (1 - tau) * target`` over parameters (buffers stay the target's own)."""
    for p, tp in zip(net.parameters(), target.parameters()):
        tp.lerp_(p, tau)
