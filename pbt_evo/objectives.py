"""Objectives: what a member is scored on, a name and a direction each, and the costs of a genome's
network that pbt_evo measures for any task.

- ``fitness``: the task's ``Member.evaluate()``, maximised; always the first objective, so that logs,
  ``best/`` and every single-objective tool read the same number as before;
- ``params``: parameters of ``task.build_model(genome)``;
- ``flops``: floating-point operations of one forward pass of that network on ``task.example_input()``
  (batch of 1) as ``torch.utils.flop_counter`` counts them: 2 per multiply-add of matrix products and
  convolutions, biases, elementwise ops, pooling and normalisation not counted;
- ``latency``: milliseconds of that forward pass, measured (median of 30 after 5 warm-ups, the worker's
  threads, no gradients): noisy on a shared machine, and another machine measures other values;
- any name in ``task.objective_names``: a value the member returns from ``Member.objective_values()``.

A cost is a function of the genome: each worker computes it once per genome and keeps it. ``params``
and ``flops`` build the network without initialising it (the values are never read); ``latency``
times an initialised one (uninitialised memory may hold denormal numbers, which are slow). The
caller's random streams are left alone either way.

>>> from tasks.mnist1d import MNIST1DTask
>>> objectives = Objectives.parse([{"fitness": "max"}, {"params": "min"}])
>>> objectives.names, objectives.weights
(('fitness', 'params'), (1.0, -1.0))
>>> genome_cost(MNIST1DTask(channels=8), [0] * 9, "params")   # stem 48 + head 90, identity cells
138.0
"""

from __future__ import annotations

import statistics
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from .rng import kept_rng, seed_everything, skip_init
from .task import Member, Task

DIRECTIONS = {"max": 1.0, "min": -1.0}


def count_params(model: torch.nn.Module) -> int:
    """Parameters of ``model`` (buffers such as BatchNorm's running statistics are not parameters).

    >>> count_params(torch.nn.Linear(8, 10))
    90
    """
    return sum(p.numel() for p in model.parameters())


def count_flops(model: torch.nn.Module, x: torch.Tensor) -> int:
    """FLOPs of ``model(x)`` by ``torch.utils.flop_counter`` (eval mode, no gradients).

    >>> count_flops(torch.nn.Linear(8, 10), torch.zeros(1, 8))   # 2 x 8 x 10 multiply-adds
    160
    """
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    model.eval()
    with torch.no_grad(), counter:
        model(x)
    return int(counter.get_total_flops())


def latency_ms(model: torch.nn.Module, x: torch.Tensor, repeats: int = 30, warmup: int = 5) -> float:
    """Median milliseconds of ``model(x)`` over ``repeats`` calls after ``warmup`` (eval mode, no gradients).

    >>> latency_ms(torch.nn.Linear(8, 10), torch.zeros(1, 8)) > 0
    True
    """
    model.eval()
    times = []
    with torch.no_grad():
        for i in range(warmup + repeats):
            t0 = time.perf_counter()
            model(x)
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    return 1000.0 * statistics.median(times)


def network(task: Task, genome: Sequence[int], initialise: bool) -> torch.nn.Module:
    """``task.build_model(genome)``, initialised (under seed 0) or not, without touching the caller's streams."""
    with kept_rng(), (nullcontext() if initialise else skip_init()):
        seed_everything(0)
        return task.build_model(list(genome))


def example_input(task: Task, name: str) -> torch.Tensor:
    x = task.example_input()
    if x is None:
        raise ValueError(f"objective {name!r} runs the network on one input: {type(task).__name__} has neither"
                         " example_input() nor naswot_batch()")
    return x


COSTS: dict[str, Callable[[Task, Sequence[int]], float]] = {
    "params": lambda task, g: float(count_params(network(task, g, initialise=False))),
    "flops": lambda task, g: float(count_flops(network(task, g, initialise=False), example_input(task, "flops"))),
    "latency": lambda task, g: latency_ms(network(task, g, initialise=True), example_input(task, "latency")),
}
_CACHE: "weakref.WeakKeyDictionary[Task, dict[tuple, float]]" = weakref.WeakKeyDictionary()


