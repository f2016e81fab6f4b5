"""DrQ-v2's networks built from a decoded genome: encoder, actor, twin-Q critic.

Layer layout (state-dict prefixes, which the search-space variables own):

- ``encoder.net.0``: fixed first layer (pixels: conv 3x3 stride 2 to 32 channels; states: linear to
  ``encoder_dim``); ``encoder.net.1..3``: searchable, shape-preserving (stride 1, "same" padding), so
  the encoder's output size never depends on the genome.
- ``actor.trunk`` (linear repr -> feature_dim, LayerNorm, activation), ``actor.policy.0`` (linear
  feature_dim -> hidden), ``actor.policy.1..3`` searchable hidden -> hidden, ``actor.head``.
- ``critic.trunk``, ``critic.Q1.0`` / ``critic.Q2.0`` (feature_dim + action -> hidden),
  ``critic.Q1.1..3`` / ``critic.Q2.1..3`` searchable, ``critic.Q1_head`` / ``critic.Q2_head``.

Spectral norm keeps state-dict keys identical whether it is on or off: every normalisable layer is a
:class:`SNLinear` / :class:`SNConv2d` that always owns its power-iteration vector ``sn_u`` and only
uses it when enabled. So the spectral-norm variables are weightless (own nothing) and a genome
switching spectral norm never changes which keys exist or their shapes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"identity": nn.Identity, "tanh": nn.Tanh, "relu": nn.ReLU,
                                           "swish": nn.SiLU}
CONV_OPS = ("identity", "conv3", "conv5", "conv7", "resnet3", "resnet5", "resnet7", "sepconv3", "sepconv5",
            "sepconv7")
LINEAR_OPS = ("identity", "linear", "residual0.5", "residual2.0")


def spectral_weight(weight: torch.Tensor, u: torch.Tensor, training: bool, eps: float = 1e-12) -> torch.Tensor:
    """``weight / sigma`` with sigma estimated by one power iteration per training forward (Miyato et al.).

    >>> w = spectral_weight(torch.diag(torch.tensor([3.0, 1.0])), torch.tensor([1.0, 0.0]), training=True)
    >>> round(torch.linalg.matrix_norm(w, 2).item(), 4)
    1.0
    """
    w = weight.flatten(1)
    with torch.no_grad():
        u_ = F.normalize(u, dim=0, eps=eps)  # u may have been shrink-perturbed by mixing: renormalise
        v = F.normalize(w.t() @ u_, dim=0, eps=eps)
        if training:
            u_ = F.normalize(w @ v, dim=0, eps=eps)
            u.copy_(u_)
        u_, v = u_.clone(), v.clone()
    sigma = torch.dot(u_, w @ v)
    return weight / sigma


class SNLinear(nn.Linear):
    """``nn.Linear`` with optional spectral normalisation; same state-dict keys either way."""

    def __init__(self, in_features: int, out_features: int, spectral: bool = False):
        super().__init__(in_features, out_features)
        self.spectral = spectral
        self.register_buffer("sn_u", F.normalize(torch.randn(out_features), dim=0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = spectral_weight(self.weight, self.sn_u, self.training) if self.spectral else self.weight
        return F.linear(x, w, self.bias)


class SNConv2d(nn.Conv2d):
    """``nn.Conv2d`` with optional spectral normalisation (of the weight reshaped to a matrix)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, padding: int = 0,
                 groups: int = 1, spectral: bool = False):
        super().__init__(c_in, c_out, kernel, stride, padding, groups=groups)
        self.spectral = spectral
        self.register_buffer("sn_u", F.normalize(torch.randn(c_out), dim=0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = spectral_weight(self.weight, self.sn_u, self.training) if self.spectral else self.weight
        return self._conv_forward(x, w, self.bias)


class LinearAct(nn.Module):
    def __init__(self, c_in: int, c_out: int, act: str, spectral: bool):
        super().__init__()
        self.linear = SNLinear(c_in, c_out, spectral)
        self.act = ACTIVATIONS[act]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.linear(x))


class LinearResidual(nn.Module):
    """Pre-LayerNorm residual MLP block with a ``multiplier``-wide middle (Bjorck et al. 2021)."""

    def __init__(self, dim: int, multiplier: float, act: str, spectral: bool):
        super().__init__()
        mid = int(dim * multiplier)
        self.norm = nn.LayerNorm(dim)
        self.linear1 = SNLinear(dim, mid, spectral)
        self.linear2 = SNLinear(mid, dim, spectral)
        self.act = ACTIVATIONS[act]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.linear2(self.act(self.linear1(self.norm(x))))


class ConvAct(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, act: str, spectral: bool):
        super().__init__()
        self.conv = SNConv2d(c_in, c_out, kernel, stride, padding, spectral=spectral)
        self.act = ACTIVATIONS[act]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


class ConvResidual(nn.Module):
    """ResNet basic block without normalisation: act(x + conv(act(conv(x))))."""

    def __init__(self, c: int, kernel: int, act: str, spectral: bool):
        super().__init__()
        self.conv1 = SNConv2d(c, c, kernel, 1, kernel // 2, spectral=spectral)
        self.conv2 = SNConv2d(c, c, kernel, 1, kernel // 2, spectral=spectral)
        self.act = ACTIVATIONS[act]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.conv2(self.act(self.conv1(x))))


class ConvSeparable(nn.Module):
    """Depthwise ``kernel`` conv then pointwise 1x1 conv, then the activation."""

    def __init__(self, c: int, kernel: int, act: str, spectral: bool):
        super().__init__()
        self.depthwise = SNConv2d(c, c, kernel, 1, kernel // 2, groups=c, spectral=spectral)
        self.pointwise = SNConv2d(c, c, 1, spectral=spectral)
        self.act = ACTIVATIONS[act]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.pointwise(self.depthwise(x)))


def conv_op(name: str, channels: int, act: str, spectral: bool) -> nn.Module:
    """A shape-preserving conv layer for one of :data:`CONV_OPS`."""
    if name == "identity":
        return nn.Identity()
    kernel = int(name[-1])
    if name.startswith("conv"):
        return ConvAct(channels, channels, kernel, 1, kernel // 2, act, spectral)
    if name.startswith("resnet"):
        return ConvResidual(channels, kernel, act, spectral)
    if name.startswith("sepconv"):
        return ConvSeparable(channels, kernel, act, spectral)
    raise ValueError(f"unknown conv op {name!r}; options: {CONV_OPS}")


def linear_op(name: str, dim: int, act: str, spectral: bool) -> nn.Module:
    """A shape-preserving MLP layer for one of :data:`LINEAR_OPS`."""
    if name == "identity":
        return nn.Identity()
    if name == "linear":
        return LinearAct(dim, dim, act, spectral)
    if name.startswith("residual"):
        return LinearResidual(dim, float(name[len("residual"):]), act, spectral)
    raise ValueError(f"unknown linear op {name!r}; options: {LINEAR_OPS}")


def weight_init(m: nn.Module) -> None:
    """DrQ-v2's init: orthogonal weights, zero biases (conv gain for ReLU)."""
    if isinstance(m, nn.Linear):
        nn.init.orthogonal_(m.weight.data)
        if m.bias is not None:
            m.bias.data.fill_(0.0)
    elif isinstance(m, nn.Conv2d):
        nn.init.orthogonal_(m.weight.data, nn.init.calculate_gain("relu"))
        if m.bias is not None:
            m.bias.data.fill_(0.0)


N_SEARCHABLE = 3  # searchable layers per network (after one fixed first layer), as in the paper


class PixelEncoder(nn.Module):
    """DrQ-v2's conv encoder: a fixed conv 3x3 stride 2 to 32 channels, then 3 searchable layers."""

    def __init__(self, obs_shape: tuple[int, ...], arch: Mapping[str, Any], channels: int = 32):
        super().__init__()
        sn = arch["encoder.spectral_norm"]
        layers = [ConvAct(obs_shape[0], channels, 3, 2, 0, arch["encoder.act0"], sn)]
        layers += [conv_op(arch[f"encoder.layer{i}"], channels, arch[f"encoder.act{i}"], sn)
                   for i in range(1, N_SEARCHABLE + 1)]
        self.net = nn.Sequential(*layers)
        side = (obs_shape[1] - 3) // 2 + 1
        self.repr_dim = channels * side * side
        self.apply(weight_init)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs / 255.0 - 0.5).flatten(1)


class StateEncoder(nn.Module):
    """The state-observation counterpart: a fixed linear to ``dim``, then 3 searchable MLP layers."""

    def __init__(self, obs_shape: tuple[int, ...], arch: Mapping[str, Any], dim: int = 256):
        super().__init__()
        sn = arch["encoder.spectral_norm"]
        layers = [LinearAct(obs_shape[0], dim, arch["encoder.act0"], sn)]
        layers += [linear_op(arch[f"encoder.layer{i}"], dim, arch[f"encoder.act{i}"], sn)
                   for i in range(1, N_SEARCHABLE + 1)]
        self.net = nn.Sequential(*layers)
        self.repr_dim = dim
        self.apply(weight_init)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs)


class Trunk(nn.Module):
    """repr -> feature_dim, LayerNorm, activation (DrQ-v2 uses tanh; searched here)."""

    def __init__(self, repr_dim: int, feature_dim: int, act: str):
        super().__init__()
        self.linear = nn.Linear(repr_dim, feature_dim)
        self.norm = nn.LayerNorm(feature_dim)
        self.act = ACTIVATIONS[act]()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.linear(h)))


