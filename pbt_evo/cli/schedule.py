"""Hyperparameter schedules and the final best member's family tree, from a run folder's logs.

- ``hyperparameters.png``: every member's value of each hyperparameter over epochs (grey), with the final
  best member's schedule on top: the values its line of base parents trained with, generation by
  generation (the picture PBT users look for);
- ``family_tree.json`` / ``family_tree.txt``: every ancestor of the final best member (both parents of each
  child), when it was made, from whom, which variables came from the donor and what changed, old -> new
  (mixing and explore, as ``lineage.jsonl`` records them).

Drawn by ``python -m pbt_evo.plot`` for runs whose space has hyperparameter variables.
"""

from __future__ import annotations

import json
from collections import deque
from itertools import pairwise
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .runread import by_generation, iter_members, read_best  # noqa: E402


def best_member(run: Path, population_rows: list[dict]) -> int:
    """The id of the run's final best member: ``best/genome.json``'s, else the fittest of the last generation."""
    info = read_best(run)
    if info is not None:
        return int(info["id"])
    last = max(r["gen"] for r in population_rows)
    rows = [r for r in population_rows if r["gen"] == last]
    return max(rows, key=lambda r: -float("inf") if r["fitness"] is None else r["fitness"])["id"]


def base_line(lineage_rows: list[dict], member: int) -> list[int]:
    """``member``, its base parent, that one's base parent, ... back to an initial network.

    >>> base_line([{"child": 5, "parents": [2, 3]}, {"child": 9, "parents": [5]}], 9)
    [9, 5, 2]
    """
    base = {r["child"]: r["parents"][0] for r in lineage_rows}
    line = [member]
    while line[-1] in base:
        line.append(base[line[-1]])
    return line


def schedule(population_rows: list[dict], lineage_rows: list[dict], member: int, name: str) -> list[tuple[int, int, Any]]:
    """(first epoch, last epoch, value) of hyperparameter ``name`` in each generation of ``member``'s
    training history: in a generation before it was made, its base-parent line's member that trained then.

    >>> pop = [{"gen": 1, "epochs": 2, "id": 0, "arch": {"lr": 0.1}}, {"gen": 2, "epochs": 4, "id": 1, "arch": {"lr": 0.2}}]
    >>> schedule(pop, [{"child": 1, "parents": [0]}], 1, "lr")
    [(0, 2, 0.1), (2, 4, 0.2)]
    """
    line = base_line(lineage_rows, member)
    rank = {m: k for k, m in enumerate(line)}
    out, start = [], 0
    groups = by_generation(population_rows)
    for gen in sorted(groups):
        rows = [r for r in groups[gen] if r["id"] in rank]
        if not rows:
            break
        row = min(rows, key=lambda r: rank[r["id"]])  # the youngest of the line that trained in this generation
        out.append((start, row["epochs"], row["arch"][name]))
        start = row["epochs"]
    return out


def family_tree(lineage_rows: list[dict], member: int) -> list[dict]:
    """Every ancestor of ``member`` made by the loop (initial networks have no row), youngest first: its
    lineage row (generation, parents, variables taken, changes old -> new).

    >>> rows = [{"gen": 1, "child": 5, "parents": [2, 3]}, {"gen": 2, "child": 9, "parents": [5]}]
    >>> [r["child"] for r in family_tree(rows, 9)]
    [9, 5]
    """
    made = {r["child"]: r for r in lineage_rows}
    seen, todo, out = set(), deque([member]), []
    while todo:
        m = todo.popleft()
        if m in seen or m not in made:
            continue
        seen.add(m)
        out.append(made[m])
        todo.extend(made[m]["parents"])
    return sorted(out, key=lambda r: (-r["gen"], -r["child"]))


