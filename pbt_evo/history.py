"""What a variant remembers between generations besides its population, as plain records a checkpoint
saves: nothing (:class:`Memory`, most variants), or the population's history (:class:`History`), which
the models of the PBT family (PB2's GP, PB2-Mix's bandit, FIRE-PBT's evaluators, BG-PBT's trust region)
learn from.

Every toolbox :func:`~pbt_evo.variants.make_toolbox` builds has ``toolbox.memory``; the loop never calls
it, the variant's own operators do (``select`` records the trained population, ``mutate`` a child's
start), and the run's checkpoints save ``memory.state()`` and resume with ``memory.load(state)``, so a
resumed run continues exactly (``pbt_evo.cli.checkpoint``).

A history row is one member at one time: ``{"id", "t" (epochs trained), "f" (fitness, None when not
finite), "genome", "start"}``; a ``start`` row says with which genome a child begins from its base
parent's state (its base parent's ``t`` and ``f``). Consecutive rows of one member are a training step:
:meth:`History.steps` gives each with its improvement per epoch, what PB2 models.

>>> from pbt_evo.handles import StoredState
>>> h = History()
>>> a = Individual([0, 0.1], id=1, epochs=2, handle=StoredState({})); a.fitness.values = (0.5,)
>>> h.record([a]); child = a.spawn(7); child[1] = 0.2; h.start(child)
>>> child.epochs = 4; child.fitness.values = (0.9,); h.record([child])
>>> [(s.id, s.t, s.f, s.genome, round(s.y, 12)) for s in h.steps()]
[(7, 2, 0.5, [0, 0.2], 0.2)]
>>> History.from_state(h.state()).rows == h.rows
True
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .individual import Individual, plain_gene


class Memory:
    """A variant that remembers nothing between generations (its operators are functions of the
    population alone).

    >>> Memory().state()
    {}
    """

    def state(self) -> dict[str, Any]:
        """Plain values (:mod:`pbt_evo.plain`) from which :meth:`load` restores this memory exactly."""
        return {}

    def load(self, state: Mapping[str, Any]) -> None:
        """Restore the memory :meth:`state` described."""
        if state:
            raise ValueError(f"{type(self).__name__} keeps no state, got keys {sorted(state)}")


@dataclass(frozen=True)
class Step:
    """One member's training from time ``t`` (fitness ``f``) to ``t_end`` (``f_end``) with ``genome``:
    ``y``, the improvement per epoch."""

    id: int
    t: int
    f: float
    genome: list[Any]
    t_end: int
    f_end: float

    @property
    def y(self) -> float:
        return (self.f_end - self.f) / (self.t_end - self.t)


class History(Memory):
    """The population's rows over time (see the module docstring); subclasses add their model's state."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def row(self, ind: Individual, start: bool = False, **extra: Any) -> dict[str, Any]:
        f = ind.fitness.values[0] if ind.fitness.valid else math.nan
        return {"id": ind.id, "t": int(ind.epochs), "f": float(f) if math.isfinite(f) else None,
                "genome": [plain_gene(g) for g in ind], "start": start, **extra}

    def record(self, population: Iterable[Individual], **extra: Any) -> None:
        """A row for each member as trained this generation."""
        self.rows += [self.row(ind, **extra) for ind in population]

    def start(self, child: Individual, **extra: Any) -> None:
        """A start row for a spawned ``child``: its genome from its base parent's last time and fitness."""
        base = self.last(child.parents[0])
        row = self.row(child, start=True, **extra)
        row.update(t=base["t"] if base else int(child.epochs), f=base["f"] if base else None)
        self.rows.append(row)

    def last(self, member: int) -> dict[str, Any] | None:
        """The member's newest row, or None."""
        return next((r for r in reversed(self.rows) if r["id"] == member), None)

    def curve(self, member: int) -> list[tuple[int, float]]:
        """``(t, f)`` of the member's trained rows, oldest first (non-finite ones left out)."""
        return [(r["t"], r["f"]) for r in self.rows if r["id"] == member and not r["start"] and r["f"] is not None]

    def steps(self, rows: Sequence[dict[str, Any]] | None = None) -> list[Step]:
        """Each training step of each member (consecutive rows of one id, both finite), by start time."""
        out, last = [], {}
        for r in self.rows if rows is None else rows:
            prev = last.get(r["id"])
            if prev is not None and r["t"] > prev["t"] and prev["f"] is not None and r["f"] is not None:
                out.append(Step(r["id"], prev["t"], prev["f"], prev["genome"], r["t"], r["f"]))
            last[r["id"]] = r
        return sorted(out, key=lambda s: s.t)

    def state(self) -> dict[str, Any]:
        return {"rows": [dict(r) for r in self.rows]}

    def load(self, state: Mapping[str, Any]) -> None:
        self.rows = [dict(r) for r in state.get("rows", [])]

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> "History":
        h = cls()
        h.load(state)
        return h