def _mlp(prefix: str, arch: Mapping[str, Any], in_dim: int, hidden: int, spectral: bool) -> nn.Sequential:
    layers = [LinearAct(in_dim, hidden, arch[f"{prefix}.act0"], spectral)]
    layers += [linear_op(arch[f"{prefix}.layer{i}"], hidden, arch[f"{prefix}.act{i}"], spectral)
               for i in range(1, N_SEARCHABLE + 1)]
    return nn.Sequential(*layers)


class Actor(nn.Module):
    """Deterministic policy mean ``tanh(head(policy(trunk(h))))``; the caller adds the scheduled std."""

    def __init__(self, repr_dim: int, action_dim: int, hidden_dim: int, arch: Mapping[str, Any]):
        super().__init__()
        hidden_dim = arch.get("actor.hidden_dim", hidden_dim)  # a width variable, when the space has one
        self.trunk = Trunk(repr_dim, arch["actor.feature_dim"], arch["actor.trunk_act"])
        self.policy = _mlp("actor", arch, arch["actor.feature_dim"], hidden_dim, arch["actor.spectral_norm"])
        self.head = nn.Linear(hidden_dim, action_dim)  # never spectral-normalised (Bjorck et al.)
        self.apply(weight_init)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.head(self.policy(self.trunk(h))))


