"""Run a search from a config: ``python -m pbt_evo.run spaces/digits.yaml``.

Creates ``runs/<name>/`` (see :mod:`pbt_evo.cli.runfolder`), shows progress, checkpoints every generation and
exports the best network. Running the same command again, or ``python -m pbt_evo.run runs/<name>
--resume``, continues from the last complete generation.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
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
from ..variants import VariantError, check_space, make_toolbox, variant
from . import checkpoint, config, runfolder, signals
from .checkpoint import CheckpointError, WriteError
from .config import ConfigError, TaskError, build_task
from .oneshot import run_oneshot
from .plot import plot_run
from .runfolder import RunFolder, generation_row
from .runlock import LOCK, RunFolderBusy, RunLock

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

    # -- progress --------------------------------------------------------------------------------
    def _progress(self, i: int, res: Any) -> None:
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

                return run_bohb_search(self.cfg, self.run_dir, self._say)
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
                checkpoint.set_aside(found.damaged)
                data = found.data
                random.setstate(data["random"])
                np.random.set_state(data["numpy"])
                population, logbook = data["population"], data["logbook"]
                toolbox.memory.load(data.get("memory", {}))  # a checkpoint of a variant without memory has none
                hof.update(data["halloffame"])
                start = LoopState(data["generation"], data["epochs"], data["next_id"])
                with checkpoint.writing(self.run_dir):
                    folder.truncate(data["generation"])
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
                folder.record(g, row)
                if g.done or g.generation % every == 0:
                    checkpoint.save(self.run_dir, g.generation, g.population, list(hof), keep=keep,
                                    payload={"epochs": g.epochs, "next_id": g.next_id, "logbook": g.logbook,
                                             "memory": memory.state()})
            self._gen = g.generation
            front = f" | front {row['front_size']}, hypervolume {_fmt(row['hypervolume'])}" if "front_size" in row else ""
            self._say(f"gen {g.generation:3d} | epochs {g.epochs}/{alg['e_total']} | best {_fmt(row['best'])}"
                      f" median {_fmt(row['median'])}{front} | failed {g.failed} | {wall:.1f}s,"
                      f" framework {100 * row['framework_share']:.1f}%")
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


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m pbt_evo.run", description=__doc__.splitlines()[0])
    p.add_argument("config", nargs="?", help="a config file (spaces/*.yaml) or a run folder to resume")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set algorithm.e_total=10 (repeatable)")
    p.add_argument("--seed", type=int, help="shorthand for --set seed=N")
    p.add_argument("--out", help="shorthand for --set output.dir=DIR")
    p.add_argument("--name", help="shorthand for --set name=NAME")
    p.add_argument("--resume", action="store_true", help="continue the run folder's last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="delete an existing run folder of the same name first")
    p.add_argument("--quiet", action="store_true", help="no progress output; logs only")
    p.add_argument("--keys", action="store_true", help="list every config key with its default and exit")
    return p.parse_args(argv)


def resolve_run(args: argparse.Namespace) -> tuple[dict[str, Any], Path, bool]:
    """The config, the run folder and whether to resume, from the command line."""
    if args.config is None:
        raise ConfigError("give a config file (e.g. spaces/digits.yaml) or a run folder to resume")
    path = Path(args.config)
    overrides = list(args.set)
    overrides += [f"seed={args.seed}"] * (args.seed is not None) + [f"output.dir={args.out}"] * (args.out is not None)
    overrides += [f"name={args.name}"] * (args.name is not None)
    if path.is_dir():
        if not (path / "config.yaml").is_file():
            raise ConfigError(f"{path} is a folder without config.yaml: not a pbt_evo run folder")
        if overrides:
            raise ConfigError(f"{path}: a run folder resumes with its own config; --set/--seed/--out/--name are not allowed")
        cfg = config.load(path / "config.yaml")
        return cfg, path, True
    cfg = config.load(path, overrides)
    run_dir = Path(cfg["output"]["dir"]) / cfg["name"]
    if args.overwrite:
        return cfg, run_dir, False  # emptied by Search.run once it holds the folder's lock
    if (run_dir / "config.yaml").is_file():
        saved = config.load(run_dir / "config.yaml")  # with the defaults of keys added since it was written
        if saved != cfg:
            changed = config.diff(saved, cfg)
            raise ConfigError(f"{run_dir} holds a run with a different config (differs in: {', '.join(changed)});"
                              f" resume it with `python -m pbt_evo.run {run_dir} --resume`, or start a new one"
                              " with --name NEW or --overwrite")
        return cfg, run_dir, True
    return cfg, run_dir, args.resume


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.keys:
        print(config.describe())
        return 0
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    with signals.handled():
        try:
            cfg, run_dir, resume = resolve_run(args)
            return Search(cfg, run_dir, quiet=args.quiet, source=str(args.config)).run(resume, overwrite=args.overwrite)
        except (ConfigError, TaskError, ResourceError, RunFolderBusy, CheckpointError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except WriteError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return signals.report("the last complete generation is checkpointed: run the same command again to"
                                  " continue")


if __name__ == "__main__":
    sys.exit(main())
