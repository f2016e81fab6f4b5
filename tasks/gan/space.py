"""The Gan and GanHard search spaces (PBT-NAS paper, Sec. 4.1) and genome -> architecture decoding.

**Gan: 21 variables** = 3 generator cells x 7 edges (``g.cell{i}.up0``, ``up1``: 3 options each;
``g.cell{i}.c0..c4``: 7 options each). Size (3^2 * 7^5)^3 ~ 3.5e15 (the paper prints ~3.4e19: same
mantissa, the exponent looks like a typo). The projections are
fixed (each enabled, a third of the latent, at the target width, no dropout) and the discriminator is
AutoGAN's: neither is searched, so their weights belong to no variable.

**GanHard: 72 variables** = 32 generator + 40 discriminator:

- 21 generator-cell edges, as in Gan;
- 11 projection variables: projection 0 (always enabled) has ``linear`` (6 options: whole latent or its
  third x output at target / bottom / previous width), ``up_mode`` (nearest, bilinear) and ``dropout``
  (0, 0.1, 0.2) = 3; projections 1 and 2 add ``enabled`` (False, True) = 4 each;
- 4 discriminator cells x 10: edges ``c0..c6`` (7 options; in cell 0, c0..c2 read the image and have the
  5 convolutional options), ``downsample`` (False, True), ``down0`` and ``down1`` (8 options: avg/max
  pool at the branch start, avg/max pool or conv 3x3/5x5 with dilation 1/2 at its end).

Size ~ 2.9e52 by the product of the option counts (the paper prints ~2.9e53).

Ownership: a variable owns the state-dict prefixes of the layer it decides, in the generator ``G``, its EMA
copy ``G_ema`` and the discriminator ``D`` (e.g. ``g.cell0.c3`` owns ``G.cells.0.c3`` and
``G_ema.cells.0.c3``). ``g.proj{i}.linear`` owns the projection's linear layer; ``enabled``, ``up_mode``,
``dropout`` and ``downsample`` are weightless and own nothing. Everything else (cross-scale skip convs,
``to_rgb``, the discriminator head, the fixed Gan projections and AutoGAN discriminator) has the same
shapes in every genome.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pbt_evo.space import SearchSpace, Variable

from .discriminator import N_DIS_CELLS
from .generator import N_CELLS
from .ops import DOWN_OPS, IMAGE_OPS, NORMAL_OPS, UP_OPS

SPACES: tuple[str, ...] = ("gan", "gan_hard")
LINEAR_OPTIONS: tuple[str, ...] = ("whole/target", "whole/bottom", "whole/prev", "part/target", "part/bottom", "part/prev")
FIXED_PROJECTION: dict[str, Any] = {"enabled": True, "linear": "part/target", "up_mode": "nearest", "dropout": 0.0}
# The research code's fixed STL-10 projections (``if_stl_projections``, from AdversarialNAS's STL-10 generator):
# the first half of the latent at the bottom width into cell 0, the second half at twice it onto cell 0's output,
# no third projection.
STL10_PROJECTIONS: tuple[dict[str, Any], ...] = (
    {"enabled": True, "linear": "half/target", "up_mode": "nearest", "dropout": 0.0},
    {"enabled": True, "linear": "half/target", "up_mode": "nearest", "dropout": 0.0},
    {"enabled": False, "linear": None, "up_mode": "nearest", "dropout": 0.0})
PROJECTIONS = ("default", "stl10")


def _g(path: str) -> tuple[str, str]:
    return (f"G.{path}", f"G_ema.{path}")


def generator_cell_variables() -> list[Variable]:
    """The 21 edge variables of the 3 generator cells."""
    out = []
    for i in range(N_CELLS):
        for j in range(2):
            out.append(Variable(f"g.cell{i}.up{j}", UP_OPS, owns=_g(f"cells.{i}.up{j}")))
        for j in range(5):
            out.append(Variable(f"g.cell{i}.c{j}", NORMAL_OPS, owns=_g(f"cells.{i}.c{j}")))
    return out


def projection_variables() -> list[Variable]:
    """The 11 projection variables of GanHard (projection 0 has no ``enabled``)."""
    out = []
    for i in range(N_CELLS):
        if i > 0:
            out.append(Variable(f"g.proj{i}.enabled", (False, True)))
        out.append(Variable(f"g.proj{i}.linear", LINEAR_OPTIONS, owns=_g(f"projections.{i}.linear")))
        out.append(Variable(f"g.proj{i}.up_mode", ("nearest", "bilinear")))
        out.append(Variable(f"g.proj{i}.dropout", (0.0, 0.1, 0.2)))
    return out


def discriminator_variables() -> list[Variable]:
    """The 40 variables of the 4 searchable discriminator cells."""
    out = []
    for i in range(N_DIS_CELLS):
        for j in range(7):
            options = IMAGE_OPS if (i == 0 and j <= 2) else NORMAL_OPS
            out.append(Variable(f"d.cell{i}.c{j}", options, owns=(f"D.blocks.{i}.c{j}",)))
        out.append(Variable(f"d.cell{i}.downsample", (False, True)))
        for j in range(2):
            out.append(Variable(f"d.cell{i}.down{j}", DOWN_OPS, owns=(f"D.blocks.{i}.down{j}",)))
    return out


def build_space(name: str) -> SearchSpace:
    """``gan`` (21 variables) or ``gan_hard`` (72 variables).

    >>> len(build_space("gan")), len(build_space("gan_hard"))
    (21, 72)
    """
    if name == "gan":
        return SearchSpace(generator_cell_variables())
    if name == "gan_hard":
        return SearchSpace(generator_cell_variables() + projection_variables() + discriminator_variables())
    raise ValueError(f"unknown GAN space {name!r}; choose one of {SPACES}")


def decode_architecture(space: SearchSpace, genome: Sequence[int], projections_mode: str = "default") -> dict[str, Any]:
    """Per-network options: ``{"g_cells": [3 dicts], "projections": [3 dicts], "d_cells": [4 dicts] | None}``.

    ``d_cells`` is None for the Gan space (fixed AutoGAN discriminator). ``projections_mode="stl10"``: the
    research code's fixed STL-10 projections (:data:`STL10_PROJECTIONS`; only where projections are not searched).
    """
    if projections_mode not in PROJECTIONS:
        raise ValueError(f"task.args.projections: {projections_mode!r} is not one of {PROJECTIONS}")
    values = space.decode(genome)
    g_cells = [{k: values[f"g.cell{i}.{k}"] for k in ("up0", "up1", "c0", "c1", "c2", "c3", "c4")}
               for i in range(N_CELLS)]
    projections = []
    if projections_mode == "stl10":
        if any(name.startswith("g.proj") for name in values):
            raise ValueError("task.args.projections 'stl10' fixes the projections: use it with space 'gan',"
                             " GanHard searches them")
        projections = [dict(p) for p in STL10_PROJECTIONS]
    for i in range(N_CELLS if projections_mode == "default" else 0):
        proj = dict(FIXED_PROJECTION)
        for key in proj:
            proj[key] = values.get(f"g.proj{i}.{key}", proj[key])
        projections.append(proj)
    d_cells = None
    if "d.cell0.c0" in values:
        keys = [f"c{j}" for j in range(7)] + ["downsample", "down0", "down1"]
        d_cells = [{k: values[f"d.cell{i}.{k}"] for k in keys} for i in range(N_DIS_CELLS)]
    return {"g_cells": g_cells, "projections": projections, "d_cells": d_cells}
