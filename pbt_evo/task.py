"""What a task provides to pbt_evo: a search space and a way to build a trainable member.

A task is built once per worker process. For each population member it builds a :class:`Member`
from a genome; pbt_evo then loads the member's inherited state into it, trains it ``e_step`` epochs,
evaluates it and keeps its state. Everything a member must carry between generations is one of:

- ``member.model``: an ``nn.Module`` holding *all* its weights, including target or EMA copies.
  Its ``state_dict()`` keys are what search-space variables own (by prefix).
- ``member.optimizers``: named optimizers over parameters of ``member.model``; their state is
  stored by parameter *name* (see :mod:`pbt_evo.weights`), never by position.
- ``member.extras_state()`` / ``load_extras()``: anything else (replay buffer, step counters).
  A child takes its base parent's extras.

Randomness: pbt_evo seeds ``torch``, ``numpy.random`` and ``random`` before ``build`` (which is how
a "fresh initialisation" is reproducible), before ``train`` and before ``evaluate``.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .space import SearchSpace
from .widths import UnitAxis


class Member(ABC):
    """One trainable network (plus its optimizers and extras) built for one genome."""

    model: torch.nn.Module
    optimizers: Mapping[str, torch.optim.Optimizer] = {}

    @abstractmethod
    def train(self, epochs: int) -> dict[str, float]:
        """Train for ``epochs`` of the task's epochs; return metrics to log (may be empty)."""

    @abstractmethod
    def evaluate(self) -> float:
        """Fitness, higher is better (e.g. validation accuracy, mean return, -FID)."""

    def train_steps(self, steps: int) -> dict[str, float]:
        """Train for ``steps`` minibatches instead of epochs: one step of one-shot search (``bnao``, ``nao``:
        :mod:`pbt_evo.oneshot`) trains a sampled architecture for a few minibatches. Optional; the default
        says which task lacks it.

        >>> class M(Member):
        ...     def train(self, epochs): return {}
        ...     def evaluate(self): return 0.0
        >>> M().train_steps(1)
        Traceback (most recent call last):
        NotImplementedError: M does not implement Member.train_steps and Member.steps_per_epoch, which one-shot search (bnao, nao) needs; tasks/mnist1d.py shows both
        """
        raise NotImplementedError(_one_shot_missing(self))

    def steps_per_epoch(self) -> int:
        """Minibatches in one of the task's epochs, to state a one-shot search's budget in epochs (optional,
        with :meth:`train_steps`)."""
        raise NotImplementedError(_one_shot_missing(self))

    def test_score(self) -> float | None:
        """Score on held-out test data, never used for fitness (``compare --report test``); None: no test set."""
        return None

    def final_scores(self) -> dict[str, float] | None:
        """The costly final evaluation of the best network (e.g. FID on 50,000 images and Inception Score),
        run when ``output.final_evaluation`` is on; None: the task has none."""
        return None

    def objective_values(self) -> Mapping[str, float]:
        """More values of the member just evaluated, by name (those in its task's ``objective_names``), for
        ``algorithm.objectives`` to name besides fitness (e.g. a GAN's Inception Score); called after
        :meth:`evaluate`, only when an objective names one. Default: none."""
        return {}

    def extras_state(self) -> dict[str, Any]:
        """Non-weight state that travels with the member (numpy arrays preferred)."""
        return {}

    def load_extras(self, extras: Mapping[str, Any]) -> None:
        """Restore what :meth:`extras_state` returned."""


def _one_shot_missing(member: Member) -> str:
    return (f"{type(member).__name__} does not implement Member.train_steps and Member.steps_per_epoch, which"
            " one-shot search (bnao, nao) needs; tasks/mnist1d.py shows both")


