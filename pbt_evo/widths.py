"""Width variables: where a layer's units are, and how a tensor changes width (Net2Net's duplication).

A *width variable* is a :class:`~pbt_evo.space.Variable` whose options are unit counts (channels, hidden
units). For a genome, the task declares where each *width group*'s units are in the model's state dict
(:meth:`pbt_evo.task.Task.unit_axes`), as a :class:`UnitAxis`: the (key, dim) pairs that index the units,

- ``copy``: a unit's own slices (the rows and bias of the layer computing it, normalisation parameters
  and running statistics, the same rows in target or EMA copies): a copy of a unit gets them as they are;
- ``split``: the slices that read a unit (the next layers' input columns): the copies of a unit share
  them, each gets the slice divided by how many copies the unit has, so the sum a reader computes stays.

A tensor whose source (base parent or donor) has another width than the child is adapted along each of
its declared dims with the one :class:`UnitMap` of its group for that pair of widths (:func:`group_map`,
seeded by the child's seed), the same map for every (key, dim) of the group:

- **widening** keeps units ``0..n-1`` where they are and fills the new ones with copies of source units
  drawn from seeded random permutations of them (replication counts differ by at most one, and are equal
  when the child's width is a multiple of the source's);
- **narrowing** keeps the first units ``0..m-1`` (the originals, after a widening), exactly.

Widening by duplication keeps the network's function exactly (Net2Net, Chen et al. 2016) for any
elementwise activation, BatchNorm (copied statistics), pooling, depthwise convolutions and residual sums;
a LayerNorm over the units only when every unit gets the same number of copies, spectral norm not at all.
:func:`pbt_evo.weights.inherit_model` then shrink-perturbs every adapted tensor (with shrink-perturb
[1, 0] the child computes its parent's function), or gives it the fresh initialisation (``width_policy``
``fresh``); :func:`check_unit_axes` checks a declaration against built models.

>>> axis = UnitAxis("hidden", copy=("fc1.weight", "fc1.bias"), split=("fc2.weight",))
>>> axis.copy, axis.split
((('fc1.weight', 0), ('fc1.bias', 0)), (('fc2.weight', 1),))
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

import numpy as np
import torch

from .rng import kept_rng, skip_init
from .space import SearchSpace

Entry = tuple[str, int]  # (state-dict key, dim)
EntrySpec = Union[str, tuple[str, int]]
Axes = Mapping[str, "UnitAxis"]  # width group name -> its unit axis
Shapes = Mapping[str, tuple[int, ...]]


class UnitAxisError(ValueError):
    """A unit-axis declaration does not match the model; the message names the key and the dim."""


def _entries(spec: Iterable[EntrySpec], default_dim: int) -> tuple[Entry, ...]:
    out = []
    for e in spec:
        key, dim = (e, default_dim) if isinstance(e, str) else e
        out.append((str(key), int(dim)))
    return tuple(out)


@dataclass(frozen=True)
class UnitAxis:
    """The units of one width group: which ``variable`` sets their number (``int(value * scale)`` units:
    ``scale`` for a block whose inner width is a multiple of the variable's) and where they are.

    A bare key in ``copy`` means dim 0 (an ``nn.Linear`` / ``nn.Conv`` weight's output rows, a bias, a
    norm's parameters); in ``split``, dim 1 (a weight's input columns); ``(key, dim)`` names any other dim.

    >>> UnitAxis("width", copy=[("emb.weight", 1)], scale=0.5).units(16)
    8
    """

    variable: str
    copy: tuple[EntrySpec, ...] = ()
    split: tuple[EntrySpec, ...] = ()
    scale: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "copy", _entries(self.copy, 0))
        object.__setattr__(self, "split", _entries(self.split, 1))

    def units(self, value: Any) -> int:
        """The group's unit count when its variable has option ``value``."""
        return int(value * self.scale)

    def entries(self) -> list[tuple[str, int, bool]]:
        """``(key, dim, split)`` for every declared slice."""
        return [(k, d, False) for k, d in self.copy] + [(k, d, True) for k, d in self.split]


@dataclass(frozen=True)
class UnitMap:
    """Which source unit each of the child's units copies (``index``), and how many child units copy
    that same source unit (``count``, the divisor of ``split`` slices).

    >>> m = unit_map(2, 4, seed=0)
    >>> m.index.tolist(), m.count.tolist()
    ([0, 1, 0, 1], [2.0, 2.0, 2.0, 2.0])
    """

    index: torch.Tensor
    count: torch.Tensor


def unit_map(n_from: int, n_to: int, seed: int = 0) -> UnitMap:
    """The map from ``n_from`` source units to ``n_to`` child units (see the module docstring).

    >>> unit_map(3, 2).index.tolist()   # narrowing keeps the first units
    [0, 1]
    >>> m = unit_map(3, 5, seed=1); m.index[:3].tolist(), sorted(m.count.tolist())
    ([0, 1, 2], [1.0, 2.0, 2.0, 2.0, 2.0])
    """
    if n_from < 1 or n_to < 1:
        raise ValueError(f"a unit map needs at least one unit on each side, got {n_from} -> {n_to}")
    index = torch.arange(min(n_from, n_to))
    if n_to > n_from:
        g = torch.Generator().manual_seed(int(seed))
        # whole permutations first: every source unit is copied once before any is copied twice
        rounds = [torch.randperm(n_from, generator=g) for _ in range(math.ceil((n_to - n_from) / n_from))]
        index = torch.cat([index, *rounds])[:n_to]
    count = torch.bincount(index, minlength=n_from)[index].to(torch.float64)
    return UnitMap(index, count)


def unit_counts(name: str, values: Any) -> tuple[int, ...]:
    """``values`` as a width variable's options (distinct integers >= 1); ``ValueError`` naming ``name``.

    >>> unit_counts("widths", [4, 8])
    (4, 8)
    """
    if (isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values
            or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values)
            or len(set(values)) != len(values)):
        raise ValueError(f"{name} must be a non-empty list of distinct integers >= 1 (unit counts), got {values!r}")
    return tuple(values)


