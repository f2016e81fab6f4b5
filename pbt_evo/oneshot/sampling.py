"""Which architecture a one-shot step trains: uniformly, or in proportion to its model size (BNAO's
equation 3, ``P(x_i) = size(x_i) / sum_j size(x_j)`` over the candidate pool), so that large networks,
which need more updates, get them. Model size is the parameter count, computed without initialising
any weight (:func:`pbt_evo.objectives.genome_cost`). The same sampling also gives PBT-NAS an initial
population (``algorithm.init: size_proportional``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import numpy as np

from ..handles import FreshState
from ..individual import Individual
from ..objectives import genome_cost
from ..space import Genome, SearchSpace
from ..task import Task

SAMPLINGS = ("uniform", "proportional")


def model_size(task: Task, genome: Sequence[int]) -> float:
    """Parameters of ``genome``'s network, built without initialising it (cached per task and genome).

    >>> from tasks.mnist1d import MNIST1DTask
    >>> model_size(MNIST1DTask(channels=8), [1, 0, 0, 0, 0, 0, 0, 0, 0])   # 138 + conv3 8x8x3 + 8
    338.0
    """
    return genome_cost(task, genome, "params")


def sampling_probabilities(sizes: Sequence[float], sampling: str) -> np.ndarray:
    """Each candidate's probability of being trained at a step: ``uniform`` or ``proportional`` to size.

    >>> sampling_probabilities([1, 3], "proportional").tolist(), sampling_probabilities([1, 3], "uniform").tolist()
    ([0.25, 0.75], [0.5, 0.5])
    """
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling {sampling!r}: allowed values are {', '.join(SAMPLINGS)}")
    sizes = np.asarray(sizes, dtype=float)
    if sizes.size == 0 or (sampling == "proportional" and (sizes.min() < 0 or sizes.sum() <= 0)):
        raise ValueError("proportional sampling needs a non-empty pool of non-negative sizes, not all zero")
    if sampling == "uniform":
        return np.full(sizes.size, 1.0 / sizes.size)
    return sizes / sizes.sum()


def draw(probabilities: Sequence[float], rng: np.random.Generator) -> int:
    """One candidate's index, drawn by ``probabilities``: what each one-shot step trains.

    >>> draw([0.0, 1.0], np.random.default_rng(0))
    1
    """
    return int(rng.choice(len(probabilities), p=probabilities))


def weighted_sample(weights: Sequence[float], n: int, rng: random.Random | None = None) -> list[int]:
    """``n`` distinct indices drawn one after another, each with probability proportional to its weight
    among those not yet drawn (Efraimidis and Spirakis' keys ``u ** (1 / w)``).

    >>> weighted_sample([0, 1, 1, 0], 2, random.Random(0))
    [1, 2]
    """
    rng = rng or random
    if n > sum(w > 0 for w in weights):
        raise ValueError(f"cannot draw {n} distinct candidates from {sum(w > 0 for w in weights)} of positive weight")
    keys = [rng.random() ** (1.0 / w) if w > 0 else -1.0 for w in weights]
    return sorted(range(len(weights)), key=lambda i: keys[i], reverse=True)[:n]


def init_population_size_proportional(space: SearchSpace, n: int, size: Callable[[Genome], float], k: int = 10,
                                      container: Callable[..., Individual] = Individual) -> list[Individual]:
    """``n`` individuals drawn from ``k * n`` balanced candidates with probability proportional to
    ``size(genome)`` (BNAO's sampling as an initial population). Uses the ``random`` module, like DEAP's
    initialisers; ``metrics["params"]`` holds the size.

    >>> from pbt_evo.space import Variable
    >>> space = SearchSpace([Variable("a", (0, 1, 2, 3))])
    >>> random.seed(0); pop = init_population_size_proportional(space, 2, lambda g: float(g[0]), k=2)
    >>> [ind.id for ind in pop], all(ind[0] > 0 for ind in pop)
    ([0, 1], True)
    """
    if k < 1:
        raise ValueError(f"k (candidates per member) must be >= 1, got {k}")
    genomes = space.sample_balanced(k * n)
    sizes = [float(size(g)) for g in genomes]
    pop = []
    for i, j in enumerate(weighted_sample(sizes, n)):
        seed = random.getrandbits(31)
        ind = container(genomes[j], id=i, handle=FreshState(seed), seed=seed)
        ind.metrics = {"params": sizes[j]}
        pop.append(ind)
    return pop
