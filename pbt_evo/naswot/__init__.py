"""A training-free initial population: the NASWOT score (Mellor et al., *Neural Architecture Search
without Training*, 2021) and an initialiser that keeps the best-scored N of k x N candidate genomes.

The score of an untrained network on one minibatch of B inputs: every rectified unit gives a binary
code per input (1 where its pre-activation is positive). With ``c_i`` the code of input ``i`` over all
``N_A`` units, the kernel is ``K_H[i, j] = N_A - d_H(c_i, c_j)`` (``d_H``: Hamming distance), i.e. the
number of units on which two inputs agree, and the score is ``log |det K_H|``. A kernel close to
diagonal (inputs in different linear regions) scores higher; the paper finds it correlates with
trained accuracy.

Units: forward hooks on ReLU-like modules (``nn.ReLU``, ``ReLU6``, ``LeakyReLU``, ``PReLU``, ``RReLU``,
``Hardtanh`` is not one). A network without any ReLU-like module (e.g. only Tanh or Swish) would have no
units; then, and with ``units="all"``, the sign of the pre-activation of every activation module
(ReLU-like plus Tanh, Sigmoid, SiLU, GELU, ELU, Softplus, Mish, Hardswish, ...) is used instead: the
same binary "which side of zero" code, though for smooth activations it no longer identifies an exact
linear region. Functional activations (``torch.relu`` called in ``forward``) are invisible to hooks.

Networks are scored in train mode under ``torch.no_grad()``, as in the authors' code: BatchNorm then
normalises with the minibatch's statistics rather than its fresh running estimates (mean 0, var 1).

>>> # toolbox.register("population", init_population_naswot, space, 12, task_scorer(task), k=10)

How well the score ranks a task's architectures: ``python -m pbt_evo.naswot CONFIG --archs 40``
(:mod:`pbt_evo.cli.naswot`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from ..handles import FreshState
from ..individual import Individual
from ..rng import seed_everything
from ..space import Genome, SearchSpace

RELU_LIKE: tuple[type[nn.Module], ...] = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU)
OTHER_ACTIVATIONS: tuple[type[nn.Module], ...] = (nn.Tanh, nn.Sigmoid, nn.SiLU, nn.GELU, nn.ELU, nn.SELU, nn.CELU,
                                                  nn.Softplus, nn.Mish, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh,
                                                  nn.Softsign, nn.Tanhshrink, nn.LogSigmoid)
UNITS = ("relu", "all")


def activation_codes(model: nn.Module, x: torch.Tensor, units: str = "relu") -> torch.Tensor:
    """Binary codes (B, N_A) of ``x``'s minibatch: 1 where a unit's pre-activation is > 0.

    ``units="relu"`` hooks ReLU-like modules (falls back to all activation modules when there are
    none); ``"all"`` hooks every activation module. The model is run once, in train mode, without grad.

    >>> net = nn.Sequential(nn.Linear(1, 2), nn.ReLU())
    >>> with torch.no_grad(): _ = net[0].weight.copy_(torch.tensor([[1.0], [-1.0]])), net[0].bias.zero_()
    >>> activation_codes(net, torch.tensor([[2.0], [-3.0]])).tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    if units not in UNITS:
        raise ValueError(f"units must be one of {UNITS}, got {units!r}")
    kinds = RELU_LIKE if units == "relu" else RELU_LIKE + OTHER_ACTIVATIONS
    modules = [m for m in model.modules() if isinstance(m, kinds)]
    if not modules and units == "relu":  # no rectified units: use the sign of every activation's input
        modules = [m for m in model.modules() if isinstance(m, RELU_LIKE + OTHER_ACTIVATIONS)]
    if not modules:
        raise ValueError("the network has no activation modules (nn.ReLU, nn.Tanh, ...) to score")
    codes: list[torch.Tensor] = []

    def hook(_module: nn.Module, inputs: tuple[torch.Tensor, ...], _output: Any) -> None:
        codes.append((inputs[0].detach().flatten(1) > 0).to(torch.float64))

    handles = [m.register_forward_hook(hook) for m in modules]
    was_training = model.training
    try:
        model.train()
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return torch.cat(codes, dim=1)