def group_map(seed: int, group: str, n_from: int, n_to: int) -> UnitMap:
    """The one map of width group ``group`` from ``n_from`` to ``n_to`` units in a child of ``seed``: every
    (key, dim) of the group, in weights and optimizer moments alike, gets this same map.

    >>> torch.equal(group_map(7, "cells.1", 4, 8).index, group_map(7, "cells.1", 4, 8).index)
    True
    """
    state = np.random.SeedSequence([int(seed) % 2**32, zlib.crc32(group.encode()), n_from, n_to]).generate_state(1)
    return unit_map(n_from, n_to, int(state[0]))


def adapt_along(t: torch.Tensor, dim: int, umap: UnitMap, split: bool) -> torch.Tensor:
    """``t`` with its ``dim`` re-indexed by ``umap``; ``split`` slices of floating tensors are divided by
    their unit's replication count.

    >>> w = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    >>> adapt_along(w, 1, unit_map(2, 3, seed=0), split=True)
    tensor([[0.5000, 2.0000, 0.5000],
            [1.5000, 4.0000, 1.5000]])
    """
    out = t.index_select(dim, umap.index)
    if split and out.is_floating_point():
        shape = [1] * out.dim()
        shape[dim] = -1
        out = out / umap.count.to(out.dtype).view(shape)
    return out


def axes_by_key(axes: Axes) -> dict[str, list[tuple[str, int, bool]]]:
    """``{key: [(group, dim, split), ...]}``: the declared slices of each state-dict key.

    >>> axes_by_key({"h": UnitAxis("h", copy=("a.weight",), split=("b.weight",))})
    {'a.weight': [('h', 0, False)], 'b.weight': [('h', 1, True)]}
    """
    out: dict[str, list[tuple[str, int, bool]]] = {}
    for group, axis in axes.items():
        for key, dim, split in axis.entries():
            out.setdefault(key, []).append((group, dim, split))
    return out


def adapt_tensor(t: Any, shape: Sequence[int], entries: Sequence[tuple[str, int, bool]], seed: int,
                 divide: bool = True) -> torch.Tensor:
    """``t`` adapted to ``shape`` along its declared ``entries`` (from :func:`axes_by_key`), each with its
    group's map; ``divide=False`` copies ``split`` slices undivided (optimizer moments: a reader's
    gradient with respect to a copied column is the original column's).

    >>> t = adapt_tensor(torch.ones(2, 2), (4, 2), [("h", 0, False), ("h", 1, True)], seed=0)
    >>> t.shape
    torch.Size([4, 2])
    """
    out = torch.as_tensor(t)
    for group, dim, split in entries:
        n_from, n_to = out.shape[dim], shape[dim]
        if n_from != n_to:
            out = adapt_along(out, dim, group_map(seed, group, n_from, n_to), split and divide)
    return out


