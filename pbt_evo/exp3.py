"""EXP3 with a sharing term (EXP3.S, Auer et al. 2002), the time-varying bandit PB2-Mix (Parker-Holder et
al. 2021) draws categorical hyperparameters with: one arm per option, rewards in [0, 1], several pulls per
round (the population's members that trained with each option in one generation).

With K arms, weights ``w`` and exploration rate ``gamma``, an arm is drawn with probability

    p_i = (1 - gamma) * w_i / sum(w) + gamma / K

and a round of B pulls ``(arm, reward)`` updates every weight as

    w_i <- w_i * exp(gamma * xhat_i / K) + (e * alpha / K) * sum(w),   xhat_i = sum of i's rewards / (B * p_i)

(importance-weighted rewards, averaged over the round's pulls; the sharing term ``alpha`` lets weights of
arms that lost come back, which tracks a reward that changes over time), after which the weights are
scaled to sum 1. PB2-Mix's own code adds the sharing term to the probabilities and draws a batch by
dependent rounding; here each child draws one arm, and the members already made this generation count as
pulls only once they have trained.

>>> b = Exp3(2, gamma=0.2, alpha=0.0)
>>> b.update([(0, 1.0), (1, 0.0)])
>>> [round(p, 4) for p in b.probabilities()]
[0.52, 0.48]
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence


class Exp3:
    """K arms with equal weights, ``gamma`` the exploration rate, ``alpha`` the sharing rate."""

    def __init__(self, k: int, gamma: float = 0.2, alpha: float = 0.01):
        if k < 1:
            raise ValueError(f"EXP3 needs at least one arm, got {k}")
        if not 0 < gamma <= 1 or not 0 <= alpha < 1:
            raise ValueError(f"EXP3 needs 0 < gamma <= 1 and 0 <= alpha < 1, got gamma {gamma}, alpha {alpha}")
        self.k, self.gamma, self.alpha = k, gamma, alpha
        self.weights = [1.0 / k] * k

    def probabilities(self) -> list[float]:
        """``p_i`` of each arm (see the module docstring)."""
        total = sum(self.weights)
        return [(1 - self.gamma) * w / total + self.gamma / self.k for w in self.weights]

    def update(self, pulls: Sequence[tuple[int, float]]) -> None:
        """One round: each pull's arm and reward in [0, 1]."""
        if not pulls:
            return
        p = self.probabilities()
        gain = [0.0] * self.k
        for arm, reward in pulls:
            if not 0.0 <= reward <= 1.0:
                raise ValueError(f"EXP3 rewards must lie in [0, 1], got {reward}")
            gain[arm] += reward / (len(pulls) * p[arm])
        share = math.e * self.alpha / self.k * sum(self.weights)
        new = [w * math.exp(self.gamma * g / self.k) + share for w, g in zip(self.weights, gain)]
        total = sum(new)
        self.weights = [w / total for w in new]

    def draw(self, rng: random.Random | None = None) -> int:
        """An arm drawn with :meth:`probabilities` (``rng`` defaults to the ``random`` module).

        >>> Exp3(3).draw(random.Random(0))
        2
        """
        u, acc = (rng or random).random(), 0.0
        p = self.probabilities()
        for arm, q in enumerate(p):
            acc += q
            if u < acc:
                return arm
        return len(p) - 1


def replay(k: int, rounds: Iterable[Sequence[tuple[int, float]]], gamma: float = 0.2, alpha: float = 0.01) -> Exp3:
    """The bandit after ``rounds`` of pulls, from equal weights (its state is a function of the history).

    >>> [round(p, 4) for p in replay(2, [[(0, 1.0), (1, 0.0)]], alpha=0.0).probabilities()]
    [0.52, 0.48]
    """
    bandit = Exp3(k, gamma, alpha)
    for pulls in rounds:
        bandit.update(pulls)
    return bandit


def scaled(values: Sequence[float]) -> list[float]:
    """Rewards scaled to [0, 1] by their minimum and maximum (all 0.5 when they are equal).

    >>> scaled([-1.0, 0.0, 3.0])
    [0.0, 0.25, 1.0]
    """
    low, high = min(values, default=0.0), max(values, default=0.0)
    return [0.5 if high == low else (v - low) / (high - low) for v in values]
