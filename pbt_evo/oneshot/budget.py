"""The budget of a one-shot search in PBT-NAS's unit, member-epochs.

PBT-NAS with N members trained ``e_total`` epochs each spends ``N * e_total`` member-epochs. A one-shot
search spends the same: its supernet is trained ``supernet_epochs`` epochs (one epoch: as many
minibatches as one member's epoch, each spent on one sampled architecture), then ``standalone`` of the
best architectures are trained stand-alone from scratch for ``standalone_epochs`` each:

    supernet_epochs + standalone * standalone_epochs = N * e_total.

Counting minibatches as epochs assumes a supernet minibatch costs what a member's does: it trains one
architecture's network, but architectures differ in cost (``Task.cost``), so equal budgets in epochs
are equal in time only on average over the sampled networks. Evaluating the pool with shared weights
and training the controller are not counted (nor are PBT-NAS's evaluations).
"""

from __future__ import annotations

from dataclasses import dataclass


class BudgetError(ValueError):
    """The stand-alone training does not leave the supernet any epochs."""


@dataclass(frozen=True)
class Budget:
    """A one-shot search's split of ``population * e_total`` member-epochs.

    >>> b = Budget(population=8, e_total=24, standalone=2, standalone_epochs=24)
    >>> b.total, b.supernet_epochs, b.supernet_steps(steps_per_epoch=30)
    (192, 144, 4320)
    """

    population: int
    e_total: int
    standalone: int
    standalone_epochs: int

    def __post_init__(self) -> None:
        for name in ("population", "e_total", "standalone", "standalone_epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise BudgetError(f"{name} must be an integer >= 1, got {value!r}")
        if self.supernet_epochs < 1:
            raise BudgetError(f"{self.standalone} stand-alone networks x {self.standalone_epochs} epochs use the"
                              f" whole budget of {self.population} x {self.e_total} = {self.total} member-epochs;"
                              " the supernet needs at least one")

    @property
    def total(self) -> int:
        """``N * e_total`` member-epochs, PBT-NAS's budget."""
        return self.population * self.e_total

    @property
    def supernet_epochs(self) -> int:
        """What is left for the supernet after the stand-alone training."""
        return self.total - self.standalone * self.standalone_epochs

    def supernet_steps(self, steps_per_epoch: int) -> int:
        """The supernet's minibatches (``Member.steps_per_epoch`` per epoch)."""
        return self.supernet_epochs * int(steps_per_epoch)

    def as_epochs(self, member_epochs: float) -> float:
        """Member-epochs spent, in the epochs per member that PBT-NAS's logs count (the run ends at
        ``e_total``), so that ``compare`` puts both on one axis.

        >>> Budget(8, 24, 2, 24).as_epochs(192)
        24.0
        """
        return member_epochs / self.population
