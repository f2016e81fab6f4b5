"""Run a search from a config: ``python -m pbt_evo.run spaces/digits.yaml``.

Creates ``runs/<name>/`` (see :mod:`pbt_evo.cli.runfolder`), shows progress, checkpoints every generation and
exports the best network. Running the same command again, or ``python -m pbt_evo.run runs/<name>
--resume``, continues from the last complete generation.
"""

from __future__ import annotations

import json
import logging
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
from deap import tools

from ..algorithms import Generation, LoopState, ea_pbt
from ..history import Memory
from ..hyper import HyperparameterError, fixed_architecture
from ..parallel import RayMap, SerialMap
from ..parallel.resources import ResourceError
from ..pareto import TrainedFront
from ..task import Task
from ..trusted import UntrustedTask
from ..variants import VariantError, check_space, make_toolbox, variant
from . import checkpoint, config, runfolder, saved, signals
from .checkpoint import CheckpointError, WriteError
from .config import ConfigError, TaskError, build_task
from .failures import FailureLog, NothingTrained
from .oneshot import run_oneshot
from .plot import plot_run
from .runfolder import RunFolder, generation_row
from .runlock import LOCK, RunFolderError, RunLock

log = logging.getLogger("pbt_evo")


def _fitness_stats() -> tools.Statistics:
    stats = tools.Statistics(lambda ind: ind.score)
    stats.register("max", np.max)
    stats.register("median", np.median)
    return stats


