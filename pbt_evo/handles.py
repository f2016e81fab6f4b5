"""Weight handles: where an individual's trained state is, or the recipe to make it.

The driver only ever holds handles. A handle is one of

- :class:`FreshState`: a new initialisation under a seed (initial population);
- :class:`StoredState`: a trained state, either a Ray ``ObjectRef`` (the state stays in the object
  store of the node that trained it), an in-memory state dict (serial map, resume) or the path of a
  state file (:mod:`pbt_evo.statefile`);
- :class:`MixedState`: the recipe of a child: its base parent's state plus the steps operators
  appended (:class:`Inherit` layers from a donor, Algorithm 2; :class:`Reinit`; :class:`MutateWeights`;
  :class:`PerturbAll`), each a frozen record applied by a pure function of :mod:`pbt_evo.weights`. It
  is materialised inside the worker that trains the child, so parents' weights never pass through the
  driver. A new operator adds a step class here, not a field.

``materialise(handle, task, genome)`` builds the member in the worker with its state loaded, then has the
task write the genome's hyperparameters into it (:meth:`~pbt_evo.task.Task.set_hyperparameters`; a
loaded optimizer state brings its parent's parameter groups, never its values).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from . import statefile
from .rng import seed_everything, skip_init
from .task import Member, Task
from .space import SearchSpace
from .weights import (
    SHRINK_PERTURB,
    NamedOptimState,
    Source,
    adapt_optimizer_state,
    as_tensor,
    assemble_model,
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


class Step:
    """One step of a child's recipe: frozen data naming what changes, applied by a pure function of
    :mod:`pbt_evo.weights` when the recipe is materialised. A step may claim variables' layers
    (:meth:`sources`; a later claim of a variable wins), change the optimizer state (:meth:`optimizer`)
    and transform the assembled model (:meth:`transform`); ``fresh`` says whether it reads the fresh
    initialisation of the child's architecture."""

    fresh = False

    def coefs(self) -> tuple[float, float] | None:
        """The shrink-perturb coefficients it applies to layers it takes (also those adapted to another width)."""
        return None

    def keeps_moments(self) -> bool:
        """Whether moments of the layers it takes travel with them (then re-indexed when widths change)."""
        return False

    def sources(self, load: Callable[[StoredState], State]) -> dict[int, Source]:
        return {}

    def optimizer(self, named: NamedOptimState, space: SearchSpace, load: Callable[[StoredState], State],
                  name: str) -> NamedOptimState:
        return named

    def transform(self, model: dict[str, Any], fresh: Mapping[str, Any], member: Member) -> dict[str, Any]:
        return model


@dataclass(frozen=True)
class Inherit(Step):
    """Algorithm 2, lines 5-14: the layers of ``variables`` from the donor, ``shrink * donor + perturb *
    fresh`` (keys under a ``copied`` prefix copied exactly); their optimizer moments reset or the donor's
    (``optimizer_policy``, :func:`~pbt_evo.weights.inherit_optimizer`)."""

    donor: StoredState
    variables: tuple[int, ...]
    shrink_perturb: tuple[float, float] = SHRINK_PERTURB
    optimizer_policy: str = "reset"
    copied: tuple[str, ...] = ()
    fresh = True

    def coefs(self) -> tuple[float, float] | None:
        return self.shrink_perturb

    def keeps_moments(self) -> bool:
        return self.optimizer_policy == "donor"

    def sources(self, load: Callable[[StoredState], State]) -> dict[int, Source]:
        model = load(self.donor)["model"]
        return {i: Source(model, self.shrink_perturb, self.copied) for i in self.variables}

    def optimizer(self, named: NamedOptimState, space: SearchSpace, load: Callable[[StoredState], State],
                  name: str) -> NamedOptimState:
        donor = load(self.donor).get("optim", {}).get(name) if self.optimizer_policy == "donor" else None
        return inherit_optimizer(named, donor, space, self.variables, (), self.optimizer_policy)


@dataclass(frozen=True)
class Reinit(Step):
    """The layers of ``variables`` freshly initialised, their moments reset (a resampled variable)."""

    variables: tuple[int, ...]
    fresh = True

    def sources(self, load: Callable[[StoredState], State]) -> dict[int, Source]:
        return {i: Source() for i in self.variables}

    def optimizer(self, named: NamedOptimState, space: SearchSpace, load: Callable[[StoredState], State],
                  name: str) -> NamedOptimState:
        return inherit_optimizer(named, None, space, (), self.variables)


