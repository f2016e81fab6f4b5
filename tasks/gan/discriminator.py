"""Discriminators: the fixed AutoGAN one (space Gan) and the searchable 4-cell one (space GanHard).

Both end the same way: ReLU, sum over space, a linear layer to one logit (spectral norm optional).

Searchable cell (GanHard), on input ``x``::

    node0 = c0(x)
    branch 1: node1 = c1(x) + c3(node0), then extra node c5(node1)
    branch 2: node2 = c2(x) + c4(node0), then extra node c6(node2)
    output  = branch 1 + branch 2

With ``downsample`` on, branch 1 is halved by ``down0`` and branch 2 by ``down1``: a pooling applied at
the branch start (to each term entering node1 / node2, before the extra node) or a pooling or strided
convolution at its end (after the extra node). In the first cell c0..c2 read the image and cannot be
``none`` or ``skip``. A ``none`` extra node (c5, c6) passes its input through; a branch whose inputs are
all ``none`` is absent; when both branches are absent the cell returns node0, and when c0..c2 are all
``none`` it returns ``x`` (the research code's behaviour). The down ops are built even when
``downsample`` is off so the weights their variables own always exist.

Unlike the research code, whose block overwrote ``node1 + node2`` with ``node1`` and so silently
dropped branch 2, both branches reach the output here; ``branch2=False`` (task arg ``d_branch2``, set by
``algorithm.research_code_compat``) builds the research code's cell, whose output is branch 1 alone
(branch 2's layers still exist, get no gradient, and move with their variables).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .ops import Down, normal_op, xavier_conv

N_DIS_CELLS = 4


def _head(ch: int, sn: bool) -> nn.Module:
    linear = nn.Linear(ch, 1, bias=False)
    return nn.utils.spectral_norm(linear) if sn else linear


def _logit(h: torch.Tensor, head: nn.Module) -> torch.Tensor:
    return head(F.relu(h).sum(dim=(2, 3)))


class _AutoGanBlock(nn.Module):
    """Residual block; the first (``optimized``) one reads the image and has no leading ReLU."""

    def __init__(self, in_ch: int, out_ch: int, downsample: bool, sn: bool, optimized: bool = False):
        super().__init__()
        self.optimized = optimized
        self.downsample = downsample
        self.c1 = xavier_conv(in_ch, out_ch, 3, padding=1, sn=sn)
        self.c2 = xavier_conv(out_ch, out_ch, 3, padding=1, sn=sn)
        self.c_sc = xavier_conv(in_ch, out_ch, 1, sn=sn) if (optimized or downsample or in_ch != out_ch) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.optimized else F.relu(x)
        h = self.c2(F.relu(self.c1(h)))
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        if self.c_sc is None:
            return h + x
        if self.optimized:  # AutoGAN pools before the shortcut conv in the first block
            return h + self.c_sc(F.avg_pool2d(x, 2))
        sc = self.c_sc(x)
        return h + (F.avg_pool2d(sc, 2) if self.downsample else sc)


class AutoGanDiscriminator(nn.Module):
    """AutoGAN's discriminator as used by AdversarialNAS: 4 residual blocks, the first two downsampling."""

    def __init__(self, df_dim: int, channels: int = 3, sn: bool = True):
        super().__init__()
        self.blocks = nn.ModuleList([
            _AutoGanBlock(channels, df_dim, downsample=True, sn=sn, optimized=True),
            _AutoGanBlock(df_dim, df_dim, downsample=True, sn=sn),
            _AutoGanBlock(df_dim, df_dim, downsample=False, sn=sn),
            _AutoGanBlock(df_dim, df_dim, downsample=False, sn=sn),
        ])
        self.head = _head(df_dim, sn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return _logit(x, self.head)


class DisCell(nn.Module):
    """One searchable discriminator cell; ``ops`` maps ``c0..c6, downsample, down0, down1`` to options."""

    def __init__(self, in_ch: int, ch: int, ops: Mapping[str, object], sn: bool, first: bool, branch2: bool = True):
        super().__init__()
        self.branch2 = branch2
        for j in range(7):
            reads_input = j <= 2
            op = normal_op(str(ops[f"c{j}"]), in_ch if reads_input else ch, ch, sn=sn, act=not (first and reads_input))
            if op is not None:
                self.add_module(f"c{j}", op)
        self.downsample = bool(ops["downsample"])
        self.down0 = Down(str(ops["down0"]), ch, sn=sn)
        self.down1 = Down(str(ops["down1"]), ch, sn=sn)

    def _edge(self, j: int, x: torch.Tensor | None) -> torch.Tensor | None:
        op = getattr(self, f"c{j}", None)
        return None if (op is None or x is None) else op(x)

    def _branch(self, terms: Sequence[torch.Tensor | None], extra: int, down: Down) -> torch.Tensor | None:
        present = [t for t in terms if t is not None]
        if not present:
            return None
        if self.downsample and down.at_start:
            present = [down(t) for t in present]
        h = present[0]
        for t in present[1:]:
            h = h + t
        h = self._edge(extra, h) if hasattr(self, f"c{extra}") else h
        if self.downsample and not down.at_start:
            h = down(h)
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not any(hasattr(self, f"c{j}") for j in range(3)):
            return x
        node0 = self._edge(0, x)
        b1 = self._branch([self._edge(1, x), self._edge(3, node0)], 5, self.down0)
        b2 = self._branch([self._edge(2, x), self._edge(4, node0)], 6, self.down1)
        if not self.branch2 and b1 is not None:
            return b1  # the research code's cell: its sum was overwritten by branch 1
        if b1 is None and b2 is None:
            return node0
        if b1 is None or b2 is None:
            return b1 if b2 is None else b2
        if b1.shape[-1] != b2.shape[-1]:  # odd widths: a strided conv rounds up, a pooling down
            side = min(b1.shape[-1], b2.shape[-1])
            b1, b2 = F.adaptive_avg_pool2d(b1, side), F.adaptive_avg_pool2d(b2, side)
        return b1 + b2


class SearchDiscriminator(nn.Module):
    """The GanHard discriminator: 4 searchable cells, then ReLU, spatial sum and a linear head."""

    def __init__(self, cell_ops: Sequence[Mapping[str, object]], df_dim: int, channels: int = 3, sn: bool = True,
                 branch2: bool = True):
        super().__init__()
        if len(cell_ops) != N_DIS_CELLS:
            raise ValueError(f"the discriminator has {N_DIS_CELLS} cells, got {len(cell_ops)}")
        self.blocks = nn.ModuleList(
            DisCell(channels if i == 0 else df_dim, df_dim, ops, sn, first=i == 0, branch2=branch2)
            for i, ops in enumerate(cell_ops))
        self.head = _head(df_dim, sn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return _logit(x, self.head)