class Critic(nn.Module):
    """Twin Q networks on a shared trunk; each Q network has its own layers and spectral-norm switch."""

    def __init__(self, repr_dim: int, action_dim: int, hidden_dim: int, arch: Mapping[str, Any]):
        super().__init__()
        fd = arch["critic.feature_dim"]
        hidden_dim = arch.get("critic.hidden_dim", hidden_dim)
        self.trunk = Trunk(repr_dim, fd, arch["critic.trunk_act"])
        self.Q1 = _mlp("critic.q1", arch, fd + action_dim, hidden_dim, arch["critic.q1.spectral_norm"])
        self.Q2 = _mlp("critic.q2", arch, fd + action_dim, hidden_dim, arch["critic.q2.spectral_norm"])
        self.Q1_head = nn.Linear(hidden_dim, 1)
        self.Q2_head = nn.Linear(hidden_dim, 1)
        self.apply(weight_init)

    def forward(self, h: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([self.trunk(h), action], dim=-1)
        return self.Q1_head(self.Q1(x)), self.Q2_head(self.Q2(x))


class DrQV2Model(nn.Module):
    """Everything a member's weights are: ``encoder``, ``actor``, ``critic``, ``critic_target``."""

    def __init__(self, obs_type: str, obs_shape: tuple[int, ...], action_dim: int, hidden_dim: int,
                 arch: Mapping[str, Any], encoder_dim: int = 256):
        super().__init__()
        if obs_type == "pixels":
            self.encoder: nn.Module = PixelEncoder(obs_shape, arch)
        else:
            self.encoder = StateEncoder(obs_shape, arch, encoder_dim)
        repr_dim = self.encoder.repr_dim
        self.actor = Actor(repr_dim, action_dim, hidden_dim, arch)
        self.critic = Critic(repr_dim, action_dim, hidden_dim, arch)
        self.critic_target = Critic(repr_dim, action_dim, hidden_dim, arch)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic_target.requires_grad_(False)  # moved only by the soft update
