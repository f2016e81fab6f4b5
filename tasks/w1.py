"""Workload W1 (../shared/benchmarks/W1.md) as a pbt_evo task: a fixed PBT micro-workload that measures
orchestration overhead, identical in every process.

- N = 8 members, each an MLP regressor 64 -> [Linear(hidden) -> ReLU] x depth -> Linear 1 (hidden 256,
  depth 4 in W1), PyTorch default init, member ``i`` initialised after ``torch.manual_seed(1000 + i)``
  (:func:`w1_population` gives each its :class:`~pbt_evo.handles.FreshState` with that seed).
- Adam, lr 1e-3; MSE on a fixed synthetic regression problem (:func:`make_data`).
- One epoch = 64 steps of batch 128 over a permutation of the 8192 rows drawn from a generator seeded
  with ``1_000_003 * (generation + 1) + slot``.
- The space has one variable with one option and owns no layers: mixing with ``p = 0`` makes a child
  an exact copy (weights and Adam state) of its fitter parent, W1's "replace the worst 25% by copies".

Generation and slot. pbt_evo's :func:`~pbt_evo.train.train_member` does not tell a member where it sits
in the population, so W1 registers :func:`train_w1` as ``toolbox.train``: it reads the generation from the
individual's age (``epochs``, one epoch per generation) and the slot from ``individual.slot``, which
:func:`w1_population` sets and :func:`slot_hook` keeps right for children (a child takes its loser's slot).
With these, pbt_evo trains bit for bit what the sequential reference trains (``benchmarks/w1.py`` checks it).

>>> task = W1Task()
>>> member = task.build([0])
>>> sum(p.numel() for p in member.model.parameters())
214273
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from deap import base
from torch import nn

from pbt_evo.handles import FreshState, TrainResult
from pbt_evo.individual import Individual
from pbt_evo.space import SearchSpace, Variable
from pbt_evo.task import Member, Task
from pbt_evo.parallel import Context
from pbt_evo.train import train_member

N_MEMBERS = 8
GENERATIONS = 12
N_TRAIN, N_VAL, N_IN, N_FEAT = 8192, 1024, 64, 16
BATCH, STEPS = 128, 64
LR = 1e-3


def make_data() -> dict[str, torch.Tensor]:
    """W1's data, drawn in W1's order from ``torch.Generator().manual_seed(0)``."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(N_IN, N_FEAT, generator=g) / 8
    x = torch.randn(N_TRAIN, N_IN, generator=g)
    x_val = torch.randn(N_VAL, N_IN, generator=g)
    return {"x": x, "y": torch.sin(x @ w).sum(1, keepdim=True),
            "x_val": x_val, "y_val": torch.sin(x_val @ w).sum(1, keepdim=True)}


def make_model(hidden: int = 256, depth: int = 4) -> nn.Sequential:
    """The W1 regressor under the caller's torch seed (PyTorch default init)."""
    layers: list[nn.Module] = []
    width = N_IN
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


def permutation_seed(generation: int, slot: int) -> int:
    """W1's per-epoch permutation seed."""
    return 1_000_003 * (generation + 1) + slot


