"""MNIST-1D with per-cell widths: the MNIST-1D space (:mod:`tasks.mnist1d`) plus one width variable per cell.

Cell ``i`` works at ``width<i>`` channels: the stem makes ``width0`` channels; cells 1..3 start with a
1x1 convolution ``cells.<i>.proj`` from the previous cell's width to theirs, then the cell's op (any
of the ten, each shape-preserving at its cell's width) and activation; the head reads the last width.
Why widths between cells rather than a fixed external width with a searched inner width: every op keeps
its meaning (identity and pooling have no inner width to search), the network's capacity really varies
from cell to cell, and a width change reaches three kinds of layers that mixing must adapt: the
producer (stem or projection), the op inside the cell, and the reader (next projection or head).

Width variables own no layer: ``width<i>`` only sets how many units the layers around cell ``i`` have,
whoever owns them (the op variable owns ``cells.<i>.op``; the stem, projections and head belong to no
variable), and :meth:`MNIST1DWidthsTask.unit_axes` declares where those units are.

>>> task = MNIST1DWidthsTask(widths=(4, 8, 16))
>>> len(task.space), round(task.space.log10_size, 2)
(13, 8.62)
>>> task.build_model(task.space.sample()).head.in_features in (4, 8, 16)
True
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from pbt_evo.space import SearchSpace, Variable
from pbt_evo.widths import UnitAxis, unit_counts
from tasks.mnist1d import N_CELLS, MNIST1DTask, make_act, make_op, make_space

WIDTHS = (4, 8, 16)


def make_width_space(widths: Sequence[int] = WIDTHS, n_cells: int = N_CELLS) -> SearchSpace:
    """The MNIST-1D space followed by ``width0..width<n-1>`` with options ``widths``.

    >>> make_width_space().names[-4:], make_width_space()["width0"].owns
    (['width0', 'width1', 'width2', 'width3'], ())
    """
    return SearchSpace([*make_space(n_cells), *(Variable(f"width{i}", tuple(widths)) for i in range(n_cells))])


class WidthCell(nn.Module):
    """``proj`` (1x1 conv ``c_in -> c``; none for the first cell), the op at ``c`` channels, the activation.

    >>> WidthCell("conv3", "relu", 8, 4)(torch.zeros(2, 8, 40)).shape
    torch.Size([2, 4, 40])
    """

    def __init__(self, op: str, act: str, c_in: int | None, c: int):
        super().__init__()
        self.proj = nn.Conv1d(c_in, c, 1) if c_in is not None else None
        self.op = make_op(op, c)
        self.act = make_act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.op(x if self.proj is None else self.proj(x)))


class MNIST1DWidthsNet(nn.Module):
    """The per-cell-width 1-D CNN for one decoded architecture: (B, 1, 40) -> (B, 10) logits.

    >>> arch = make_width_space().decode([1, 4, 6, 7, 0, 1, 2, 3, 1, 0, 2, 1, 0])
    >>> net = MNIST1DWidthsNet(arch)
    >>> net(torch.zeros(3, 1, 40)).shape, net.cells[1].proj.weight.shape
    (torch.Size([3, 10]), torch.Size([16, 4, 1]))
    """

    def __init__(self, arch: dict, n_cells: int = N_CELLS, n_classes: int = 10):
        super().__init__()
        w = [arch[f"width{i}"] for i in range(n_cells)]
        self.stem = nn.Sequential(nn.Conv1d(1, w[0], 5, padding=2), nn.ReLU())
        self.cells = nn.ModuleList(WidthCell(arch[f"op{i}"], arch[f"act{i}"], w[i - 1] if i else None, w[i])
                                   for i in range(n_cells))
        self.pool = nn.AdaptiveAvgPool1d(1) if arch["pool"] == "avg" else nn.AdaptiveMaxPool1d(1)
        self.head = nn.Linear(w[-1], n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for cell in self.cells:
            x = cell(x)
        return self.head(self.pool(x).flatten(1))


def op_units(op: str, prefix: str) -> tuple[list[str | tuple[str, int]], list[str | tuple[str, int]]]:
    """``(copy, split)`` entries of an op's own width (see :class:`pbt_evo.widths.UnitAxis`): a conv's output
    rows and bias are the units', its input columns read them; BatchNorm's four vectors are the units'; a
    depthwise conv (``groups = channels``) has no input columns to split.

    >>> op_units("conv3", "cells.1.op")
    (['cells.1.op.weight', 'cells.1.op.bias'], ['cells.1.op.weight'])
    >>> op_units("maxpool3", "cells.1.op")
    ([], [])
    """
    def conv(p: str) -> tuple[list, list]:
        return [f"{p}.weight", f"{p}.bias"], [f"{p}.weight"]

    if op in ("conv3", "conv5", "conv7", "dilconv3_d2", "dilconv3_d4"):
        return conv(prefix)
    if op == "sepconv5":
        copy, split = conv(f"{prefix}.1")
        return [f"{prefix}.0.weight", f"{prefix}.0.bias", *copy], split
    if op == "resblock3":
        (c0, s0), (c3, s3) = conv(f"{prefix}.body.0"), conv(f"{prefix}.body.3")
        bn = [f"{prefix}.body.1.{k}" for k in ("weight", "bias", "running_mean", "running_var")]
        return c0 + bn + c3, s0 + s3
    return [], []  # identity, pooling: no weights


def unit_axes(arch: dict, n_cells: int = N_CELLS) -> dict[str, UnitAxis]:
    """One width group per cell: made by the stem or the cell's projection, used by its op, read by the
    next projection or the head.

    >>> axes = unit_axes(make_width_space().decode([0] * 13))
    >>> axes["width3"].copy, axes["width3"].split
    ((('cells.3.proj.weight', 0), ('cells.3.proj.bias', 0)), (('head.weight', 1),))
    """
    axes = {}
    for i in range(n_cells):
        maker = "stem.0" if i == 0 else f"cells.{i}.proj"
        reader = f"cells.{i + 1}.proj.weight" if i + 1 < n_cells else "head.weight"
        copy, split = op_units(arch[f"op{i}"], f"cells.{i}.op")
        axes[f"width{i}"] = UnitAxis(f"width{i}", copy=(f"{maker}.weight", f"{maker}.bias", *copy),
                                     split=(*split, reader))
    return axes


class MNIST1DWidthsTask(MNIST1DTask):
    """MNIST-1D with a width variable per cell (options ``widths``); the other arguments are
    :class:`tasks.mnist1d.MNIST1DTask`'s (its ``channels`` is replaced by the widths).

    >>> task = MNIST1DWidthsTask(widths=(4, 8))
    >>> sorted(task.unit_axes(task.space.sample()))
    ['width0', 'width1', 'width2', 'width3']
    """

    def __init__(self, widths: Sequence[int] = WIDTHS, **kwargs: object):
        if "channels" in kwargs:
            raise ValueError("channels: MNIST1DWidthsTask searches each cell's width; give widths instead")
        self.widths = unit_counts("widths", widths)
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.space = make_width_space(self.widths)

    def build_model(self, genome: Sequence[int]) -> MNIST1DWidthsNet:
        return MNIST1DWidthsNet(self.space.decode(genome)).to(self.device)

    def unit_axes(self, genome: Sequence[int]) -> dict[str, UnitAxis]:
        return unit_axes(self.space.decode(genome))