class Search:
    """One search: config -> task, map, toolbox -> loop with per-generation reporting and checkpoints.

    >>> # Search(config.load("spaces/digits.yaml"), Path("runs/digits")).run(resume=False)
    """

    def __init__(self, cfg: dict[str, Any], run_dir: Path, quiet: bool = False, source: str = "config"):
        self.cfg, self.run_dir, self.quiet = cfg, run_dir, quiet
        self.source = source  # the config's file, for errors found once the task is built
        self._bar = None
        self.failures = FailureLog(run_dir)

    # -- progress --------------------------------------------------------------------------------
    def _progress(self, i: int, res: Any) -> None:
        self.failures.note(i, res)
        if self.quiet:
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=self.cfg["algorithm"]["population"], leave=False, unit="member",
                             desc=f"gen {self._gen + 1}", file=sys.stderr)
        self._bar.update(1)

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    # -- the run ---------------------------------------------------------------------------------
    def make_map(self, task: Task):
        par, max_early = self.cfg["parallel"], self.cfg["algorithm"]["max_early"]
        if par["backend"] == "serial":
            return SerialMap(task, num_threads=max(1, int(par["cpus_per_worker"])), max_retries=par["max_retries"],
                             max_early=max_early, progress=self._progress)
        spec = config.spec_of(self.cfg)
        return RayMap(spec, workers=par["workers"], cpus_per_worker=par["cpus_per_worker"],
                      gpus_per_worker=par["gpus_per_worker"], max_retries=par["max_retries"],
                      address=par["address"], local_task=task, wait_timeout=par["wait_timeout"],
                      key_prefix="parallel.", max_early=max_early, progress=self._progress)

    def run(self, resume: bool, overwrite: bool = False) -> int:
        """Run (or continue) the search in the run folder, which it locks for its life (:mod:`.runlock`);
        ``overwrite`` first empties the folder."""
        runner = variant(self.cfg["algorithm"]["name"]).runner
        with RunLock(self.run_dir):
            if overwrite or (resume and runner == "tune"):
                runfolder.clear(self.run_dir, keep=(LOCK,))  # a BOHB run does not resume: it starts again
            if runner == "tune":
                from .bohb import run_bohb_search  # not a toolbox of the loop: Ray Tune's BOHB

                return run_bohb_search(self.cfg, self.run_dir, self._say, self.source)
            with self.failures.kept():  # a member's failed attempts: their tracebacks in errors.log
                return self._search(resume, runner)

    def _search(self, resume: bool, runner: str) -> int:
        cfg, alg = self.cfg, self.cfg["algorithm"]
        task = build_task(cfg, self.source)
        check_hyperparameters(cfg, task, self.source)
        objectives = config.objectives_of(cfg, self.source)
        try:
            objectives.check(task)
        except ValueError as exc:
            raise ConfigError(f"{self.source}: 'algorithm.objectives': {exc}") from None
        pmap = self.make_map(task)  # before anything is written: an impossible request stops here
        signals.reinstall()  # ray.init replaced the SIGTERM and SIGINT handlers
        if runner == "oneshot":  # one-shot search (bnao, nao): a supernet, no population loop
            try:
                return run_oneshot(cfg, self.run_dir, task, pmap, resume, say=self._say)
            finally:
                pmap.close()
        folder = None
        try:
            folder = RunFolder(self.run_dir, task.space, tensorboard=cfg["output"]["tensorboard"],
                               objectives=objectives, reference=alg["reference_point"])
            try:
                toolbox = make_toolbox(alg["name"], task.space, alg["population"], alg["tau"], alg["p"],
                                       alg["shrink_perturb"], alg["init"], alg["optimizer_policy"], task=task,
                                       naswot_candidates=alg["naswot_candidates_per_member"], objectives=objectives,
                                       width_policy=alg["width_policy"],
                                       research_code_compat=alg["research_code_compat"],
                                       resample_probability=alg["resample_probability"],
                                       explore_probability=alg["explore_probability"], architecture=alg["architecture"],
                                       mixing=alg["mixing"], patience=alg["patience"])
            except VariantError as exc:
                raise ConfigError(f"{self.source}: 'algorithm.name': {exc}") from None
            toolbox.map = pmap
            hof = tools.HallOfFame(alg["hall_of_fame"]) if objectives.single else TrainedFront()
            found = checkpoint.load_latest(self.run_dir, put=self._put(pmap)) if resume else None
            if found is not None:
                for line in found.notices():
                    print(f"warning: {line}", file=sys.stderr, flush=True)
                saved.check_resume(cfg, found.data.get("config"), found.folder, self.run_dir)
                checkpoint.set_aside(found.damaged)
                data = found.data
                random.setstate(data["random"])
                np.random.set_state(data["numpy"])
                population, logbook = data["population"], data["logbook"]
                toolbox.memory.load(data.get("memory", {}))  # a checkpoint of a variant without memory has none
                hof.update(data["halloffame"])
                start = LoopState(data["generation"], data["epochs"], data["next_id"])
                with checkpoint.writing(self.run_dir):
                    torn = folder.truncate(data["generation"])
                if torn:
                    print(f"warning: {self.run_dir}: dropped the last line of {', '.join(torn)}, torn by a crash"
                          " while it was written (after the checkpoint: it is written again)", file=sys.stderr)
                self.failures.trained_any = True
                self._say(f"resuming {self.run_dir} after generation {start.generation}"
                          f" ({start.epochs}/{alg['e_total']} epochs)")
                if start.epochs < alg["e_total"]:
                    checkpoint.check_room(self.run_dir)
            else:
                with checkpoint.writing(self.run_dir):
                    folder.write_config(cfg)
                    (self.run_dir / "space.json").write_text(json.dumps(task.space.to_dict()))
                random.seed(cfg["seed"])
                np.random.seed(cfg["seed"])
                population, logbook, start = toolbox.population(), None, LoopState()
                self._say(f"run folder {self.run_dir}: {alg['name']}, N={alg['population']}, {task.space}, "
                          f"{alg['e_total']} x {task.epoch_unit}")
            self._gen = start.generation
            ea_pbt(population, toolbox, alg["e_total"], alg["e_step"], stats=_fitness_stats(), halloffame=hof,
                   logbook=logbook, hook=self._hook(folder, hof, toolbox.memory), start=start)
            self._close_bar()
            with checkpoint.writing(self.run_dir):
                if len(hof):
                    best = folder.export_best(task, hof[0], cfg)
                    self._say(f"best: member {hof[0].id}, fitness {_fmt(hof[0].fitness.values[0])} -> {best}")
                if len(hof) and not objectives.single:
                    self._say(f"Pareto front: {len(hof)} trained networks -> {folder.export_front(task, hof, cfg)}")
                for p in plot_run(self.run_dir):
                    self._say(f"plot: {p}")
            print(f"done: results in {self.run_dir}")
        finally:
            self._close_bar()
            if folder is not None:
                folder.close()
            pmap.close()
        return 0

    @staticmethod
    def _put(pmap: Any) -> Any:
        if isinstance(pmap, SerialMap):
            return lambda state: state  # states stay in this process
        import ray

        return ray.put  # resumed states go back to the object store, not through worker files

    def _hook(self, folder: RunFolder, hof: tools.HallOfFame, memory: Memory) -> Any:
        """What runs after every generation: log, checkpoint, report; stop if the disk cannot hold the next."""
        cfg, alg = self.cfg, self.cfg["algorithm"]
        workers = cfg["parallel"]["workers"] if cfg["parallel"]["backend"] == "ray" else 1
        every, keep = cfg["output"]["checkpoint_every"], cfg["output"]["keep_checkpoints"]

        def on_generation(g: Generation) -> None:
            self._close_bar()
            wall = g.wall_seconds  # hook to hook: checkpoints count, early starts run then
            row = generation_row(g, workers, wall)
            with checkpoint.writing(self.run_dir):
                trouble = self.failures.generation(g.generation, g.trained)  # none trained: stops here
                folder.record(g, row)
                if g.done or g.generation % every == 0:
                    checkpoint.save(self.run_dir, g.generation, g.population, list(hof), keep=keep,
                                    payload={"epochs": g.epochs, "next_id": g.next_id, "logbook": g.logbook,
                                             "config": cfg, "memory": memory.state()})
            self._gen = g.generation
            front = f" | front {row['front_size']}, hypervolume {_fmt(row['hypervolume'])}" if "front_size" in row else ""
            self._say(f"gen {g.generation:3d} | epochs {g.epochs}/{alg['e_total']} | best {_fmt(row['best'])}"
                      f" median {_fmt(row['median'])}{front} | failed {g.failed} | {wall:.1f}s,"
                      f" framework {100 * row['framework_share']:.1f}%")
            if trouble:  # also when quiet: it changes what the run finds
                print(f"warning: generation {g.generation}: {trouble}", file=sys.stderr, flush=True)
            if not g.done:
                checkpoint.check_room(self.run_dir)  # before the next generation is trained in vain

        return on_generation

    def _say(self, text: str) -> None:
        if not self.quiet:
            print(text, flush=True)