def genome_cost(task: Task, genome: Sequence[int], name: str) -> float:
    """The cost objective ``name`` (:data:`COSTS`) of ``genome``'s network, computed once per genome and task."""
    cache = _CACHE.setdefault(task, {})
    key = (name, tuple(genome))
    if key not in cache:
        cache[key] = COSTS[name](task, genome)
    return cache[key]


@dataclass(frozen=True)
class Objectives:
    """Which objectives, in order, and their weights (1.0 maximised, -1.0 minimised); picklable, so it
    travels to the workers with ``toolbox.train``. ``Objectives()`` is the single fitness.

    >>> Objectives().single, Objectives(("fitness", "flops"), (1.0, -1.0)).single
    (True, False)
    """

    names: tuple[str, ...] = ("fitness",)
    weights: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        if len(self.names) != len(self.weights):
            raise ValueError(f"{len(self.names)} objectives but {len(self.weights)} weights")
        if not self.names or self.names[0] != "fitness" or self.weights[0] != 1.0:
            raise ValueError("the first objective must be 'fitness: max' (the task's score, which logs and best/"
                             f" read), got {self.describe()}")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"an objective is named twice: {self.describe()}")
        if any(w not in DIRECTIONS.values() for w in self.weights):
            raise ValueError(f"weights must be 1.0 (max) or -1.0 (min), got {self.weights}")

    @classmethod
    def parse(cls, entries: Sequence[Mapping[str, str]]) -> "Objectives":
        """From a config's list of one-key mappings ``[{fitness: max}, {params: min}]``.

        >>> Objectives.parse([{"fitness": "max"}, {"latency": "min"}]).describe()
        'fitness: max, latency: min'
        """
        names, weights = [], []
        for entry in entries:
            if not isinstance(entry, Mapping) or len(entry) != 1:
                raise ValueError(f"each objective is one 'name: max' or 'name: min', got {entry!r}")
            (name, direction), = entry.items()
            if direction not in DIRECTIONS:
                raise ValueError(f"objective {name!r}: direction {direction!r}, allowed: max, min")
            names.append(str(name))
            weights.append(DIRECTIONS[direction])
        return cls(tuple(names), tuple(weights))

    @property
    def single(self) -> bool:
        """Only the fitness: today's single-objective loop, bit for bit."""
        return self.names == ("fitness",)

    def describe(self) -> str:
        return ", ".join(f"{n}: {'max' if w > 0 else 'min'}" for n, w in zip(self.names, self.weights))

    def check(self, task: Task) -> None:
        """Raise ``ValueError`` saying why ``task`` cannot give every objective: an unknown name, or a cost
        that cannot be computed (tried on the genome of first options)."""
        known = ("fitness", *COSTS, *task.objective_names)
        for name in self.names:
            if name not in known:
                raise ValueError(f"objective {name!r} is unknown; allowed for {type(task).__name__}: {', '.join(known)}")
            if name in COSTS:
                try:
                    genome_cost(task, task.space.first(), name)
                except ValueError:
                    raise  # already says what is missing (example_input)
                except Exception as exc:  # the task's network cannot run on its example input
                    raise ValueError(f"objective {name!r} cannot be computed for {type(task).__name__}: {exc}") from None

    def evaluate(self, task: Task, genome: Sequence[int], member: Member, fitness: float) -> tuple[float, ...]:
        """Every objective's value of a member just evaluated (in the worker)."""
        own = member.objective_values() if any(n not in COSTS and n != "fitness" for n in self.names) else {}
        values = []
        for name in self.names:
            if name == "fitness":
                values.append(float(fitness))
            elif name in COSTS:
                values.append(genome_cost(task, genome, name))
            elif name in own:
                values.append(float(own[name]))
            else:
                raise ValueError(f"objective {name!r}: {type(member).__name__}.objective_values() returned"
                                 f" {sorted(own) or 'nothing'}")
        return tuple(values)