@dataclass(frozen=True)
class MutateWeights(Step):
    """SEARL's weight mutation (:func:`~pbt_evo.weights.searl_weight_mutation`) under ``seed``, on every
    candidate tensor not under a ``skip`` prefix; the moments stay (as in SEARL)."""

    seed: int
    skip: tuple[str, ...] = ()

    def transform(self, model: dict[str, Any], fresh: Mapping[str, Any], member: Member) -> dict[str, Any]:
        gen = torch.Generator().manual_seed(self.seed)
        return searl_weight_mutation(model, searl_candidates(member.model, self.skip), gen)[0]


@dataclass(frozen=True)
class PerturbAll(Step):
    """Every tensor shrink-perturbed against the fresh initialisation (keys under ``copied`` kept): random
    search with shrink-perturb (the paper's Table 3); moments reset, or kept (``optimizer_policy="donor"``:
    the member's own, as the research code did)."""

    shrink_perturb: tuple[float, float] = SHRINK_PERTURB
    optimizer_policy: str = "reset"
    copied: tuple[str, ...] = ()
    fresh = True

    def optimizer(self, named: NamedOptimState, space: SearchSpace, load: Callable[[StoredState], State],
                  name: str) -> NamedOptimState:
        return {} if self.optimizer_policy == "reset" else named

    def transform(self, model: dict[str, Any], fresh: Mapping[str, Any], member: Member) -> dict[str, Any]:
        return shrink_perturb_state(model, fresh, *self.shrink_perturb, copied=self.copied)


@dataclass(frozen=True, eq=False)
class MixedState(WeightHandle):
    """A child's recipe: its base parent's state and the :class:`Step` s that operators appended
    (:class:`Inherit` from a donor, :class:`Reinit`, :class:`MutateWeights`, :class:`PerturbAll`),
    folded in order when a worker materialises the child.

    ``seed`` fixes the fresh initialisation of the child's architecture (the perturbation source) and
    the unit maps of layers whose width the child changes (``width_policy``: adapted, or fresh; their
    optimizer moments follow the inheriting step's policy: ``donor`` maps them like the weights,
    ``reset`` drops them; see :mod:`pbt_evo.widths`).

    >>> recipe = MixedState(StoredState({})).then(Reinit((1,)), seed=7)
    >>> recipe.steps, recipe.seed
    ((Reinit(variables=(1,)),), 7)
    """

    base: StoredState
    steps: tuple[Step, ...] = ()
    seed: int = 0
    width_policy: str = "adapt"

    def then(self, step: Step, **changes: Any) -> "MixedState":
        """This recipe with ``step`` appended (and ``seed`` / ``width_policy`` changed)."""
        return replace(self, steps=self.steps + (step,), **changes)

    def materialise(self, task: Task, genome: Sequence[int]) -> Member:
        seed_everything(self.seed)
        # a copy of the base parent (SEARL's, PBT's exploit) uses no fresh weight: skip drawing them
        with nullcontext() if any(s.fresh for s in self.steps) else skip_init():
            member = task.build(list(genome))
        # the child is assembled on the CPU, where the parents' states are, whatever device the member is on
        fresh = {k: v.cpu() for k, v in member.model.state_dict().items()}
        base = self.base.load()
        loaded: dict[int, State] = {}

        def load(handle: StoredState) -> State:  # each donor's state read once
            return loaded.setdefault(id(handle), handle.load())

        sources: dict[int, Source] = {}
        coefs = SHRINK_PERTURB
        for step in self.steps:
            sources.update(step.sources(load))
            coefs = step.coefs() or coefs
        axes = task.unit_axes(list(genome))
        model = assemble_model(base["model"], fresh, task.space, sources, axes, self.width_policy, self.seed, coefs)
        optim = {}
        for name in member.optimizers:
            named = base.get("optim", {}).get(name, {})
            for step in self.steps:
                named = step.optimizer(named, task.space, load, name)
            optim[name] = named
        for step in self.steps:
            model = step.transform(model, fresh, member)
        if axes:
            shapes = {n: p.shape for n, p in member.model.named_parameters()}
            keep = self.width_policy == "adapt" and any(s.keeps_moments() for s in self.steps)
            optim = {name: adapt_optimizer_state(o, shapes, axes, self.seed, keep) for name, o in optim.items()}
        restore(member, {"model": model, "optim": optim, "extras": base.get("extras", {})})
        task.set_hyperparameters(member, list(genome))
        return member


def as_recipe(handle: WeightHandle) -> MixedState:
    """The handle as a child recipe, so operators can append steps to it.

    >>> as_recipe(StoredState({})).steps
    ()
    """
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
