"""Weight handles: where an individual's trained state is, or the recipe to make it.

The driver only ever holds handles. A handle is one of

- :class:`FreshState`: a new initialisation under a seed (initial population);
- :class:`StoredState`: a trained state, either a Ray ``ObjectRef`` (the state stays in the object
  store of the node that trained it), an in-memory state dict (serial map, resume) or the path of a
  state file (:mod:`pbt_evo.statefile`);
- :class:`MixedState`: the recipe of a child (Algorithm 2): base parent, donor, the variables taken
  from the donor, variables re-initialised, shrink-perturb coefficients, an optional SEARL weight
  mutation and a seed. It is materialised inside the worker that trains the child, so parents'
  weights never pass through the driver.

``materialise(handle, task, genome)`` builds the member in the worker with its state loaded, then has the
task write the genome's hyperparameters into it (:meth:`~pbt_evo.task.Task.set_hyperparameters`; a
loaded optimizer state brings its parent's parameter groups, never its values).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from . import statefile
from .rng import seed_everything, skip_init
from .task import Member, Task
from .weights import (
    adapt_optimizer_state,
    as_tensor,
    inherit_model,
    inherit_optimizer,
    load_optimizer_state_by_name,
    optimizer_state_by_name,
    searl_candidates,
    searl_weight_mutation,
    shrink_perturb_state,
    to_numpy,
)

State = dict[str, Any]


def capture(member: Member) -> State:
    """The member's whole state: model, optimizers by parameter name, extras.

    >>> class M(Member):
    ...     def __init__(self): self.model = torch.nn.Linear(1, 1); self.optimizers = {}
    ...     def train(self, epochs): return {}
    ...     def evaluate(self): return 0.0
    >>> sorted(capture(M())["model"])
    ['bias', 'weight']
    """
    return {
        "model": {k: to_numpy(v) for k, v in member.model.state_dict().items()},
        "optim": {n: optimizer_state_by_name(o, member.model) for n, o in member.optimizers.items()},
        "extras": member.extras_state(),
    }


def restore(member: Member, state: Mapping[str, Any]) -> None:
    """Load a state made by :func:`capture` (or by inheritance) into a freshly built member."""
    member.model.load_state_dict({k: as_tensor(v) for k, v in state["model"].items()})
    for name, opt in member.optimizers.items():
        named = state.get("optim", {}).get(name)
        if named is not None:
            load_optimizer_state_by_name(opt, member.model, named)
    if state.get("extras"):
        member.load_extras(state["extras"])


def resolve(ref: Any) -> State:
    """The state behind a stored reference: an ObjectRef, a dict or the path of a state file
    (:mod:`pbt_evo.statefile`: read without executing code).

    >>> resolve({"model": {}})
    {'model': {}}
    """
    if isinstance(ref, Mapping):
        return dict(ref)
    if isinstance(ref, (str, Path)):
        return statefile.read(ref)
    import ray  # only stored refs need Ray

    return ray.get(ref)


class WeightHandle:
    """Base class of handles; subclasses are small, picklable and tensor-free (except in-memory states)."""

    def materialise(self, task: Task, genome: Sequence[int]) -> Member:
        raise NotImplementedError


@dataclass(frozen=True)
class FreshState(WeightHandle):
    """A new network initialised under ``seed``."""

    seed: int

    def materialise(self, task: Task, genome: Sequence[int]) -> Member:
        seed_everything(self.seed)
        member = task.build(list(genome))
        task.set_hyperparameters(member, list(genome))
        return member


@dataclass(frozen=True, eq=False)
class StoredState(WeightHandle):
    """A trained state: ``ref`` is a Ray ObjectRef, an in-memory state dict or a file path.

    >>> StoredState({"model": {}}).load()
    {'model': {}}
    """

    ref: Any

    def load(self) -> State:
        return resolve(self.ref)

    def materialise(self, task: Task, genome: Sequence[int]) -> Member:
        seed_everything(0)  # the initial values are overwritten; seeding keeps builds identical
        with skip_init():
            member = task.build(list(genome))
        restore(member, self.load())
        task.set_hyperparameters(member, list(genome))
        return member


@dataclass(frozen=True, eq=False)
class MixedState(WeightHandle):
    """A child's recipe: base parent's state, layers of ``taken`` variables from the donor
    (shrink-perturbed), layers of ``reinit`` variables fresh, then optionally a SEARL weight mutation.

    ``seed`` fixes the fresh initialisation of the child's architecture (the perturbation source) and
    the unit maps of layers whose width the child changes (``width_policy``: adapted, or fresh; their
    optimizer moments follow ``optimizer_policy``: ``donor`` maps them like the weights, ``reset`` drops
    them; see :mod:`pbt_evo.widths`).
    """

    base: StoredState
    donor: StoredState | None = None
    taken: tuple[int, ...] = ()
    reinit: tuple[int, ...] = ()
    shrink_perturb: tuple[float, float] = (0.4, 0.1)
    searl_seed: int | None = None
    optimizer_policy: str = "reset"
    seed: int = 0
    width_policy: str = "adapt"
    perturb_all: bool = False  # every tensor shrink-perturbed against a fresh init (random_sp, Table 3)
    copied: tuple[str, ...] = ()  # key prefixes copied, not shrink-perturbed (research_code_compat)
    searl_skip: tuple[str, ...] = ()  # key prefixes the SEARL weight mutation leaves alone

    def with_(self, **changes: Any) -> "MixedState":
        return replace(self, **changes)

    def materialise(self, task: Task, genome: Sequence[int]) -> Member:
        seed_everything(self.seed)
        # a copy of the base parent (mixing with p=0, SEARL) uses no fresh weight: skip drawing them
        with nullcontext() if self.taken or self.reinit or self.perturb_all else skip_init():
            member = task.build(list(genome))
        fresh = member.model.state_dict()
        base = self.base.load()
        if self.perturb_all:
            model = shrink_perturb_state(base["model"], fresh, *self.shrink_perturb, copied=self.copied)
            optim = {} if self.optimizer_policy == "reset" else base.get("optim", {})
            restore(member, {"model": model, "optim": optim, "extras": base.get("extras", {})})
            return member
        donor = self.donor.load() if self.donor is not None else None
        axes = task.unit_axes(list(genome))
        model = inherit_model(base["model"], donor["model"] if donor else None, fresh, task.space,
                              self.taken, self.reinit, self.shrink_perturb, axes, self.width_policy, self.seed,
                              self.copied)
        if self.searl_seed is not None:
            gen = torch.Generator().manual_seed(self.searl_seed)
            model, _ = searl_weight_mutation(model, searl_candidates(member.model, self.searl_skip), gen)
        optim = {name: inherit_optimizer(base.get("optim", {}).get(name, {}),
                                         (donor or {}).get("optim", {}).get(name),
                                         task.space, self.taken, self.reinit, self.optimizer_policy)
                 for name in member.optimizers}
        if axes:
            shapes = {n: p.shape for n, p in member.model.named_parameters()}
            keep = self.optimizer_policy == "donor" and self.width_policy == "adapt"
            optim = {name: adapt_optimizer_state(o, shapes, axes, self.seed, keep) for name, o in optim.items()}
        restore(member, {"model": model, "optim": optim, "extras": base.get("extras", {})})
        task.set_hyperparameters(member, list(genome))
        return member


def as_recipe(handle: WeightHandle) -> MixedState:
    """The handle as a child recipe, so operators can add to it (mutation after mixing)."""
    if isinstance(handle, MixedState):
        return handle
    if isinstance(handle, StoredState):
        return MixedState(base=handle)
    raise TypeError(f"an individual must be trained before it can be a parent (handle {type(handle).__name__})")


@dataclass
class TrainResult:
    """What training one member returns: fitness, metrics, seconds in the worker, and its new state
    (replaced by a handle by the map before it reaches the driver's loop); with several objectives,
    ``values`` holds them all."""

    fitness: float
    metrics: dict[str, float] = field(default_factory=dict)
    state: Any = None
    seconds: float = 0.0
    failed: bool = False
    error: str | None = None
    values: tuple[float, ...] | None = None  # every objective's value (pbt_evo.objectives); None: (fitness,)
