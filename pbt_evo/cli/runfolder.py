"""The run folder: per-generation logs, lineage, population, TensorBoard, and the exported best network.

``runs/<name>/``::

    run.lock           held while a run uses the folder: its host, pid and start time (pbt_evo.cli.runlock)
    config.yaml        the resolved config (every key, defaults filled in)
    log.csv, log.jsonl one row per generation: epochs, best/median/worst fitness, seconds, framework share
    population.jsonl   every member as trained each generation: id, genome, architecture, fitness, origin
    lineage.jsonl      every child: parents, variables taken from the donor, per-variable origin, and
                       changes: each gene that differs from its base parent's, {name: [old, new]} (mixing,
                       explore of hyperparameters)
    trials.jsonl       a BOHB run's architectures instead of the two above (pbt_evo.cli.bohb)
    checkpoints/       see pbt_evo.cli.checkpoint
    best/              genome.json, model.safetensors, README.md (how to load; pbt_evo.export); with
                       several objectives also front/<k>/ (each member of the Pareto front), front.md,
                       front.json
    front.jsonl        with several objectives: the Pareto front and its hypervolume per generation
                       (pbt_evo.cli.front); log rows then have hypervolume and front_size too
    plots/             fitness.png, origins.png (pbt_evo.cli.plot)
    tb/                TensorBoard scalars; tb/members/<id>/: each member's genome and fitness for the
                       HPARAMS tab (pbt_evo.cli.tbhparams)
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..algorithms import Generation
from ..export import save_best
from ..individual import Individual, plain_gene
from ..objectives import Objectives
from ..space import SearchSpace
from ..task import Task
from .checkpoint import CheckpointError
from .config import spec_of
from .failures import nonfinite_members
from .front import front_record, front_table, member_folder
from .runread import RunReadError, read_jsonl
from .tbhparams import HParamsWriter

LOG_FIELDS = ["gen", "epochs", "best", "median", "worst", "failed", "nonfinite", "replaced", "wall_s", "train_s",
              "framework_s", "framework_share"]
FRONT_FIELDS = ["hypervolume", "front_size"]  # log columns of a multi-objective run
APPENDED = ("log.jsonl", "population.jsonl", "lineage.jsonl", "front.jsonl")  # JSON lines, one record per line


def _task_record(cfg: dict[str, Any]) -> dict[str, Any]:
    """What builds the run's task again (with its hyperparameter variables, :mod:`pbt_evo.hyper`)."""
    spec = spec_of(cfg)
    return {"target": spec.target, "args": dict(spec.kwargs)}


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def member_record(ind: Individual, space: SearchSpace, generation: int) -> dict[str, Any]:
    rec = {"gen": generation, "id": ind.id, "genome": [plain_gene(g) for g in ind], "arch": space.decode(list(ind)),
           "fitness": _finite(ind.fitness.values[0]) if ind.fitness.valid else None, "epochs": ind.epochs,
           "origin": list(ind.origin), "parents": list(ind.parents),
           "metrics": {k: v for k, v in ind.metrics.items() if isinstance(v, (int, float))}}
    if len(ind.fitness.weights) > 1:
        rec["values"] = [_finite(v) for v in ind.fitness.values] if ind.fitness.valid else None
    return rec


def generation_row(g: Generation, workers: int, wall: float) -> dict[str, Any]:
    """One log row; the framework share is the part of the workers' time in this generation's wall time
    not spent training. Results count in the generation in which they arrive (an early start of the
    next generation's member counts here), so one generation's share is approximate, a run's exact."""
    fits = np.array([ind.score for ind in g.trained])
    finite = fits[np.isfinite(fits)]
    framework = max(wall - g.outcome.busy_seconds / workers, 0.0)
    return {"gen": g.generation, "epochs": g.epochs,
            "best": float(finite.max()) if finite.size else None,
            "median": float(np.median(finite)) if finite.size else None,
            "worst": float(finite.min()) if finite.size else None,
            "failed": g.failed, "nonfinite": len(nonfinite_members(g.trained)), "replaced": len(g.replaced),
            "wall_s": round(wall, 4), "train_s": round(g.outcome.train_seconds, 4), "framework_s": round(framework, 4),
            "framework_share": round(framework / wall, 5) if wall > 0 else 0.0}