class Task(ABC):
    """A search problem: the space and how to build a member for a genome.

    Subclasses set ``space`` in ``__init__`` and implement :meth:`build`; every other method is an optional
    hook with a default that does nothing.
    """

    space: SearchSpace
    epoch_unit: str = "epoch"  # what one epoch means, in logs
    objective_names: tuple[str, ...] = ()  # the values Member.objective_values() returns (objectives may name them)
    # averaged copies of other layers in the state dict (an EMA generator, a target network): with
    # algorithm.research_code_compat, mixing copies a donor's unperturbed, as the research code did
    averaged_prefixes: tuple[str, ...] = ()
    # state the research code kept outside the model state that its SEARL weight mutation and its random
    # search's shrink-perturb changed (the EMA generator): untouched by those with research_code_compat
    research_code_kept_apart: tuple[str, ...] = ()
    # task arguments research_code_compat sets, unless the config sets them (e.g. the GAN's Adam eps)
    research_code_args: Mapping[str, Any] = {}
    reuse_members: bool = False  # members carry nothing besides model, optimizers and extras: a worker may
    #                              continue a member it trained instead of rebuilding it (RL members do not:
    #                              their environment would continue mid-episode)
    default_architecture: Mapping[str, Any] = {}  # values by variable name of classic PBT's one architecture
    #                                               (algorithm pbt) when the config names none; others: first option

    @abstractmethod
    def build(self, genome: Sequence[int]) -> Member:
        """A member with freshly initialised weights (under the caller's torch seed)."""

    def declarations(self) -> dict[str, Any]:
        """The task's optional declarations (:data:`DECLARATIONS`) by name, e.g. for a task that wraps it.

        >>> class T(Task):
        ...     def build(self, genome): ...
        >>> T().declarations()["epoch_unit"]
        'epoch'
        """
        return {name: getattr(self, name) for name in DECLARATIONS}

    def set_hyperparameters(self, member: Member, genome: Sequence[int]) -> None:
        """Write the genome's hyperparameters into a member whose state was just loaded (the handles call it
        after every build, restore or mixing: a loaded optimizer state brings its parent's parameter
        groups). Default: nothing (:class:`pbt_evo.hyper.HyperparameterTask` writes optimizer ones).

        >>> class T(Task):
        ...     def build(self, genome): ...
        >>> T().set_hyperparameters(None, [0])
        """

    def build_model(self, genome: Sequence[int]) -> torch.nn.Module:
        """The network alone, e.g. to load exported weights: ``task.build_model(g).load_state_dict(...)``."""
        return self.build(genome).model

    def unit_axes(self, genome: Sequence[int]) -> Mapping[str, UnitAxis]:
        """Where the units of each width group are in the state dict of ``genome``'s model, by group name
        (:mod:`pbt_evo.widths`): a variable whose options are unit counts may then change the sizes of the
        declared dims of layers it does not own, and children of other widths get those layers adapted.
        Default: no width variables.

        >>> class T(Task):
        ...     def build(self, genome): ...
        >>> T().unit_axes([0])
        {}
        """
        return {}

    def cost(self, genome: Sequence[int]) -> float:
        """Relative training cost of a genome, to schedule the costliest members first before any was measured."""
        return 1.0

    def node_services(self, scope: str, node_id: str) -> list[Any]:
        """Start what the workers on Ray node ``node_id`` share (e.g. one replay buffer per machine), from
        the driver, so that it belongs to the run and not to whichever worker asked first (a crashed
        worker must not take it along). :class:`~pbt_evo.parallel.RayMap` calls it once per node hosting
        workers, with its ``scope``, and keeps what it returns until it closes. Default: nothing.

        >>> class T(Task):
        ...     def build(self, genome): ...
        >>> T().node_services("run-1", "node-a")
        []
        """
        return []

    def close(self) -> None:
        """Release what the task holds in this process beyond its members (e.g. shared memory); maps call it."""

    def naswot_batch(self) -> torch.Tensor | None:
        """One minibatch of inputs for the training-free NASWOT score (``algorithm.init: naswot``); None: unsupported."""
        return None

    def example_input(self) -> torch.Tensor | None:
        """One input of ``build_model(genome)`` (batch of 1), on which the ``flops`` and ``latency`` objectives
        run a forward pass; default: the first of :meth:`naswot_batch`. None: the task has none.

        >>> class T(Task):
        ...     def build(self, genome): ...
        ...     def naswot_batch(self): return torch.zeros(4, 3)
        >>> T().example_input().shape
        torch.Size([1, 3])
        """
        batch = self.naswot_batch()
        return None if batch is None else batch[:1]


# the optional declarations a task may set (class attributes of Task, with their defaults)
DECLARATIONS = ("epoch_unit", "objective_names", "averaged_prefixes", "research_code_kept_apart",
                "research_code_args", "reuse_members", "default_architecture")


@dataclass(frozen=True)
class TaskSpec:
    """A picklable recipe for a task: ``"package.module:Class"`` (or a picklable factory) plus keyword
    arguments.

    Workers build the task from it once; no code is evaluated from strings.

    >>> spec = TaskSpec("tasks.digits:DigitsTask", {"hidden": 16})
    >>> spec.target
    'tasks.digits:DigitsTask'
    """

    target: str | Callable[..., Task]
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def build(self) -> Task:
        if callable(self.target):
            return self.target(**dict(self.kwargs))
        module_name, _, attr = self.target.partition(":")
        if not attr:
            raise ValueError(f"task {self.target!r}: expected 'package.module:ClassName'")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ValueError(f"task {self.target!r}: cannot import {module_name!r} ({exc})") from exc
        try:
            factory = getattr(module, attr)
        except AttributeError:
            raise ValueError(f"task {self.target!r}: {module_name} has no {attr!r}") from None
        return factory(**dict(self.kwargs))
