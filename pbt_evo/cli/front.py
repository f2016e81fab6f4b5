"""A multi-objective run's Pareto front in its run folder (``algorithm.objectives``).

- ``front.jsonl``: one line per generation: the front of trained states found so far (the hall of
  fame, :class:`pbt_evo.pareto.TrainedFront`), each member's objective values, and its hypervolume
  against ``algorithm.reference_point`` (stated in each line);
- ``best/front/<k>/``: each member of the final front in ``best/``'s layout, ``best/front.md`` a table
  of them (``best/front.json`` the same as data); ``pbt_evo.load_front(run)`` loads them all.

>>> from pbt_evo.objectives import Objectives
>>> print(front_table([{"id": 3, "objectives": {"fitness": 0.9, "params": 338}, "test_score": 0.88,
...                     "epochs": 24, "arch": {"op0": "conv3"}}], Objectives(("fitness", "params"), (1.0, -1.0))))
| folder | member | fitness (max) | params (min) | test score | epochs | architecture |
|---|---|---|---|---|---|---|
| front/00 | 3 | 0.9 | 338 | 0.88 | 24 | op0=conv3 |
<BLANKLINE>
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..algorithms import Generation
from ..objectives import Objectives
from ..pareto import hypervolume
from ..space import SearchSpace


def front_record(g: Generation, objectives: Objectives, reference: Sequence[float],
                 space: SearchSpace) -> dict[str, Any]:
    """The ``front.jsonl`` line of a generation: its hall of fame's front and hypervolume."""
    front = list(g.halloffame or [])
    return {"gen": g.generation, "epochs": g.epochs, "objectives": list(objectives.names),
            "reference": list(reference), "hypervolume": hypervolume(front, reference),
            "members": [{"id": ind.id, "epochs": ind.epochs, "genome": list(ind), "arch": space.decode(list(ind)),
                         "values": list(ind.fitness.values)} for ind in front]}


def _fmt(x: Any) -> str:
    return "n/a" if x is None else f"{x:.4g}" if isinstance(x, float) else str(x)


def member_folder(k: int) -> str:
    """The folder of the front's ``k``-th member (highest fitness first) in ``best/front/``.

    >>> member_folder(3)
    '03'
    """
    return f"{k:02d}"


def front_table(infos: Sequence[Mapping[str, Any]], objectives: Objectives) -> str:
    """The members of a front (their ``best/front/<k>/genome.json`` records) as a Markdown table."""
    heads = [f"{n} ({'max' if w > 0 else 'min'})" for n, w in zip(objectives.names, objectives.weights)]
    lines = ["| folder | member | " + " | ".join(heads) + " | test score | epochs | architecture |",
             "|" + "---|" * (len(heads) + 5)]
    for k, info in enumerate(infos):
        values = " | ".join(_fmt(info["objectives"][n]) for n in objectives.names)
        arch = ", ".join(f"{name}={value}" for name, value in info["arch"].items())
        lines.append(f"| front/{member_folder(k)} | {info['id']} | {values} | {_fmt(info.get('test_score'))} |"
                     f" {info['epochs']} | {arch} |")
    return "\n".join(lines) + "\n"
