"""Edge operations of the AdversarialNAS cells (generator and searchable discriminator).

Every op is a small ``nn.Module`` whose weights (if any) sit under the edge's own prefix, so a search
variable that picks the op owns exactly these weights. Convolutions are Xavier-initialised when built
(as in AdversarialNAS' ``weights_init``) and only then wrapped in spectral norm, so the initialisation
lands on the real parameter.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: Normal edges of generator cells and of the discriminator (``none`` = no edge).
NORMAL_OPS: tuple[str, ...] = ("none", "skip", "conv_1x1", "conv_3x3", "conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
#: Edges that read the image in the first discriminator cell: a 3-channel input cannot be skipped or dropped.
IMAGE_OPS: tuple[str, ...] = ("conv_1x1", "conv_3x3", "conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
#: Upsampling edges of generator cells.
UP_OPS: tuple[str, ...] = ("nearest", "bilinear", "conv_transpose")
#: Downsampling of a discriminator branch: pooling at the branch start, or pooling / strided conv at its end.
DOWN_OPS: tuple[str, ...] = ("avg_pool_start", "max_pool_start", "avg_pool_end", "max_pool_end",
                             "conv_3x3", "conv_5x5", "dil_conv_3x3", "dil_conv_5x5")

# kernel, padding, dilation of each convolutional option; paddings keep the size at stride 1.
_CONV_GEOMETRY = {
    "conv_1x1": (1, 0, 1),
    "conv_3x3": (3, 1, 1),
    "conv_5x5": (5, 2, 1),
    "dil_conv_3x3": (3, 2, 2),
    "dil_conv_5x5": (5, 4, 2),
}


def xavier_conv(in_ch: int, out_ch: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1,
                bias: bool = True, sn: bool = False) -> nn.Module:
    """A Xavier-initialised ``Conv2d``, optionally with spectral norm (state keys ``weight_orig``, ``weight_u``...)."""
    conv = nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=padding, dilation=dilation, bias=bias)
    nn.init.xavier_uniform_(conv.weight, 1.0)
    return nn.utils.spectral_norm(conv) if sn else conv


class ConvOp(nn.Sequential):
    """(ReLU) -> conv; the activation is left out on edges that read the raw image."""

    def __init__(self, name: str, in_ch: int, out_ch: int, stride: int = 1, sn: bool = False, act: bool = True):
        kernel, padding, dilation = _CONV_GEOMETRY[name]
        layers: list[nn.Module] = [nn.ReLU()] if act else []
        layers.append(xavier_conv(in_ch, out_ch, kernel, stride, padding, dilation, sn=sn))
        super().__init__(*layers)


def normal_op(name: str, in_ch: int, out_ch: int, sn: bool = False, act: bool = True) -> nn.Module | None:
    """The module of a normal edge, or None for ``none`` (the cell then leaves the edge out)."""
    if name == "none":
        return None
    if name == "skip":
        if in_ch != out_ch:
            raise ValueError(f"skip edge needs in_ch == out_ch, got {in_ch} -> {out_ch}")
        return nn.Identity()
    return ConvOp(name, in_ch, out_ch, sn=sn, act=act)


class Up(nn.Module):
    """x2 upsampling edge: ReLU, then interpolation + 1x1 conv, or a depthwise transposed conv + 1x1 conv."""

    def __init__(self, mode: str, in_ch: int, out_ch: int):
        super().__init__()
        if mode not in UP_OPS:
            raise ValueError(f"unknown upsampling {mode!r}; options: {UP_OPS}")
        self.mode = mode
        if mode == "conv_transpose":
            convt = nn.ConvTranspose2d(in_ch, in_ch, 3, stride=2, padding=1, output_padding=1, groups=in_ch, bias=False)
            self.op = nn.Sequential(nn.ReLU(), convt, xavier_conv(in_ch, out_ch, 1, bias=False))
        else:
            self.op = nn.Sequential(nn.ReLU(), xavier_conv(in_ch, out_ch, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "conv_transpose":
            return self.op(x)
        return self.op(resize(x, scale=2, mode=self.mode))


class Down(nn.Module):
    """x2 downsampling of a discriminator branch; ``at_start`` tells the cell where to apply it."""

    def __init__(self, name: str, ch: int, sn: bool = False):
        super().__init__()
        if name not in DOWN_OPS:
            raise ValueError(f"unknown downsampling {name!r}; options: {DOWN_OPS}")
        self.at_start = name.endswith("_start")
        if name.startswith("avg_pool"):
            self.op: nn.Module = nn.AvgPool2d(2)
        elif name.startswith("max_pool"):
            self.op = nn.MaxPool2d(2)
        else:
            self.op = ConvOp(name, ch, ch, stride=2, sn=sn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


def resize(x: torch.Tensor, scale: int | None = None, size: int | None = None, mode: str = "nearest") -> torch.Tensor:
    """``F.interpolate`` with ``align_corners`` set only where the mode accepts it."""
    kwargs = {"align_corners": False} if mode == "bilinear" else {}
    if size is not None:
        return F.interpolate(x, size=(size, size), mode=mode, **kwargs)
    return F.interpolate(x, scale_factor=scale, mode=mode, **kwargs)