# -- checking a declaration against built models --------------------------------------------------
def check_unit_axes(space: SearchSpace, genome: Sequence[int], axes_of: Callable[[list[int]], Axes],
                    shapes_of: Callable[[list[int]], Shapes]) -> None:
    """Raise :class:`UnitAxisError`, naming the key and dim, where ``axes_of(genome)`` does not describe the
    model: a declared key is missing, a declared dim's size is not the variable's units, a (key, dim) is
    declared twice, or changing a width variable changes a (key, dim) its groups do not declare (or which
    keys exist, or the declaration itself).

    >>> from pbt_evo.space import Variable
    >>> space = SearchSpace([Variable("h", (2, 4))])
    >>> shapes = lambda g: {"a.weight": ((2, 4)[g[0]], 3), "b.weight": (1, (2, 4)[g[0]])}
    >>> check_unit_axes(space, [0], lambda g: {"h": UnitAxis("h", copy=("a.weight",))}, shapes)
    Traceback (most recent call last):
    pbt_evo.widths.UnitAxisError: key 'b.weight' dim 1 changes with width variable 'h' (2 -> 4 units) but is in no unit axis of it
    """
    genome = list(genome)
    axes = axes_of(genome)
    if not axes:
        return
    shapes, values = shapes_of(genome), space.decode(genome)
    declared: dict[Entry, str] = {}
    for group, axis in axes.items():
        if axis.variable not in space.names:
            raise UnitAxisError(f"unit axis {group!r}: {axis.variable!r} is not a variable of the space")
        value = values[axis.variable]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UnitAxisError(f"width variable {axis.variable!r}: options must be unit counts (integers >= 1),"
                                f" got {value!r}")
        n = axis.units(value)
        for key, dim, _ in axis.entries():
            where = f"unit axis {group!r} ({axis.variable}={value}, {n} units)"
            if key not in shapes:
                raise UnitAxisError(f"{where}: key {key!r} (dim {dim}) is not in the model")
            shape = shapes[key]
            if not 0 <= dim < len(shape):
                raise UnitAxisError(f"{where}: key {key!r} has no dim {dim} (shape {tuple(shape)})")
            if shape[dim] != n:
                raise UnitAxisError(f"{where}: key {key!r} dim {dim} has {shape[dim]} entries, not {n}")
            if (key, dim) in declared:
                raise UnitAxisError(f"key {key!r} dim {dim} is declared twice (unit axes {declared[(key, dim)]!r}"
                                    f" and {group!r})")
            declared[(key, dim)] = group
    for name in dict.fromkeys(axis.variable for axis in axes.values()):
        _check_variable(space, genome, name, axes, declared, shapes, axes_of, shapes_of)


def _check_variable(space: SearchSpace, genome: list[int], name: str, axes: Axes, declared: Mapping[Entry, str],
                    shapes: Shapes, axes_of: Callable[[list[int]], Axes],
                    shapes_of: Callable[[list[int]], Shapes]) -> None:
    """Every other option of width variable ``name`` changes only the sizes its groups declare."""
    i = space.index(name)
    mine = {entry for entry, group in declared.items() if axes[group].variable == name}
    value = space[i].options[genome[i]]
    for option in range(space[i].n_options):
        if option == genome[i]:
            continue
        other = genome[:i] + [option] + genome[i + 1:]
        other_value = space[i].options[option]
        change = f"{name}={value} -> {other_value}"
        other_shapes = shapes_of(other)
        if set(other_shapes) != set(shapes):
            key = sorted(set(other_shapes) ^ set(shapes))[0]
            raise UnitAxisError(f"key {key!r} exists for only one of {change}: a width variable may change"
                                " sizes, not which layers exist")
        if axes_of(other) != axes:
            raise UnitAxisError(f"the unit axes declared for {change} differ: the declaration may not depend on"
                                " the width variable's value")
        for key, dim in sorted(mine):
            group = declared[(key, dim)]
            n = axes[group].units(other_value)
            if other_shapes[key][dim] != n:
                raise UnitAxisError(f"unit axis {group!r} ({name}={other_value}, {n} units): key {key!r} dim {dim}"
                                    f" has {other_shapes[key][dim]} entries, not {n}")
        for key, shape in shapes.items():
            if len(shape) != len(other_shapes[key]):
                raise UnitAxisError(f"key {key!r} has {len(shape)} dims for {change} but {len(other_shapes[key])}")
            for dim, (a, b) in enumerate(zip(shape, other_shapes[key])):
                if a != b and (key, dim) not in mine:
                    raise UnitAxisError(f"key {key!r} dim {dim} changes with width variable {name!r} ({a} -> {b}"
                                        f" units) but is in no unit axis of it")


def check_task_widths(task: Any, genomes: Iterable[Sequence[int]] | None = None) -> None:
    """:func:`check_unit_axes` of ``task`` (its ``space``, ``unit_axes`` and ``build_model``) on each of
    ``genomes`` (default: a balanced sample in which every option of every variable appears, drawn from
    a generator of its own); models are built without initialising, under the caller's random state.

    >>> from tasks.digits import DigitsTask   # no width variables: nothing is built
    >>> check_task_widths(DigitsTask(channels=4))
    """
    def shapes_of(genome: list[int]) -> dict[str, tuple[int, ...]]:
        with kept_rng(), skip_init():
            return {k: tuple(v.shape) for k, v in task.build_model(genome).state_dict().items()}

    space: SearchSpace = task.space
    if genomes is None:
        genomes = space.sample_balanced(max(v.n_options for v in space), random.Random(0))
    for genome in genomes:
        check_unit_axes(space, genome, task.unit_axes, shapes_of)