def check_hyperparameters(cfg: dict[str, Any], task: Task, where: str) -> None:
    """A variant that searches hyperparameters needs some in the space; classic PBT's architecture must exist;
    only the loop takes continuous hyperparameters (before anything starts)."""
    alg = cfg["algorithm"]
    v = variant(alg["name"])
    config.check_runner(cfg, task.space, where)
    try:
        check_space(v, task.space)
        fixed_architecture(task.space, alg["architecture"], task.default_architecture)
    except VariantError as exc:
        raise ConfigError(f"{where}: 'algorithm.name' {alg['name']} {exc}") from None
    except HyperparameterError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def start(cfg: dict[str, Any], run_dir: Path, resume: bool, overwrite: bool = False, quiet: bool = False,
          source: str = "config") -> int:
    """Run (or continue) a resolved config's search in ``run_dir``; every failure one line, returns the exit
    code (the command line: :mod:`pbt_evo.cli.launch`)."""
    try:
        return Search(cfg, run_dir, quiet=quiet, source=source).run(resume, overwrite=overwrite)
    except (ConfigError, TaskError, ResourceError, RunFolderError, CheckpointError, UntrustedTask) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (WriteError, NothingTrained) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return signals.report(f"{checkpoint.saved_text(run_dir)}: run the same command again to continue"
                              if checkpoint.last_complete(run_dir) else
                              "no generation is checkpointed yet: the same command starts the run over")
