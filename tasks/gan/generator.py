"""The AdversarialNAS generator: latent projections and three upsampling cells.

Shapes (``w`` = bottom width, ``C`` = gf_dim): projection 0 gives ``C x w x w``; cell ``i`` doubles the
width; projection ``i`` (i = 1, 2) is added to the output of cell ``i - 1``; ``to_rgb`` (BN, ReLU, 3x3 conv,
tanh) gives the image at ``8w``.

A cell is a DAG on four nodes::

    node0 = up0(x)           node1 = up1(x)                   (upsampling edges)
    node2 = c0(node0) + c1(node1) + skip-ins from earlier cells (cross-scale, fixed 1x1 convs)
    node3 = c2(node0) + c3(node1) + c4(node2)                   (output)

``none`` edges are left out. When both inputs of node2 are ``none`` it becomes ``node0 + node1``, and
when all inputs of node3 are ``none`` it is node2, so every genome gives a working network (the
research code's choice). Cell ``i`` hands node2 (before the skip-ins) to later cells as its skip feature.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from .ops import Up, normal_op, resize, xavier_conv

#: Fixed interpolation of each cell's cross-scale skip inputs (AdversarialNAS: nearest, bilinear, nearest).
SKIP_MODES: tuple[str, ...] = ("nearest", "bilinear", "nearest")
N_CELLS = 3


class GenCell(nn.Module):
    """One generator cell; ``ops`` maps ``up0, up1, c0..c4`` to option names."""

    def __init__(self, ch: int, ops: Mapping[str, str], skip_mode: str, n_skip_in: int):
        super().__init__()
        self.up0 = Up(ops["up0"], ch, ch)
        self.up1 = Up(ops["up1"], ch, ch)
        for j in range(5):
            op = normal_op(ops[f"c{j}"], ch, ch)
            if op is not None:
                self.add_module(f"c{j}", op)
        self.skip_mode = skip_mode
        self.skip_in = nn.ModuleList(xavier_conv(ch, ch, 1) for _ in range(n_skip_in))

    def _edge(self, j: int, x: torch.Tensor) -> torch.Tensor | None:
        op = getattr(self, f"c{j}", None)
        return None if op is None else op(x)

    def forward(self, x: torch.Tensor, skips: Sequence[torch.Tensor] = ()) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (skip feature for later cells, cell output)."""
        node0, node1 = self.up0(x), self.up1(x)
        node2 = _sum([self._edge(0, node0), self._edge(1, node1)])
        if node2 is None:
            node2 = node0 + node1
        skip_out = node2
        width = node0.shape[-1]
        for feat, conv in zip(skips, self.skip_in, strict=True):
            node2 = node2 + conv(resize(feat, size=width, mode=self.skip_mode))
        node3 = _sum([self._edge(2, node0), self._edge(3, node1), self._edge(4, node2)])
        return skip_out, node2 if node3 is None else node3


class Projection(nn.Module):
    """A linear map from (part of) the latent vector to a feature map added onto a cell's input.

    ``source``: ``whole`` latent, its ``part`` (the i-th third) or its ``half`` (the i-th half: the
    research code's fixed STL-10 projections); ``linear=None`` makes no layer (a projection that never
    exists, as the STL-10 generator's third); ``size``: the map is produced at the
    ``target`` width, the ``bottom`` width or the ``prev`` (half the target) width and upsampled to the
    target with ``up_mode``; then dropout. A disabled projection keeps its linear layer (so the weights
    the ``linear`` variable owns always exist) but returns None.
    """

    def __init__(self, index: int, latent_dim: int, bottom_width: int, ch: int, enabled: bool = True,
                 linear: str | None = "part/target", up_mode: str = "nearest", dropout: float = 0.0):
        super().__init__()
        self.enabled = enabled
        self.ch = ch
        if linear is None:
            if enabled:
                raise ValueError(f"projection {index}: an enabled projection needs a linear layer")
            self.linear = None
            return
        source, size = linear.split("/")
        self.in_dim = {"whole": latent_dim, "part": latent_dim // N_CELLS, "half": latent_dim // 2}[source]
        self.in_start = 0 if source == "whole" else index * self.in_dim
        self.target_width = bottom_width * 2 ** index
        self.out_width = {"target": self.target_width, "bottom": bottom_width,
                          "prev": max(1, self.target_width // 2)}[size]
        self.up_mode = up_mode
        self.linear = nn.Linear(self.in_dim, self.out_width ** 2 * ch)
        self.dropout = nn.Dropout(dropout)

    def forward(self, z: torch.Tensor) -> torch.Tensor | None:
        if not self.enabled:
            return None
        h = self.linear(z[:, self.in_start:self.in_start + self.in_dim])
        h = h.view(-1, self.ch, self.out_width, self.out_width)
        if self.out_width != self.target_width:
            h = resize(h, size=self.target_width, mode=self.up_mode)
        return self.dropout(h)


class Generator(nn.Module):
    """Latent ``(B, latent_dim)`` -> image ``(B, channels, 8w, 8w)`` in [-1, 1]."""

    def __init__(self, cell_ops: Sequence[Mapping[str, str]], projections: Sequence[Mapping[str, object]],
                 gf_dim: int, latent_dim: int, bottom_width: int, channels: int = 3):
        super().__init__()
        if len(cell_ops) != N_CELLS or len(projections) != N_CELLS:
            raise ValueError(f"the generator has {N_CELLS} cells and {N_CELLS} projections")
        self.latent_dim = latent_dim
        self.projections = nn.ModuleList(
            Projection(i, latent_dim, bottom_width, gf_dim, **dict(p)) for i, p in enumerate(projections))
        if not self.projections[0].enabled:
            raise ValueError("projection 0 feeds the first cell and must be enabled")
        self.cells = nn.ModuleList(GenCell(gf_dim, ops, SKIP_MODES[i], i) for i, ops in enumerate(cell_ops))
        bn = nn.BatchNorm2d(gf_dim)
        nn.init.normal_(bn.weight, 1.0, 0.02)
        nn.init.zeros_(bn.bias)
        self.to_rgb = nn.Sequential(bn, nn.ReLU(), xavier_conv(gf_dim, channels, 3, padding=1), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z = z.reshape(z.shape[0], -1)
        h = self.projections[0](z)
        skips: list[torch.Tensor] = []
        for i, cell in enumerate(self.cells):
            if i > 0:
                p = self.projections[i](z)
                if p is not None:
                    h = h + p
            skip, h = cell(h, skips)
            skips.append(skip)
        return self.to_rgb(h)


def _sum(terms: Sequence[torch.Tensor | None]) -> torch.Tensor | None:
    present = [t for t in terms if t is not None]
    if not present:
        return None
    out = present[0]
    for t in present[1:]:
        out = out + t
    return out
