"""Weight handles: where an individual's trained state is, or the recipe to make it.

The driver only ever holds handles. A handle is one of

- :class:`FreshState`: a new initialisation under a seed (initial population);
- :class:`StoredState`: a trained state, either a Ray ``ObjectRef`` (the state stays in the object
  store of the node that trained it), a state held by the worker that trained it
  (``RayMap(hold_states=True)``), an in-memory state dict (serial map, resume) or a file path;
- :class:`MixedState`: the recipe of a child (Algorithm 2): base parent, donor, the variables taken
  from the donor, variables re-initialised, shrink-perturb coefficients, an optional SEARL weight
  mutation and a seed. It is materialised inside the worker that trains the child, so parents'
  weights never pass through the driver.

``materialise(handle, task, genome)`` builds the member in the worker with its state loaded.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .task import Member, Task
from .weights import (
    as_tensor,
    inherit_model,
    inherit_optimizer,
    load_optimizer_state_by_name,
    optimizer_state_by_name,
    searl_candidates,
    searl_weight_mutation,
    to_numpy,
)

State = dict[str, Any]


def seed_everything(seed: int) -> None:
    """Seed torch, numpy's global generator and ``random`` (what tasks may use)."""
    seed = int(seed) % (2**32)
    if torch.accelerator.is_available():
        torch.manual_seed(seed)  # also seeds the accelerator's generators
    else:
        # CPU only: torch.manual_seed would also queue lazy seeding of CUDA/XPU/MTIA, recording a
        # Python stack each time (0.08 ms, 3 times per member); the CPU generator is all there is
        torch.default_generator.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


@contextmanager
def kept_rng() -> Iterator[None]:
    """Restore the global generators (``random``, numpy, torch) on exit: members reseed them, and the
    driver's streams (DEAP's operators use ``random``) must not depend on whether training ran in this
    process or in a worker.

    >>> random.seed(1); with_training = None
    >>> with kept_rng():
    ...     seed_everything(5)
    >>> random.random() == (random.seed(1) or random.random())
    True
    """
    saved = random.getstate(), np.random.get_state(), torch.get_rng_state()
    try:
        yield
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
        torch.set_rng_state(saved[2])


_INITIALISERS = tuple(n for n in dir(torch.nn.init) if n.endswith("_") and not n.startswith("_"))


@contextmanager
def skip_init() -> Iterator[None]:
    """Build without running ``torch.nn.init``'s initialisers, for a member whose every weight is then
    overwritten by a stored state: the initial values are never read, and drawing them is most of a
    build (measured: a paper-size GAN 55 -> 13 ms, W1's MLP 1.8 -> 0.4 ms). Not thread-safe (it patches
    the module); workers build one member at a time.

    >>> with skip_init():
    ...     layer = torch.nn.Linear(2, 2)   # weights left as allocated
    >>> torch.nn.init.zeros_(layer.bias).abs().sum().item()   # restored on exit
    0.0
    """
    saved = {name: getattr(torch.nn.init, name) for name in _INITIALISERS}
    for name in saved:
        setattr(torch.nn.init, name, lambda tensor, *args, **kwargs: tensor)
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(torch.nn.init, name, fn)


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
    """The state behind a stored reference: ObjectRef, dict, file path, or a reference that resolves
    itself (a state held by a Ray worker, :class:`pbt_evo.parallel.HeldRef`)."""
    if isinstance(ref, Mapping):
        return dict(ref)
    if isinstance(ref, (str, Path)):
        return torch.load(ref, map_location="cpu", weights_only=False)
    if hasattr(ref, "resolve"):
        return ref.resolve()
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
        return task.build(list(genome))


@dataclass(frozen=True, eq=False)
class StoredState(WeightHandle):
    """A trained state: ``ref`` is a Ray ObjectRef, an in-memory state dict, a file path or a state held
    by the Ray worker that trained it (:class:`pbt_evo.parallel.HeldRef`)."""

    ref: Any

    def load(self) -> State:
        return resolve(self.ref)

    def materialise(self, task: Task, genome: Sequence[int]) -> Member:
        seed_everything(0)  # the initial values are overwritten; seeding keeps builds identical
        with skip_init():
            member = task.build(list(genome))
        restore(member, self.load())
        return member


@dataclass(frozen=True, eq=False)
class MixedState(WeightHandle):
    """A child's recipe: base parent's state, layers of ``taken`` variables from the donor
    (shrink-perturbed), layers of ``reinit`` variables fresh, then optionally a SEARL weight mutation.

    ``seed`` fixes the fresh initialisation of the child's architecture (the perturbation source).
    """

    base: StoredState
    donor: StoredState | None = None
    taken: tuple[int, ...] = ()
    reinit: tuple[int, ...] = ()
    shrink_perturb: tuple[float, float] = (0.4, 0.1)
    searl_seed: int | None = None
    optimizer_policy: str = "reset"
    seed: int = 0

    def with_(self, **changes: Any) -> "MixedState":
        return replace(self, **changes)

    def materialise(self, task: Task, genome: Sequence[int]) -> Member:
        seed_everything(self.seed)
        # a copy of the base parent (mixing with p=0, SEARL) uses no fresh weight: skip drawing them
        with nullcontext() if self.taken or self.reinit else skip_init():
            member = task.build(list(genome))
        fresh = member.model.state_dict()
        base = self.base.load()
        donor = self.donor.load() if self.donor is not None else None
        model = inherit_model(base["model"], donor["model"] if donor else None, fresh, task.space,
                              self.taken, self.reinit, self.shrink_perturb)
        if self.searl_seed is not None:
            gen = torch.Generator().manual_seed(self.searl_seed)
            model, _ = searl_weight_mutation(model, searl_candidates(member.model), gen)
        optim = {name: inherit_optimizer(base.get("optim", {}).get(name, {}),
                                         (donor or {}).get("optim", {}).get(name),
                                         task.space, self.taken, self.reinit, self.optimizer_policy)
                 for name in member.optimizers}
        restore(member, {"model": model, "optim": optim, "extras": base.get("extras", {})})
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
    (replaced by a handle by the map before it reaches the driver's loop)."""

    fitness: float
    metrics: dict[str, float] = field(default_factory=dict)
    state: Any = None
    seconds: float = 0.0
    failed: bool = False
    error: str | None = None