def read_appended(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """The records of a JSON-lines file the run appends to (:func:`.runread.read_jsonl`), and whether its
    last line was torn: a crash while appending (appends are buffered) leaves a last line cut anywhere,
    which is dropped. A damaged line before the last is not what a crash leaves:
    :class:`~.checkpoint.CheckpointError` names it.

    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "lineage.jsonl"; f.write_bytes(b'{"gen": 1}\\n{"gen": 2, "be')
    25
    >>> read_appended(f)
    ([{'gen': 1}], True)
    """
    try:
        rows = read_jsonl(path, required=("gen",))
    except RunReadError as exc:
        raise CheckpointError(f"{exc}: restore the file, or start the run over with --overwrite") from None
    data = path.read_bytes()
    return rows, bool(data.strip()) and not data.endswith(b"\n")


def clear(path: str | Path, keep: Iterable[str] = ()) -> None:
    """Delete everything in a run folder but the entries named in ``keep`` (the lock its run holds).

    >>> import tempfile
    >>> run = Path(tempfile.mkdtemp()); (run / "log.csv").write_text("1"); (run / "run.lock").write_text("")
    1
    0
    >>> clear(run, keep=["run.lock"]); [p.name for p in run.iterdir()]
    ['run.lock']
    """
    for entry in Path(path).iterdir() if Path(path).is_dir() else []:
        if entry.name in keep:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


class RunFolder:
    """Writes one run's files; resumable (rows past the checkpoint are dropped on resume)."""

    def __init__(self, path: str | Path, space: SearchSpace, tensorboard: bool = True,
                 objectives: Objectives | None = None, reference: Sequence[float] | None = None,
                 extra_fields: Sequence[str] = ()):
        self.path = Path(path)
        self.space = space
        self.objectives = objectives if objectives is not None and not objectives.single else None
        self.reference = reference
        # log.csv's columns (log.jsonl keeps every key of a row)
        self.fields = LOG_FIELDS + FRONT_FIELDS * (self.objectives is not None) + list(extra_fields)
        self.path.mkdir(parents=True, exist_ok=True)
        self._tb = self._hparams = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.path / "tb"))
                self._hparams = HParamsWriter(self.path / "tb", space, self.objectives)
            except ImportError:  # tensorboard is optional
                self._tb = None

    def write_config(self, cfg: dict[str, Any]) -> None:
        (self.path / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))

    def truncate(self, generation: int, files: Iterable[str] = APPENDED) -> list[str]:
        """Drop rows of generations after ``generation`` (written after the checkpoint we resume from) and a
        last line a crash tore while it was appended; returns the files that had one (:func:`read_appended`)."""
        torn = []
        for name in files:
            f = self.path / name
            if f.exists():
                rows, dropped = read_appended(f)
                torn += [name] * dropped
                f.write_text("".join(json.dumps(r) + "\n" for r in rows if r["gen"] <= generation))
        rows = self.read_log()
        with open(self.path / "log.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, self.fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        return torn

    def read_log(self) -> list[dict[str, Any]]:
        f = self.path / "log.jsonl"
        return [json.loads(line) for line in f.read_text().splitlines() if line] if f.exists() else []

    def _append(self, name: str, records: Iterable[dict[str, Any]]) -> None:
        with open(self.path / name, "a") as f:
            for r in records:
                f.write(json.dumps(r) + "\n")

    def append_row(self, row: dict[str, Any]) -> None:
        """Append one log row (``log.jsonl`` and ``log.csv``); a search without generations (BOHB) writes
        its rows with this alone."""
        self._append("log.jsonl", [row])
        new_csv = not (self.path / "log.csv").exists()
        with open(self.path / "log.csv", "a", newline="") as f:
            writer = csv.DictWriter(f, self.fields, extrasaction="ignore")
            if new_csv:
                writer.writeheader()
            writer.writerow(row)

    def record(self, g: Generation, row: dict[str, Any]) -> None:
        """Append a generation; with several objectives, first adds the front's columns to ``row``."""
        if self.objectives is not None:
            front = front_record(g, self.objectives, self.reference, self.space)
            row.update(hypervolume=front["hypervolume"], front_size=len(front["members"]))
            self._append("front.jsonl", [front])
        self.append_row(row)
        self._append("population.jsonl", [member_record(ind, self.space, g.generation) for ind in g.trained])
        names = self.space.names
        self._append("lineage.jsonl", [{
            "gen": g.generation, "child": c.id, "replaced_slot": j, "parents": list(c.parents),
            "taken": [names[i] for i in c.taken], "origin": list(c.origin), "genome": list(c),
            "changes": {names[i]: [self.space[i].value(a), self.space[i].value(b)] for i, a, b in c.changed}}
            for j, c in g.replaced])
        if self._tb is not None:
            for key in ("best", "median", "worst", "framework_share"):
                if row[key] is not None:
                    self._tb.add_scalar(f"fitness/{key}" if key != "framework_share" else "time/framework_share",
                                        row[key], g.epochs)
            for key in FRONT_FIELDS if self.objectives is not None else ():
                self._tb.add_scalar(f"pareto/{key}", row[key], g.epochs)
            best = max(g.trained, key=lambda ind: ind.score)
            for i in self.space.hyperparameters:  # the best member's, and the population's median option
                v = self.space[i]
                if v.numeric:
                    self._tb.add_scalar(f"hyperparameters/{v.name}/best", v.value(best[i]), g.epochs)
                    self._tb.add_scalar(f"hyperparameters/{v.name}/median",
                                        float(np.median([v.value(ind[i]) for ind in g.trained])), g.epochs)
            self._tb.flush()
            self._hparams.record(g.trained)  # each member's genome and fitness: the HPARAMS tab

    def export_best(self, task: Task, best: Individual, cfg: dict[str, Any], folder: Path | None = None,
                    final_evaluation: bool | None = None, title: str | None = None) -> Path:
        """``best/`` (or ``folder``): genome, weights (model state dict) and how to load them
        (:mod:`pbt_evo.export`); ``final_evaluation`` defaults to the config's."""
        member = best.handle.materialise(task, best)
        info: dict[str, Any] = {"id": best.id, "genome": list(best), "arch": self.space.decode(list(best)),
                                "fitness": _finite(best.fitness.values[0]), "epochs": best.epochs,
                                "task": _task_record(cfg), "parents": list(best.parents)}
        if self.objectives is not None:
            info["objectives"] = dict(zip(self.objectives.names, best.fitness.values))
        test = member.test_score()  # held-out data: reported by `compare --report test`, never a fitness
        info["test_score"] = None if test is None else float(test)
        if cfg["output"]["final_evaluation"] if final_evaluation is None else final_evaluation:
            try:
                final = member.final_scores()
                info["final_scores"] = {k: float(v) for k, v in final.items()} if final is not None else None
            except Exception as exc:  # the trained network is saved either way; say why scoring failed
                info["final_scores_error"] = str(exc)
                print(f"warning: final evaluation of the best network failed: {exc}", file=sys.stderr)
        return save_best(folder or self.path / "best", member.model, info, title or cfg["name"])

    def export_front(self, task: Task, front: Sequence[Individual], cfg: dict[str, Any]) -> Path:
        """``best/front/<k>/`` for each member of the final front (highest fitness first), and
        ``best/front.md``, the table of them (:mod:`pbt_evo.cli.front`); returns the table's path."""
        root = self.path / "best" / "front"
        shutil.rmtree(root, ignore_errors=True)  # a resumed run writes its front again
        infos = []
        for k, ind in enumerate(front):
            folder = self.export_best(task, ind, cfg, root / member_folder(k), final_evaluation=False,
                                      title=f"{cfg['name']}, Pareto front member {k}")
            infos.append(json.loads((folder / "genome.json").read_text()))
        (self.path / "best" / "front.json").write_text(json.dumps(infos, indent=2))
        table = self.path / "best" / "front.md"
        table.write_text(f"# Pareto front of run `{cfg['name']}`\n\n{len(infos)} trained networks, none dominated by"
                         f" another of the run; the member in folder front/00 loads with"
                         f" `pbt_evo.load_best(\"{root / member_folder(0)}\")`, all with"
                         f" `pbt_evo.load_front(\"{self.path}\")`.\n\n"
                         + front_table(infos, self.objectives))
        return table

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