def tree_text(tree: list[dict], member: int) -> str:
    """The family tree as indented lines: each child, its parents below it (an ancestor met again is named
    only); initial networks are leaves.

    >>> rows = [{"gen": 2, "child": 9, "parents": [5], "taken": [], "changes": {"lr": [0.1, 0.2]}}]
    >>> print(tree_text(rows, 9))
    member 9, made after generation 2: copy of 5; lr 0.1 -> 0.2
      member 5: initial network
    """
    made = {r["child"]: r for r in tree}
    lines: list[str] = []
    shown: set[int] = set()

    def walk(m: int, depth: int) -> None:
        pad = "  " * depth
        if m not in made:
            lines.append(f"{pad}member {m}: initial network")
            return
        if m in shown:
            lines.append(f"{pad}member {m}: (above)")
            return
        shown.add(m)
        r = made[m]
        parents = r["parents"]
        how = (f"copy of {parents[0]}" if len(parents) == 1 or parents[0] == parents[1]
               else f"base {parents[0]}, donor {parents[1]} (took {', '.join(r['taken']) or 'nothing'})")
        changes = "; ".join(f"{k} {a} -> {b}" for k, (a, b) in r.get("changes", {}).items()) or "no gene changed"
        lines.append(f"{pad}member {m}, made after generation {r['gen']}: {how}; {changes}")
        for p in dict.fromkeys(parents):
            walk(p, depth + 1)

    walk(member, 0)
    return "\n".join(lines)


def _step(values: list) -> float:
    """The smallest gap between two of the (numeric) values, to spread lines on a linear axis."""
    distinct = sorted(set(values))
    return min((b - a for a, b in pairwise(distinct)), default=1.0)


def plot_schedules(run: Path, population_rows: list[dict], lineage_rows: list[dict], names: list[str],
                   out: Path) -> list[Path]:
    """``hyperparameters.png``, ``family_tree.json`` and ``family_tree.txt`` in ``out``; returns their paths."""
    best = best_member(run, population_rows)
    ends = {r["gen"]: r["epochs"] for r in population_rows}
    start = {g: ends.get(g - 1, 0) for g in ends}
    fig, axes = plt.subplots(len(names), 1, figsize=(6.5, 3.2 * len(names)), squeeze=False)
    members = list(iter_members(population_rows))
    for ax, name in zip(axes[:, 0], names):
        values = [r["arch"][name] for r in population_rows]
        log = all(isinstance(v, (int, float)) and v > 0 for v in values) and max(values) / min(values) >= 20
        for k, (_, own) in enumerate(members):  # each member over the generations it trained, spread apart a little
            ys = [r["arch"][name] for r in own]
            if all(isinstance(y, (int, float)) for y in ys):
                spread = (k / max(len(members) - 1, 1) - 0.5) * 0.15
                ys = [y * 10 ** spread if log else y + spread * _step(values) for y in ys]
            ax.step([start[r["gen"]] for r in own] + [own[-1]["epochs"]], ys + ys[-1:], where="post",
                    color="0.45", alpha=0.45, linewidth=0.9)
        steps = schedule(population_rows, lineage_rows, best, name)
        ax.step([s[0] for s in steps] + [steps[-1][1]], [s[2] for s in steps] + [steps[-1][2]], where="post",
                color="tab:red", linewidth=2.2, label=f"final best (member {best})")
        if log:
            ax.set_yscale("log")
        ax.set_xlabel("epochs per member")
        ax.set_ylabel(name)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    axes[0, 0].set_title(f"{run.name}\nevery member (grey, spread apart), the final best member's schedule (red)",
                         fontsize=9)
    fig.tight_layout()
    paths = [out / "hyperparameters.png"]
    fig.savefig(paths[0], dpi=120)
    plt.close(fig)
    tree = family_tree(lineage_rows, best)
    paths.append(out / "family_tree.json")
    paths[-1].write_text(json.dumps({"member": best, "ancestors": tree}, indent=1))
    paths.append(out / "family_tree.txt")
    paths[-1].write_text(tree_text(tree, best) + "\n")
    return paths
