"""Toy tasks of the PBT literature (seconds on a CPU): a member's "network" is a vector ``theta``, trained
by gradient steps on a surrogate objective its hyperparameters ``h`` shape; its fitness is the true
objective ``Q(theta) = 1.2 - sum(theta ** 2)`` (best 1.2 at theta = 0). One epoch is one gradient step.

- :class:`PBTToyTask`, PBT's Figure 2 (Jaderberg et al. 2017): ``theta`` starts at (0.9, 0.9); the
  surrogate is ``Q(theta | h) = 1.2 - (h0 * theta0^2 + h1 * theta1^2)``, ``h`` in [0, 1]^2, steps of size
  ``eta``. The paper's two members start with h = (1, 0) and (0, 1): alone each zeroes one coordinate of
  theta (Q -> 1.2 - 0.81 = 0.39, the grid-search outcome); PBT's exploit and explore combine both.
- :class:`PlainToyTask` (PBT-Zoo, Sec. 5.2): steps ``theta += 0.001 * (-2 (2 - h) theta)`` with ``h`` in
  [1e-4, 1.1]: the smaller ``h``, the faster ``theta`` shrinks, so greedy choices (``h`` down at once) are
  optimal.
- :class:`DeceptiveToyTask` (PBT-Zoo, Sec. 5.2): the step is ``2 - h - penalty`` instead of ``2 - h``,
  ``penalty = 0.2 * sum_i |h_i - (1 - i * e_step / e_total)|`` over the ``h`` of every interval trained so
  far (the member's history, carried in its state): the optimal schedule decays ``h`` linearly from 1 to 0,
  the greedy one drops it at once and pays for it later.

>>> task = PlainToyTask()
>>> m = task.build([1.0]); _ = m.train(1000); round(m.evaluate(), 4)   # h = 1 throughout: theta ~ 0.9 e^-2
1.1852
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from pbt_evo.space import SearchSpace, Variable
from pbt_evo.task import Member, Task


class Theta(nn.Module):
    """The parameters being trained: a vector, initialised to ``start`` (no randomness)."""

    def __init__(self, start: Sequence[float]):
        super().__init__()
        self.theta = nn.Parameter(torch.tensor(list(start), dtype=torch.float64))


def objective(theta: torch.Tensor) -> float:
    """``Q(theta) = 1.2 - sum(theta ** 2)``."""
    return float(1.2 - (theta ** 2).sum())


class ToyMember(Member):
    """``theta`` trained by its task's step rule with hyperparameters ``h``; ``history``: the ``h`` of each
    interval trained (the deceptive toy's penalty reads it)."""

    def __init__(self, task: "ToyTask", h: Sequence[float]):
        self.task, self.h = task, [float(x) for x in h]
        self.model = Theta(task.start)
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.history: list[list[float]] = []

    def train(self, epochs: int) -> dict[str, float]:
        self.history.append(list(self.h))
        with torch.no_grad():
            for _ in range(epochs):
                self.model.theta += self.task.step(self.model.theta, self.h, self.history)
        return {}

    def evaluate(self) -> float:
        return objective(self.model.theta.detach())

    def test_score(self) -> float:
        return self.evaluate()  # nothing is held out: the objective is known

    def extras_state(self) -> dict[str, Any]:
        return {"history": [list(h) for h in self.history]}

    def load_extras(self, extras: Mapping[str, Any]) -> None:
        self.history = [list(h) for h in extras.get("history", [])]


class ToyTask(Task):
    """A toy: ``space`` of continuous hyperparameters, ``start`` of theta, and :meth:`step`."""

    start: Sequence[float] = (0.9,)
    epoch_unit = "step"

    def build(self, genome: Sequence[Any]) -> ToyMember:
        self.space.validate(genome)
        return ToyMember(self, genome)

    def set_hyperparameters(self, member: Member, genome: Sequence[Any]) -> None:
        member.h = [float(x) for x in genome]  # type: ignore[attr-defined]

    def step(self, theta: torch.Tensor, h: Sequence[float], history: Sequence[Sequence[float]]) -> torch.Tensor:
        raise NotImplementedError


class PBTToyTask(ToyTask):
    """PBT's Figure 2 toy (module docstring); ``eta`` the gradient step size.

    >>> m = PBTToyTask().build([1.0, 0.0]); _ = m.train(40); round(m.evaluate(), 4)   # one coordinate only
    0.3898
    """

    start = (0.9, 0.9)

    def __init__(self, eta: float = 0.05):
        self.eta = eta
        self.space = SearchSpace([Variable("h0", bounds=(0.0, 1.0), hyper=True),
                                  Variable("h1", bounds=(0.0, 1.0), hyper=True)])

    def step(self, theta: torch.Tensor, h: Sequence[float], history: Sequence[Sequence[float]]) -> torch.Tensor:
        return -2.0 * self.eta * torch.tensor(h, dtype=theta.dtype) * theta  # eta * grad of the surrogate


class PlainToyTask(ToyTask):
    """PBT-Zoo's plain toy (module docstring), ``dims`` hyperparameters (and coordinates of theta)."""

    def __init__(self, dims: int = 1):
        self.start = (0.9,) * dims
        self.space = SearchSpace([Variable(f"h{i}" if dims > 1 else "h", bounds=(1e-4, 1.1), hyper=True)
                                  for i in range(dims)])

    def step(self, theta: torch.Tensor, h: Sequence[float], history: Sequence[Sequence[float]]) -> torch.Tensor:
        return 0.001 * -2.0 * (2.0 - torch.tensor(h, dtype=theta.dtype)) * theta


class DeceptiveToyTask(ToyTask):
    """PBT-Zoo's deceptive toy (module docstring): one hyperparameter; ``e_total`` and ``e_step`` the run's
    (the penalty's linear target schedule).

    >>> task = DeceptiveToyTask(e_total=1000, e_step=20)
    >>> linear, greedy = task.build([1.0]), task.build([1e-4])
    >>> for i in range(50):
    ...     task.set_hyperparameters(linear, [max(1.0 - 0.02 * i, 1e-4)])
    ...     _ = linear.train(20), greedy.train(20)
    >>> round(linear.evaluate(), 4), round(greedy.evaluate(), 4)   # the greedy schedule falls behind
    (1.1979, 0.827)
    """

    def __init__(self, e_total: int = 1000, e_step: int = 20):
        self.e_total, self.e_step = e_total, e_step
        self.space = SearchSpace([Variable("h", bounds=(1e-4, 1.1), hyper=True)])

    def penalty(self, history: Sequence[Sequence[float]]) -> float:
        """``0.2 * sum_i |h_i - target_i|``, ``target_i = 1 - i * e_step / e_total``."""
        return 0.2 * sum(abs(h[0] - (self.e_total - i * self.e_step) / self.e_total) for i, h in enumerate(history))

    def step(self, theta: torch.Tensor, h: Sequence[float], history: Sequence[Sequence[float]]) -> torch.Tensor:
        return 0.001 * -2.0 * max(2.0 - h[0] - self.penalty(history), 0.0) * theta