def train_epoch(model: nn.Module, opt: torch.optim.Optimizer, data: dict[str, torch.Tensor],
                generation: int, slot: int, steps: int = STEPS) -> float:
    """One W1 epoch (``steps`` batches, W1: 64); returns the mean training loss. Shared by pbt_evo, the
    sequential floor and Tune so that all three do exactly the same work."""
    perm = torch.randperm(N_TRAIN, generator=torch.Generator().manual_seed(permutation_seed(generation, slot)))
    x, y = data["x"], data["y"]
    model.train()
    total = torch.zeros(())
    for step in range(steps):
        idx = perm[step * BATCH:(step + 1) * BATCH]
        loss = nn.functional.mse_loss(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.detach()  # no .item() per step: no sync point, same arithmetic everywhere
    return float(total) / steps


def evaluate(model: nn.Module, data: dict[str, torch.Tensor]) -> float:
    """Fitness: -MSE on the validation rows."""
    model.eval()
    with torch.no_grad():
        return -float(nn.functional.mse_loss(model(data["x_val"]), data["y_val"]))


class W1Member(Member):
    def __init__(self, task: "W1Task"):
        self.task = task
        self.model = make_model(task.hidden, task.depth)
        self.optimizers = {"adam": torch.optim.Adam(self.model.parameters(), lr=LR)}

    def train(self, epochs: int) -> dict[str, float]:
        generation, slot = self.task.position
        loss = 0.0
        for e in range(epochs):
            loss = train_epoch(self.model, self.optimizers["adam"], self.task.data, generation + e, slot,
                               self.task.steps)
        return {"train_loss": loss}

    def evaluate(self) -> float:
        return evaluate(self.model, self.task.data)


class W1Task(Task):
    """W1 in pbt_evo: a one-variable, one-option space that owns no layers (children are copies).

    ``hidden``, ``depth`` and ``steps`` (per epoch) default to W1's; the memory benchmark changes them.
    """

    reuse_members = True  # a member is its model + Adam (the data is the task's): RayMap may continue it live

    def __init__(self, hidden: int = 256, depth: int = 4, steps: int = STEPS):
        self.hidden, self.depth, self.steps = hidden, depth, steps
        self.space = SearchSpace([Variable("mlp", ("w1",))])
        self.data = make_data()
        self.position = (0, 0)  # (generation, slot) of the member being trained, set by train_w1

    def build(self, genome: Sequence[int]) -> W1Member:
        return W1Member(self)


def train_w1(context: Context, individual: Individual, epochs: int) -> TrainResult:
    """``toolbox.train`` for W1: tell the task the member's generation and slot, then train as usual."""
    context.task.position = (individual.epochs, individual.slot)  # type: ignore[attr-defined]
    return train_member(context, individual, epochs)


def w1_population(n: int = N_MEMBERS) -> list[Individual]:
    """W1's initial population: member ``i`` in slot ``i``, initialised under ``torch.manual_seed(1000 + i)``
    (FreshState seeds torch with exactly that before building)."""
    pop = []
    for i in range(n):
        ind = Individual([0], id=i, handle=FreshState(1000 + i), seed=1000 + i)
        ind.slot = i  # type: ignore[attr-defined]
        pop.append(ind)
    return pop


def w1_toolbox(pmap: Any, tau: float = 0.25) -> base.Toolbox:
    """W1's toolbox on a map: :func:`train_w1`, truncation (sure survivors started early), a child an
    exact copy (weights and Adam state) of its fitter parent (``cx_mix(p=0)``).

    >>> tb = w1_toolbox(map); tb.mate.keywords
    {'p': 0.0}
    """
    import pbt_evo

    tb = base.Toolbox()
    tb.register("train", train_w1)
    tb.register("select", pbt_evo.sel_truncation, tau=tau)
    tb.register("survivors", pbt_evo.sure_survivors, tau=tau)  # no barrier for sure survivors
    tb.register("pair", pbt_evo.pair_random)
    tb.register("mate", pbt_evo.cx_mix, p=0.0)  # a child is an exact copy of its fitter parent
    tb.register("mutate", pbt_evo.mut_none)
    tb.map = pmap
    return tb


def slot_hook(generation: Any) -> None:
    """Loop hook: a child takes the slot of the member it replaces (W1's permutation seeds use it)."""
    for j, child in generation.replaced:
        child.slot = j


def run_w1(pmap: Any, n: int = N_MEMBERS, generations: int = GENERATIONS, seed: int = 0) -> tuple[list, Any]:
    """W1's PBT loop on a map, after ``random.seed(seed)``: the final population and the logbook.

    >>> # pop, log = run_w1(pbt_evo.SerialMap(W1Task(hidden=16, depth=1, steps=2)), n=8, generations=2)
    """
    import random

    import pbt_evo

    random.seed(seed)
    return pbt_evo.ea_pbt(w1_population(n), w1_toolbox(pmap), e_total=generations, e_step=1, hook=slot_hook)


def outcome(population: list[Individual], logbook: Any) -> dict[str, Any]:
    """What two runs must share to be the same run, as JSON: each member's id, slot, fitness, age and
    parents, the logbook's (gen, nevals, failed), and the bytes of one state (of the first member)."""
    from pbt_evo.parallel.worker import nbytes

    return {"members": [[ind.id, ind.slot, ind.fitness.values[0], ind.epochs, list(ind.parents)]
                        for ind in population],
            "log": [[r["gen"], r["nevals"], r["failed"]] for r in logbook],
            "state_bytes": nbytes(population[0].handle.load())}
