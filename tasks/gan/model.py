"""One module holding a member's generator ``G``, discriminator ``D`` and EMA generator ``G_ema``,
plus the AdversarialNAS training steps (hinge loss, n_critic, generator batch x2, EMA).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pbt_evo.space import SearchSpace

from .discriminator import AutoGanDiscriminator, SearchDiscriminator
from .generator import Generator
from .space import decode_architecture


class GanModel(nn.Module):
    """``G``, ``D`` and ``G_ema`` (an EMA copy of ``G``, never trained, no gradients)."""

    def __init__(self, G: nn.Module, D: nn.Module):
        super().__init__()
        self.G = G
        self.D = D
        self.G_ema = copy.deepcopy(G)
        self.G_ema.requires_grad_(False)

    @torch.no_grad()
    def update_ema(self, decay: float) -> None:
        """``ema = decay * ema + (1 - decay) * G`` on parameters; buffers (BN statistics) are copied."""
        for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters(), strict=True):
            p_ema.lerp_(p, 1.0 - decay)
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers(), strict=True):
            b_ema.copy_(b)


def build_gan_model(space: SearchSpace, genome: Sequence[int], *, gf_dim: int, df_dim: int, latent_dim: int,
                    bottom_width: int, channels: int = 3, d_spectral_norm: bool = True, d_branch2: bool = True,
                    projections: str = "default") -> GanModel:
    """Freshly initialised ``GanModel`` for ``genome`` (AutoGAN discriminator when the space has no D variables;
    ``d_branch2=False``: the research code's GanHard cells, without branch 2, see :mod:`.discriminator`)."""
    arch = decode_architecture(space, genome, projections)
    G = Generator(arch["g_cells"], arch["projections"], gf_dim, latent_dim, bottom_width, channels)
    if arch["d_cells"] is None:
        D: nn.Module = AutoGanDiscriminator(df_dim, channels, sn=d_spectral_norm)
    else:
        D = SearchDiscriminator(arch["d_cells"], df_dim, channels, sn=d_spectral_norm, branch2=d_branch2)
    return GanModel(G, D)


def make_optimizers(model: GanModel, lr_g: float = 2e-4, lr_d: float = 2e-4,
                    betas: tuple[float, float] = (0.0, 0.9), eps: float = 1e-8) -> dict[str, torch.optim.Optimizer]:
    """Adam for ``G`` ("gen") and ``D`` ("dis"); ``G_ema`` has no optimizer. ``eps``: PyTorch's default
    1e-8; the research code used 1e-4 (``algorithm.research_code_compat``)."""
    return {"gen": torch.optim.Adam(model.G.parameters(), lr=lr_g, betas=betas, eps=eps),
            "dis": torch.optim.Adam(model.D.parameters(), lr=lr_d, betas=betas, eps=eps)}


def discriminator_step(model: GanModel, opt_d: torch.optim.Optimizer, real: torch.Tensor) -> float:
    """One hinge-loss step of ``D`` on a real batch and as many generated images; returns the loss."""
    z = torch.randn(real.shape[0], model.G.latent_dim, device=real.device)
    with torch.no_grad():
        fake = model.G(z)
    loss = F.relu(1.0 - model.D(real)).mean() + F.relu(1.0 + model.D(fake)).mean()
    opt_d.zero_grad(set_to_none=True)
    loss.backward()
    opt_d.step()
    return loss.item()


def generator_step(model: GanModel, opt_g: torch.optim.Optimizer, batch_size: int, ema_decay: float,
                   device: torch.device | str) -> float:
    """One hinge-loss step of ``G`` on ``batch_size`` latents (only G's optimizer steps), then the EMA update."""
    z = torch.randn(batch_size, model.G.latent_dim, device=device)
    model.D.requires_grad_(False)  # D's weight gradients are not needed here; skipping them saves time
    try:
        loss = -model.D(model.G(z)).mean()
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
    finally:
        model.D.requires_grad_(True)
    opt_g.step()
    model.update_ema(ema_decay)
    return loss.item()
