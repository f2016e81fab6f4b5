"""Weight inheritance as pure tensor functions: shrink-perturb, SEARL weight mutation, optimizer state
(tensors of another width are adapted by :mod:`pbt_evo.widths`).

A member's *state* is a plain dict, cheap to store in Ray's object store (numpy arrays are read
zero-copy there)::

    {"model": {state-dict key: ndarray}, "optim": {optimizer name: NamedOptimState}, "extras": {...}}

Optimizer state is kept by parameter *name*, never by position, so a child whose layers come from two
parents can never receive the moments of a different layer that happens to have the same shape.

Optimizer-state policy for a child (``optimizer_policy``):

- layers from the base parent keep the base parent's moments (the child *is* a copy of it);
- layers taken from the donor (shrink-perturbed) or re-initialised have **no** moments by default
  (``"reset"``): Adam restarts them with step 0 and bias correction, which is what a layer whose
  weights were just shrunk and perturbed needs; ``"donor"`` takes the donor's moments for those
  layers instead, matched by name and shape-checked;
- hyperparameters of the param groups (lr, betas, ...) come from the base parent;
- SEARL weight mutation keeps the moments of the mutated tensors (SEARL does the same);
- tensors whose width the child changes (width variables, :mod:`pbt_evo.widths`) restart their moments
  under ``"reset"``; under ``"donor"`` they keep their source's, re-indexed by the same unit maps as the
  weights (:func:`adapt_optimizer_state`).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .space import SearchSpace
from .widths import Axes, adapt_tensor, axes_by_key

NamedOptimState = dict[str, Any]
OPTIMIZER_POLICIES = ("reset", "donor")
WIDTH_POLICIES = ("adapt", "fresh")
SHRINK_PERTURB = (0.4, 0.1)  # the paper's default (lambda, gamma): written once, read everywhere

# SEARL's weight-mutation constants (Franke et al. 2021), as used by the PBT-NAS research code.
SEARL_MAX_FRACTION = 0.1
SEARL_NORMAL_SCALE = 0.1
SEARL_SUPER_SCALE = 10.0
SEARL_P_SUPER = 0.05
SEARL_P_RESET = 0.05
SEARL_CLAMP = 1e6


class InheritanceError(ValueError):
    """A child's state cannot be assembled from its parents (the space's ownership is wrong)."""


def as_tensor(x: Any) -> torch.Tensor:
    """A tensor view of ``x`` (no copy); read-only arrays from the object store are accepted."""
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, np.ndarray) and not x.flags.writeable:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # we never write through this view
            return torch.from_numpy(x)
    return torch.as_tensor(x)


def to_numpy(t: Any) -> Any:
    """Tensors to numpy (shared memory when on CPU); other values unchanged."""
    if isinstance(t, torch.Tensor):
        t = t.detach()
        if t.dtype == torch.bfloat16:
            return t.cpu()  # numpy has no bfloat16; Ray stores the tensor itself
        return t.cpu().numpy()
    return t


def shrink_perturb(donor: torch.Tensor, fresh: torch.Tensor, shrink: float = SHRINK_PERTURB[0],
                   perturb: float = SHRINK_PERTURB[1]) -> torch.Tensor:
    """``shrink * donor + perturb * fresh`` for floating tensors; integer tensors are copied from the donor.

    >>> shrink_perturb(torch.tensor([1.0, 2.0]), torch.tensor([10.0, 0.0]))
    tensor([1.4000, 0.8000])
    >>> shrink_perturb(torch.tensor([7]), torch.tensor([0]))
    tensor([7])
    """
    donor, fresh = as_tensor(donor), as_tensor(fresh)
    if donor.shape != fresh.shape:
        raise InheritanceError(f"shrink-perturb: donor shape {tuple(donor.shape)} != fresh shape {tuple(fresh.shape)}")
    if not donor.is_floating_point():
        return donor.clone()
    return shrink * donor + perturb * fresh.to(donor.dtype)


def shrink_perturb_state(state: Mapping[str, Any], fresh: Mapping[str, Any], shrink: float = SHRINK_PERTURB[0],
                         perturb: float = SHRINK_PERTURB[1], copied: Sequence[str] = ()) -> dict[str, torch.Tensor]:
    """Every tensor of a model state shrink-perturbed against a fresh initialisation of the same
    architecture (integer tensors, and keys under a ``copied`` prefix, copied): the research code's random
    search with shrink-perturb (the paper's Table 3), applied to each whole network at every generation
    boundary.

    >>> out = shrink_perturb_state({"w": torch.tensor([1.0]), "n": torch.tensor(3)}, {"w": torch.tensor([2.0]), "n": torch.tensor(0)})
    >>> round(out["w"].item(), 6), out["n"].item()
    (0.6, 3)
    """
    if set(state) != set(fresh):
        raise InheritanceError(f"shrink-perturb: the state's keys differ from the fresh network's"
                               f" ({sorted(set(state) ^ set(fresh))[:3]})")
    return {k: as_tensor(state[k]).clone() if k.startswith(tuple(copied)) else
            shrink_perturb(state[k], fresh[k], shrink, perturb) for k in fresh}


@dataclass(frozen=True)
class Source:
    """Where one variable's layers come from in a child: a donor's model state, shrink-perturbed with
    ``coefs`` (keys under a ``copied`` prefix copied exactly), or, with ``model=None``, a fresh
    initialisation."""

    model: Mapping[str, Any] | None = None
    coefs: tuple[float, float] = SHRINK_PERTURB
    copied: tuple[str, ...] = ()


def inherit_model(
    base: Mapping[str, Any],
    donor: Mapping[str, Any] | None,
    fresh: Mapping[str, Any],
    space: SearchSpace,
    taken: Iterable[int] = (),
    reinit: Iterable[int] = (),
    shrink_perturb_coefs: Sequence[float] = SHRINK_PERTURB,
    axes: Axes | None = None,
    width_policy: str = "adapt",
    seed: int = 0,
    copied: Sequence[str] = (),
) -> dict[str, torch.Tensor]:
    """The child's model state (Algorithm 2, lines 5-14).

    Keys of taken variables under a ``copied`` prefix (averaged copies, e.g. an EMA generator, with
    ``research_code_compat``) are the donor's exactly, as the research code copied them.

    ``fresh`` is a new initialisation of the *child's* architecture and fixes the child's keys.
    Keys owned by a ``taken`` variable are ``shrink * donor + perturb * fresh``; keys owned by a
    ``reinit`` variable are ``fresh``; every other key is the base parent's, unchanged.

    With width variables (``axes``: the child's unit axes, :meth:`pbt_evo.task.Task.unit_axes`), a tensor
    whose source has another width than the child is adapted along its declared dims
    (:func:`pbt_evo.widths.adapt_tensor`, maps seeded by ``seed``) and then shrink-perturbed like a taken
    one, as a new layer made from its source's: the fresh part is what lets duplicated units, which would
    otherwise get identical gradients forever, grow apart (Net2Net adds noise for this). With
    ``shrink_perturb_coefs=(1, 0)`` the adapted child computes its source's function; ``width_policy=
    "fresh"`` gives such tensors the fresh initialisation instead.

    >>> from pbt_evo.space import Variable
    >>> space = SearchSpace([Variable("l0", ("a", "b"), owns=("l0",))])
    >>> t = lambda v: {"l0.w": torch.tensor([v]), "head.w": torch.tensor([v])}
    >>> child = inherit_model(t(1.0), t(2.0), t(10.0), space, taken=[0])
    >>> round(child["l0.w"].item(), 6), child["head.w"].item()
    (1.8, 1.0)
    """
    taken = set(taken)
    if taken and donor is None:
        raise InheritanceError("variables are taken from a donor but no donor state was given")
    coefs = (float(shrink_perturb_coefs[0]), float(shrink_perturb_coefs[1]))
    sources = {i: Source(donor, coefs, tuple(copied)) for i in taken}
    sources.update({i: Source() for i in reinit})
    return assemble_model(base, fresh, space, sources, axes, width_policy, seed, coefs)


def assemble_model(
    base: Mapping[str, Any],
    fresh: Mapping[str, Any],
    space: SearchSpace,
    sources: Mapping[int, Source],
    axes: Axes | None = None,
    width_policy: str = "adapt",
    seed: int = 0,
    adapt_coefs: Sequence[float] = SHRINK_PERTURB,
) -> dict[str, torch.Tensor]:
    """The child's model state from its base parent and, per variable, a :class:`Source` (what
    :func:`inherit_model` does for one donor; a child's recipe may name several sources). Keys of other
    variables are the base parent's; a key whose source has another width than the child is adapted and
    shrink-perturbed with its source's coefficients (``adapt_coefs`` for the base parent's keys).

    >>> from pbt_evo.space import Variable
    >>> space = SearchSpace([Variable("a", (0, 1), owns=("a",)), Variable("b", (0, 1), owns=("b",))])
    >>> t = lambda v: {"a.w": torch.tensor([v]), "b.w": torch.tensor([v])}
    >>> child = assemble_model(t(1.0), t(10.0), space, {0: Source(t(2.0), (1.0, 0.0)), 1: Source()})
    >>> child["a.w"].item(), child["b.w"].item()
    (2.0, 10.0)
    """
    if width_policy not in WIDTH_POLICIES:
        raise ValueError(f"width_policy {width_policy!r}: allowed values are {', '.join(WIDTH_POLICIES)}")
    units = axes_by_key(axes or {})
    child: dict[str, torch.Tensor] = {}
    for key, fresh_value in fresh.items():
        owner = space.owner(key)
        fresh_t = as_tensor(fresh_value)
        src = sources.get(owner) if owner is not None else None
        if src is not None and src.model is None:
            child[key] = fresh_t.clone()
            continue
        source, name = (src.model, "donor") if src is not None else (base, "base parent")
        where = f"owned by variable {space[owner].name!r}" if owner is not None else "owned by no variable"
        if key not in source:
            raise InheritanceError(
                f"state key {key!r} ({where}) is missing from the {name}: the space's 'owns' prefixes must"
                f" cover every layer whose presence depends on a variable")
        value = as_tensor(source[key])
        adapted = key in units and value.shape != fresh_t.shape
        if adapted:
            value = adapt_tensor(value, fresh_t.shape, units[key], seed)
        if value.shape != fresh_t.shape:
            declared = f" after adapting its unit axes (dims {sorted(d for _, d, _ in units[key])})" if adapted else ""
            raise InheritanceError(
                f"state key {key!r} ({where}) has shape {tuple(as_tensor(source[key]).shape)} in the {name}"
                f" but {tuple(fresh_t.shape)} in the child{declared}: a variable that changes this shape must"
                f" own the key, or be a width variable whose unit axes declare the dims it changes")
        shrink, perturb = src.coefs if src is not None else adapt_coefs
        if adapted and width_policy == "fresh":
            child[key] = fresh_t.clone()
        elif src is not None and not adapted and key.startswith(src.copied):
            child[key] = value.clone()
        elif adapted or src is not None:
            child[key] = shrink_perturb(value, fresh_t, shrink, perturb)
        else:
            child[key] = value.clone()
    return child


def searl_candidates(model: torch.nn.Module, skip: Sequence[str] = ()) -> list[str]:
    """Names of the tensors SEARL may mutate: floating parameters with more than one dimension that
    are not normalisation parameters (BatchNorm/LayerNorm weights are 1-D; 'norm' in the name excludes
    the rest), and not under a ``skip`` prefix.

    >>> searl_candidates(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)), skip=("1.",))
    ['0.weight']
    """
    return [n for n, p in model.named_parameters()
            if p.is_floating_point() and p.dim() > 1 and "norm" not in n.lower() and not n.startswith(tuple(skip))]


def searl_weight_mutation(
    state: Mapping[str, Any], candidates: Sequence[str], generator: torch.Generator
) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """SEARL's weight mutation on copies of ``state``; returns the new state and entries changed per key.

    A random number (1..all) of the ``candidates`` is chosen; in each, a fraction drawn uniformly from
    [0, 0.1) of the entries (rounded down) is mutated: 90% get ``+N(0, (0.1|w|)^2)``, 5% ``+N(0, (10|w|)^2)``,
    5% are reset to ``N(0, 1)``; results are clamped to +-1e6.

    >>> g = torch.Generator().manual_seed(0)
    >>> new, changed = searl_weight_mutation({"w": torch.ones(10, 10)}, ["w"], g)
    >>> changed["w"] <= 10
    True
    """
    out = {k: as_tensor(v) for k, v in state.items()}
    if not candidates:
        return out, {}
    n_chosen = int(torch.randint(1, len(candidates) + 1, (1,), generator=generator))
    order = torch.randperm(len(candidates), generator=generator)[:n_chosen].tolist()
    changed: dict[str, int] = {}
    for j in sorted(order):
        key = candidates[j]
        w = out[key].clone()
        flat = w.view(-1)
        fraction = float(torch.rand((), generator=generator)) * SEARL_MAX_FRACTION
        n_mut = int(fraction * flat.numel())
        idx = torch.randperm(flat.numel(), generator=generator)[:n_mut]
        kind = torch.rand(n_mut, generator=generator)
        noise = torch.randn(n_mut, generator=generator, dtype=flat.dtype)
        old = flat[idx]
        scale = torch.where(kind < 1 - SEARL_P_SUPER - SEARL_P_RESET, SEARL_NORMAL_SCALE, SEARL_SUPER_SCALE).to(flat.dtype)
        new = torch.where(kind < 1 - SEARL_P_RESET, old + noise * scale * old.abs(), noise)
        flat[idx] = new.clamp(-SEARL_CLAMP, SEARL_CLAMP)
        out[key] = w
        changed[key] = n_mut
    return out, changed


# -- optimizer state by parameter name ------------------------------------------------------------
def _param_names(optimizer: torch.optim.Optimizer, model: torch.nn.Module) -> list[list[str]]:
    names = {id(p): n for n, p in model.named_parameters(remove_duplicate=False)}
    try:
        return [[names[id(p)] for p in g["params"]] for g in optimizer.param_groups]
    except KeyError:
        raise InheritanceError("an optimizer holds a parameter that is not in member.model") from None


def optimizer_state_by_name(optimizer: torch.optim.Optimizer, model: torch.nn.Module) -> NamedOptimState:
    """``optimizer.state_dict()`` with parameter names instead of positions (tensors as numpy).

    >>> m = torch.nn.Linear(2, 1); opt = torch.optim.Adam(m.parameters())
    >>> sorted(optimizer_state_by_name(opt, m)["groups"][0]["params"])
    ['bias', 'weight']
    """
    sd = optimizer.state_dict()
    groups_names = _param_names(optimizer, model)
    state, groups = {}, []
    for group, names in zip(sd["param_groups"], groups_names):
        for idx, name in zip(group["params"], names):
            if idx in sd["state"]:
                state[name] = {k: to_numpy(v) for k, v in sd["state"][idx].items()}
        groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": names})
    return {"state": state, "groups": groups}


def load_optimizer_state_by_name(
    optimizer: torch.optim.Optimizer, model: torch.nn.Module, named: NamedOptimState
) -> None:
    """Load a name-keyed optimizer state; parameters without saved state start fresh.

    Group hyperparameters are taken from the saved groups when the group count matches.
    """
    groups_names = _param_names(optimizer, model)
    shapes = {n: p.shape for n, p in model.named_parameters(remove_duplicate=False)}
    state, groups, i = {}, [], 0
    saved_groups = named.get("groups", [])
    for g, names in enumerate(groups_names):
        hyper = {k: v for k, v in optimizer.param_groups[g].items() if k != "params"}
        if len(saved_groups) == len(groups_names):
            hyper.update({k: v for k, v in saved_groups[g].items() if k != "params"})
        groups.append({**hyper, "params": list(range(i, i + len(names)))})
        for name in names:
            saved = named.get("state", {}).get(name)
            if saved is not None:
                tensors = {k: as_tensor(v).clone() if isinstance(v, (np.ndarray, torch.Tensor)) else v
                           for k, v in saved.items()}
                for k, v in tensors.items():
                    if isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape != shapes[name]:
                        raise InheritanceError(
                            f"optimizer state {k!r} of {name!r} has shape {tuple(v.shape)}, parameter has"
                            f" {tuple(shapes[name])}")
                state[i] = tensors
            i += 1
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def inherit_optimizer(
    base: NamedOptimState,
    donor: NamedOptimState | None,
    space: SearchSpace,
    taken: Iterable[int] = (),
    reinit: Iterable[int] = (),
    policy: str = "reset",
) -> NamedOptimState:
    """The child's name-keyed optimizer state under ``policy`` (see the module docstring).

    >>> from pbt_evo.space import Variable
    >>> space = SearchSpace([Variable("l0", ("a", "b"), owns=("l0",))])
    >>> base = {"state": {"l0.w": {"step": 5}, "head.w": {"step": 5}}, "groups": []}
    >>> sorted(inherit_optimizer(base, base, space, taken=[0])["state"])
    ['head.w']
    """
    if policy not in OPTIMIZER_POLICIES:
        raise ValueError(f"optimizer_policy {policy!r}: allowed values are {', '.join(OPTIMIZER_POLICIES)}")
    taken, reinit = set(taken), set(reinit)
    state: dict[str, Any] = {}
    for name, s in base.get("state", {}).items():
        if space.owner(name) not in taken | reinit:
            state[name] = s
    if policy == "donor" and donor is not None:
        for name, s in donor.get("state", {}).items():
            owner = space.owner(name)
            if owner in taken and owner not in reinit:
                state[name] = s
    return {"state": state, "groups": base.get("groups", [])}


def adapt_optimizer_state(named: NamedOptimState, shapes: Mapping[str, Sequence[int]], axes: Axes, seed: int,
                          keep: bool) -> NamedOptimState:
    """``named`` (from :func:`inherit_optimizer`) for a child of other widths: the moments of a parameter
    whose shape the child changed are re-indexed by the same unit maps as its weights (``keep``; copied
    per unit, never divided: Adam's step is the same for a unit's copies as it was for the unit) or
    dropped (the parameter restarts); other parameters are unchanged.

    >>> from pbt_evo.widths import UnitAxis
    >>> named = {"state": {"w": {"step": 3, "exp_avg": np.ones(2)}}, "groups": []}
    >>> axes = {"h": UnitAxis("h", copy=("w",))}
    >>> adapt_optimizer_state(named, {"w": (4,)}, axes, seed=0, keep=True)["state"]["w"]["exp_avg"].tolist()
    [1.0, 1.0, 1.0, 1.0]
    >>> adapt_optimizer_state(named, {"w": (4,)}, axes, seed=0, keep=False)["state"]
    {}
    """
    units = axes_by_key(axes)
    state: dict[str, Any] = {}
    for name, saved in named.get("state", {}).items():
        shape = tuple(shapes[name]) if name in shapes else None
        moved = {k: v for k, v in saved.items() if isinstance(v, (np.ndarray, torch.Tensor)) and np.ndim(v) > 0}
        if name not in units or shape is None or all(tuple(np.shape(v)) == shape for v in moved.values()):
            state[name] = saved
        elif keep:
            state[name] = {**saved, **{k: adapt_tensor(as_tensor(v), shape, units[name], seed, divide=False)
                                       for k, v in moved.items()}}
    return {**named, "state": state}
