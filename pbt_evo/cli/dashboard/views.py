"""What the run page shows, derived from a run folder's records and kept up to date as rows are appended.

:class:`RunView` follows one folder (:class:`pbt_evo.cli.runread.RunReader`) and indexes only the
population rows appended since its last look: rows by generation, by member, and the per-generation
counts of layer origins. The functions below turn that into plain data (lists, numpy arrays, table
rows) for :mod:`.figures` and the tables; none of them builds anything a folder names.

>>> from pbt_evo.cli.runread import Run
>>> run = Run(Path("r"), {"name": "r", "algorithm": {"population": 2}}, {"a": {"options": [0, 1], "owns": ["x"]}},
...           population=[{"gen": 1, "id": 0, "epochs": 2, "fitness": 0.5, "origin": [0], "arch": {"a": 1},
...                        "parents": [], "genome": [1]},
...                       {"gen": 1, "id": 1, "epochs": 2, "fitness": None, "origin": [0], "arch": {"a": 0},
...                        "parents": [], "genome": [0]}])
>>> view = RunView.of(run)
>>> [r["id"] for r in failures(view)], origin_shares(view, top=4)[2].tolist()
([1], [[1.0, 0.0, 0.0]])
>>> columns, rows = population_table(view)
>>> [(r["id"], r["fitness"], r["made"], r["origin"], r["a"]) for r in rows]  # fittest first, failed last
[(0, 0.5, 'initial', 'net 0', 1), (1, None, 'initial', 'net 0', 0)]
>>> member_details(view, 0)["how"], best_id(view)
('initial network', 0)
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from ..runread import Run, RunReader
from ..schedule import base_line, best_member, family_tree


class RunView:
    """One run folder followed live: its latest :class:`Run`, its population rows by generation, and each
    generation's numbers as arrays (computed once a generation is complete, in one numpy pass)."""

    def __init__(self, path: str | Path):
        self.reader = RunReader(path)
        self.run: Run | None = None
        self._reset(None)

    @classmethod
    def of(cls, run: Run) -> "RunView":
        """A view of records already read (no folder)."""
        view = cls(run.path)
        view._index(run)
        return view

    def _reset(self, rows: list | None) -> None:
        self._rows, self._seen = rows, 0
        self.gens: dict[int, list[dict]] = {}
        self.made: dict[int, dict] = {}  # child id -> its lineage row
        self._lineage, self._lineage_seen = None, 0
        self._arrays: dict[int, tuple[int, dict[str, np.ndarray]]] = {}

    def update(self) -> Run:
        """Read what changed in the folder and index the new rows; returns the run as it is now."""
        run = self.reader.read()
        self._index(run)
        return run

    def _index(self, run: Run) -> None:
        pop = run.population
        if pop is not self._rows or len(pop) < self._seen:  # the file was read again from its start
            self._reset(pop)
        gens = self.gens
        for r in pop[self._seen:]:
            gens.setdefault(r["gen"], []).append(r)
        self._seen = len(pop)
        if run.lineage is not self._lineage or len(run.lineage) < self._lineage_seen:  # read again from its start
            self.made, self._lineage, self._lineage_seen = {}, run.lineage, 0
        for r in run.lineage[self._lineage_seen:]:
            self.made[r["child"]] = r
        self._lineage_seen = len(run.lineage)
        self.run = run

    @property
    def last_gen(self) -> int:
        return max(self.gens, default=0)

    def arrays(self, gen: int) -> dict[str, np.ndarray]:
        """Generation ``gen``'s members as arrays: ``id``, ``epochs``, ``fitness`` (NaN: failed), ``genome``
        and ``origin`` (members x variables; -1 where a row has none); cached while its row count holds."""
        rows = self.gens.get(gen, [])
        cached = self._arrays.get(gen)
        if cached is not None and cached[0] == len(rows):
            return cached[1]
        width = max((len(r.get("genome") or ()) for r in rows), default=0)

        def matrix(key: str) -> np.ndarray:
            values = [r.get(key) or () for r in rows]
            if all(len(v) == width for v in values):
                return np.array(values, np.int64).reshape(len(rows), width)
            out = np.full((len(rows), width), -1, np.int64)  # rows of another length (none, or another space)
            for k, v in enumerate(values):
                out[k, :len(v)] = v
            return out

        arrays = {"id": np.array([r["id"] for r in rows], np.int64),
                  "epochs": np.array([r["epochs"] for r in rows], np.float64),
                  "fitness": np.array([np.nan if r.get("fitness") is None else r["fitness"] for r in rows], np.float64),
                  "genome": matrix("genome"), "origin": matrix("origin")}
        self._arrays[gen] = (len(rows), arrays)
        return arrays


