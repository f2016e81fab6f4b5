"""A one-shot supernet for any task: the task's own members over one :class:`~.bank.WeightBank`.

One one-shot step samples an architecture, takes its member (built once per genome and cached), loads
its tensors from the bank, trains it for a few minibatches (``Member.train_steps``) and writes the
trained tensors back. Evaluating an architecture "with shared weights" loads them and calls
``Member.evaluate``. Nothing here depends on the task: the search space's ``owns`` is the whole supernet.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..rng import kept_rng, seed_everything
from ..task import Member, Task
from .bank import WeightBank
from .sampling import draw


def genome_seed(seed: int, genome: Sequence[int]) -> int:
    """The seed a genome's member is built under in a supernet seeded ``seed`` (its first tensors).

    >>> genome_seed(0, [1, 2]) == genome_seed(0, [1, 2]) != genome_seed(1, [1, 2])
    True
    """
    return int(np.random.SeedSequence([int(seed), *map(int, genome)]).generate_state(1)[0])


class Supernet:
    """Members of ``task`` sharing one weight bank.

    >>> from tasks.digits import DigitsTask
    >>> net = Supernet(DigitsTask(channels=4), seed=0)
    >>> _ = net.step([1, 1, 0, 0, 0, 0, 0, 0], steps=2, seed=3)
    >>> net.steps_done, len(net.bank) > 0, 0.0 <= net.evaluate([1, 1, 0, 0, 0, 0, 0, 0]) <= 1.0
    (2, True, True)
    """

    def __init__(self, task: Task, seed: int = 0):
        self.task, self.seed = task, int(seed)
        self.bank = WeightBank(task.space)
        self.steps_done = 0
        self._members: dict[tuple[int, ...], Member] = {}

    def member(self, genome: Sequence[int]) -> Member:
        """``genome``'s member, built once (under :func:`genome_seed`, the caller's streams kept)."""
        key = tuple(int(g) for g in genome)
        if key not in self._members:
            with kept_rng():
                seed_everything(genome_seed(self.seed, key))
                self._members[key] = self.task.build(list(key))
        return self._members[key]

    def step(self, genome: Sequence[int], steps: int = 1, seed: int | None = None) -> dict[str, float]:
        """Train ``genome``'s network in the supernet for ``steps`` minibatches (torch seeded ``seed``
        first, when given); returns its metrics."""
        member = self.member(genome)
        self.bank.load(genome, member)
        if seed is not None:
            seed_everything(seed)
        metrics = member.train_steps(int(steps))
        self.bank.store(genome, member)
        self.steps_done += int(steps)
        return dict(metrics or {})

    def evaluate(self, genome: Sequence[int]) -> float:
        """``genome``'s fitness (``Member.evaluate``, validation data) with the supernet's shared weights."""
        member = self.member(genome)
        self.bank.load(genome, member)
        return float(member.evaluate())

    def train(self, pool: Sequence[Sequence[int]], probabilities: Sequence[float], steps: int,
              steps_per_sample: int, rng: np.random.Generator) -> np.ndarray:
        """``steps`` minibatches in total: each sample draws one architecture of ``pool`` by
        ``probabilities`` (BNAO's equation 3, or uniform) and trains it ``steps_per_sample`` minibatches.
        Returns how many minibatches each architecture of the pool was trained."""
        trained = np.zeros(len(pool), dtype=int)
        done = 0
        while done < steps:
            j = draw(probabilities, rng)
            n = min(steps_per_sample, steps - done)
            self.step(pool[j], n, seed=int(rng.integers(2**31)))
            trained[j] += n
            done += n
        return trained