def hamming_kernel(codes: torch.Tensor) -> torch.Tensor:
    """``K_H[i, j] = N_A - d_H(c_i, c_j)``: the number of units on which inputs i and j agree.

    >>> hamming_kernel(torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])).tolist()
    [[3.0, 1.0], [1.0, 3.0]]
    """
    c = codes.to(torch.float64)
    return c @ c.T + (1 - c) @ (1 - c).T


def naswot_score(model: nn.Module, x: torch.Tensor, units: str = "relu") -> float:
    """``log |det K_H|`` of ``model`` on the minibatch ``x`` (``-inf`` when two inputs share a code).

    >>> net = nn.Sequential(nn.Linear(1, 2), nn.ReLU())
    >>> with torch.no_grad(): _ = net[0].weight.copy_(torch.tensor([[1.0], [-1.0]])), net[0].bias.zero_()
    >>> naswot_score(net, torch.tensor([[2.0], [-3.0]]))  # K = [[2, 0], [0, 2]]: log 4
    1.3862943611198906
    """
    k = hamming_kernel(activation_codes(model, x, units))
    sign, logabsdet = torch.linalg.slogdet(k)
    return float(logabsdet) if float(sign) != 0 else -math.inf


def score_genome(task: Any, genome: Sequence[int], x: torch.Tensor, seed: int, units: str = "relu") -> float:
    """The NASWOT score of ``task``'s network for ``genome`` initialised under ``seed`` (the same
    initialisation a :class:`~pbt_evo.handles.FreshState` of that seed gives the member)."""
    seed_everything(seed)
    return naswot_score(task.build_model(list(genome)), x, units)


def top_n(scores: Sequence[float], n: int) -> list[int]:
    """Indices of the ``n`` highest scores, best first; ties keep the earlier candidate.

    >>> top_n([0.5, 2.0, -math.inf, 2.0, 1.0], 3)
    [1, 3, 4]
    """
    order = sorted(range(len(scores)), key=lambda i: (-scores[i] if not math.isnan(scores[i]) else math.inf, i))
    return order[:n]


def init_population_naswot(space: SearchSpace, n: int, score: Callable[[Genome, int], float], k: int = 10,
                           container: type[Individual] = Individual) -> list[Individual]:
    """``n`` individuals: the best-scored of ``k * n`` balanced candidate genomes, each with the seed it
    was scored under (so the network that trains is the network that was scored).

    ``score(genome, seed)`` is e.g. ``lambda g, s: score_genome(task, g, task.naswot_batch(), s)``.
    Uses the ``random`` module (like DEAP's initialisers); ``metrics["naswot"]`` holds the score.

    >>> from pbt_evo.space import Variable
    >>> space = SearchSpace([Variable("a", (0, 1, 2, 3))])
    >>> pop = init_population_naswot(space, 2, lambda g, s: float(g[0]), k=2)
    >>> sorted(ind[0] for ind in pop), [ind.id for ind in pop]
    ([2, 3], [0, 1])
    """
    if k < 1:
        raise ValueError(f"k (candidates per member) must be >= 1, got {k}")
    genomes = space.sample_balanced(k * n)
    seeds = [random.getrandbits(31) for _ in genomes]
    scores = [float(score(g, s)) for g, s in zip(genomes, seeds)]
    pop = []
    for i, j in enumerate(top_n(scores, n)):
        ind = container(genomes[j], id=i, handle=FreshState(seeds[j]), seed=seeds[j])
        ind.metrics = {"naswot": scores[j]}
        pop.append(ind)
    return pop


def task_scorer(task: Any, units: str = "relu") -> Callable[[Genome, int], float]:
    """``score(genome, seed)`` for :func:`init_population_naswot` from a task's ``naswot_batch()``."""
    x = task.naswot_batch()
    if x is None:
        raise ValueError(f"{type(task).__name__} has no naswot_batch(): implement Task.naswot_batch to return one"
                         " minibatch of inputs to use algorithm.init: naswot")
    return lambda genome, seed: score_genome(task, genome, x, seed, units)