def layer_variables(space: dict[str, Any]) -> list[int]:
    """Indices of the variables that own layers (all of them if none does, as ``plot`` counts origins).

    >>> layer_variables({"op": {"owns": ["cells.0"]}, "act": {"owns": []}})
    [0]
    """
    owned = [i for i, v in enumerate(space.values()) if v.get("owns")]
    return owned or list(range(len(space)))


def hyperparameters(space: dict[str, Any]) -> list[str]:
    return [name for name, v in space.items() if v.get("hyper")]


def fitness_lines(view: RunView) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every member's fitness over epochs as one polyline: x, y and member id per point, NaN between
    members (one trace draws 10^5 points); a failed training is a gap.

    >>> v = RunView.of(Run(Path("r"), {"name": "r", "algorithm": {}}, {}, population=[
    ...     {"gen": 1, "id": 0, "epochs": 2, "fitness": 0.5}, {"gen": 2, "id": 0, "epochs": 4, "fitness": 0.7}]))
    >>> [a.tolist() for a in fitness_lines(v)]
    [[2.0, 4.0, nan], [0.5, 0.699999988079071, nan], [0, 0, -1]]
    """
    parts = [view.arrays(g) for g in sorted(view.gens)]
    if not parts:
        return np.zeros(0, np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32)
    ids = np.concatenate([a["id"] for a in parts])
    order = np.argsort(ids, kind="stable")  # by member, generations in order within each
    ids = ids[order]
    x = np.concatenate([a["epochs"] for a in parts])[order]
    y = np.concatenate([a["fitness"] for a in parts])[order]
    ends = np.flatnonzero(np.diff(ids)) + 1  # where the next member starts
    x = np.insert(x, np.append(ends, len(x)), np.nan)
    y = np.insert(y, np.append(ends, len(y)), np.nan)
    ids = np.insert(ids, np.append(ends, len(ids)), -1)
    return x.astype(np.float32), y.astype(np.float32), ids.astype(np.int32)


def origin_shares(view: RunView, top: int = 12) -> tuple[list[int], list[str], np.ndarray]:
    """The paper's Appendix A: per generation, the share of the population's layers descending from each
    initial network (the ``top`` largest at the last generation named, the rest as "other"), and "new"
    (re-initialised by a mutation); epochs, labels and a generations x labels array."""
    run = view.run
    n = int(run.config.get("algorithm", {}).get("population") or 0) if run else 0
    gens = sorted(view.gens)
    if not gens:
        return [], [], np.zeros((0, 0))
    layers = layer_variables(run.space) if run.space else None
    counts = np.zeros((len(gens), n + 1))
    for k, g in enumerate(gens):
        origin = view.arrays(g)["origin"]
        origin = origin[:, layers] if layers is not None else origin
        origin = origin[origin >= 0]
        counts[k] = np.bincount(np.where(origin < n, origin, n), minlength=n + 1)
    shares = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    keep = sorted(np.argsort(-shares[-1, :n], kind="stable")[:top].tolist()) if n else []
    other = np.delete(shares[:, :n], keep, axis=1).sum(1, keepdims=True)
    labels = [f"net {k}" for k in keep] + (["other"] if n > len(keep) else []) + ["new"]
    cols = [shares[:, keep]] + ([other] if n > len(keep) else []) + [shares[:, n:]]
    return [int(view.gens[g][0]["epochs"]) for g in gens], labels, np.hstack(cols)


def origin_summary(origin: list[int], layers: list[int], n: int) -> str:
    """Which initial networks a member's layers descend from, e.g. ``net 3 x2, net 7, new``.

    >>> origin_summary([3, 7, 3, 12, 5], [0, 1, 2, 3], 8)
    'net 3 x2, net 7, new'
    """
    counts = Counter(origin[i] if origin[i] < n else "new" for i in layers if i < len(origin))
    return ", ".join((f"net {k}" if k != "new" else "new") + (f" x{c}" if c > 1 else "") for k, c in counts.items())


def population_table(view: RunView, gen: int | None = None) -> tuple[list[str], list[dict]]:
    """Generation ``gen``'s members (the last by default), fittest first: columns and rows."""
    run = view.run
    gen = view.last_gen if gen is None or gen not in view.gens else gen
    names = list(run.space) if run and run.space else []
    n = int(run.config.get("algorithm", {}).get("population") or 0) if run else 0
    layers = layer_variables(run.space) if run and run.space else []
    rows = []
    for r in view.gens.get(gen, []):
        made = view.made.get(r["id"])
        arch = r.get("arch") or {}
        rows.append({"id": r["id"], "fitness": r["fitness"], "epochs": r["epochs"],
                     "made": f"gen {made['gen']}" if made else "initial",
                     "parents": " + ".join(map(str, r.get("parents") or [])) or "-",
                     "origin": origin_summary(r.get("origin") or [], layers, n),
                     "genome": " ".join(map(str, r.get("genome") or [])),
                     **{name: _cell(arch.get(name)) for name in names}})
    rows.sort(key=lambda row: np.inf if row["fitness"] is None else -row["fitness"])  # failed last
    return ["id", "fitness", "epochs", "made", "parents", "origin", "genome", *names], rows


def _cell(value: Any) -> Any:
    return value if isinstance(value, (int, float, str)) or value is None else str(value)


def failures(view: RunView) -> list[dict]:
    """Every training that gave no fitness (it raised, diverged, or was lost): generation, member, architecture."""
    out = []
    for g in sorted(view.gens):
        for k in np.flatnonzero(np.isnan(view.arrays(g)["fitness"])):
            r = view.gens[g][k]
            arch = r.get("arch") or {}
            out.append({"gen": g, "id": r["id"], "epochs": r["epochs"],
                        "architecture": ", ".join(f"{k}={v}" for k, v in arch.items())})
    return out


def schedule_counts(view: RunView, name: str) -> tuple[list[int], list[Any], np.ndarray]:
    """How many members trained with each option of hyperparameter ``name`` in each generation: epochs,
    options (the space's order) and an options x generations array."""
    space = view.run.space if view.run else {}
    options = list(space.get(name, {}).get("options", []))
    column = list(space).index(name) if name in space else None
    gens = sorted(view.gens)
    counts = np.zeros((len(options), len(gens)))
    for j, g in enumerate(gens):
        genome = view.arrays(g)["genome"]
        if column is not None and genome.shape[1] > column:
            values = genome[:, column]
            counts[:, j] = np.bincount(values[(values >= 0) & (values < len(options))], minlength=len(options))
    return [int(view.gens[g][0]["epochs"]) for g in gens], options, counts


def best_schedule(view: RunView, member: int, name: str) -> list[tuple[int, Any]]:
    """(epochs at the end of each generation, value of ``name``) along ``member``'s line of base parents,
    as :func:`pbt_evo.cli.schedule.schedule` defines it, from the indexes."""
    line = base_line(list(view.made.values()), member)
    rank = np.full(max(line) + 1, len(line))
    rank[line] = np.arange(len(line))
    out = []
    for g in sorted(view.gens):
        ids = view.arrays(g)["id"]
        mine = np.flatnonzero((ids <= rank.size - 1) & (rank[np.minimum(ids, rank.size - 1)] < len(line)))
        if not mine.size:
            break
        k = mine[np.argmin(rank[ids[mine]])]  # the youngest of the line that trained in this generation
        row = view.gens[g][k]
        out.append((row["epochs"], (row.get("arch") or {}).get(name)))
    return out


def best_id(view: RunView) -> int | None:
    """The run's final best member (``best/genome.json``), else the fittest of the last generation."""
    if view.run is None or not view.gens:
        return None
    if view.run.best is not None:
        return int(view.run.best["id"])
    return best_member(view.run.path, view.gens[view.last_gen])


def tree(view: RunView, member: int, max_nodes: int = 400) -> dict[str, Any]:
    """The family tree of ``member``: each ancestor made by the loop and the initial networks it descends
    from, placed by the generation it was made after (x) and spread within it (y). Ancestors beyond the
    most recent generations that fit ``max_nodes`` are cut off (their children are shown as leaves)."""
    rows = family_tree(list(view.made.values()), member)  # youngest first
    ancestors = len(rows)
    per_gen = Counter(r["gen"] for r in rows)
    cutoff, total = 0, 0
    for g in sorted(per_gen, reverse=True):
        total += per_gen[g]
        if total > max_nodes:
            cutoff = g
            break
    rows = [r for r in rows if r["gen"] > cutoff]
    nodes: dict[int, dict] = {}
    for r in rows:
        nodes[r["child"]] = {"id": r["child"], "gen": r["gen"], "parents": list(r["parents"]), "lineage": r}
    for r in rows:
        for p in r["parents"]:
            if p not in nodes:  # an initial network, or an ancestor beyond the cutoff
                made = view.made.get(p)
                nodes[p] = {"id": p, "gen": made["gen"] if made else 0, "parents": [], "lineage": None,
                            "cut": made is not None}
    if member not in nodes:
        nodes[member] = {"id": member, "gen": 0, "parents": [], "lineage": None, "cut": False}
    columns: dict[int, list[int]] = {}
    for m in sorted(nodes):
        columns.setdefault(nodes[m]["gen"], []).append(m)
    for g, ids in columns.items():
        for k, m in enumerate(ids):
            nodes[m]["x"], nodes[m]["y"] = g, k - (len(ids) - 1) / 2
    edges = [(m, p, k) for m, node in nodes.items() for k, p in enumerate(dict.fromkeys(node["parents"]))]
    return {"member": member, "nodes": nodes, "edges": edges, "cutoff": cutoff, "ancestors": ancestors}


def member_details(view: RunView, member: int) -> dict[str, Any]:
    """What the page says about one member: how it was made (parents, variables taken from the donor,
    genes changed), its architecture and its fitness in each generation it trained."""
    history = [r for g in sorted(view.gens) for r in view.gens[g] if r["id"] == member]
    made = view.made.get(member)
    arch = (history[-1].get("arch") if history else None) or {}
    out: dict[str, Any] = {"id": member, "arch": arch, "fitness": [(r["gen"], r["epochs"], r["fitness"]) for r in history]}
    if made is None:
        out["how"] = "initial network"
        return out
    parents = made["parents"]
    out["parents"] = list(parents)
    if len(parents) == 1 or len(set(parents)) == 1:
        out["how"] = f"made after generation {made['gen']}: a copy of member {parents[0]}"
    else:
        taken = made.get("taken") or []
        out["how"] = (f"made after generation {made['gen']}: base member {parents[0]}, donor member {parents[1]}"
                      f" (took {', '.join(taken) or 'nothing'} from the donor)")
    out["changes"] = {k: v for k, v in (made.get("changes") or {}).items()}
    space = view.run.space if view.run else {}
    n = int(view.run.config.get("algorithm", {}).get("population") or 0) if view.run else 0
    origin, names = made.get("origin") or [], list(space)
    out["origin"] = {names[i]: f"net {origin[i]}" if origin[i] < n else "new" for i in layer_variables(space)
                     if i < len(origin)} if space else {}
    return out
