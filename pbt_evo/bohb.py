"""BOHB (Falkner et al. 2018), the paper's Appendix B baseline, through Ray Tune: ``TuneBOHB`` (the
model-based sampler of ``hpbandster``) with ``HyperBandForBOHB`` (successive halving, eta = 3: two
thirds of the trials stop at each budget; a promoted trial continues from its checkpoint).

Budgets are epochs (one Tune iteration = one epoch of the task's :class:`~pbt_evo.task.Member`). The
search stops when the epochs trained by all trials together reach ``population * e_total``, the paper's
rule (the epochs of fully training N architectures, PBT-NAS's budget). A trial is one architecture: its
genome is a ConfigSpace configuration of categorical option indices, its initialisation is seeded by the
run's seed and the genome, each epoch's training by those and the epoch.

Ray Tune is imported here at module level: only the ``bohb`` algorithm imports this module. It needs the
``bohb`` extra (``pip install -e ".[bohb]"``: ``ray[tune]``, ``hpbandster``, ``ConfigSpace``).

>>> from pbt_evo.space import SearchSpace, Variable
>>> cs = config_space(SearchSpace([Variable("op", ("conv", "skip")), Variable("act", ("relu", "tanh", "id"))]))
>>> sorted(cs), genome_of(dict(op=1, act=2), ["op", "act"])
(['act', 'op'], [1, 2])
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ConfigSpace as CS
import numpy as np
import torch
from ray import tune
from ray.tune.schedulers import HyperBandForBOHB
from ray.tune.search.bohb import TuneBOHB

from . import statefile
from .handles import FreshState, StoredState, capture
from .rng import seed_everything
from .space import SearchSpace
from .task import Member, Task, TaskSpec

REDUCTION_FACTOR = 3  # BOHB's and Ray Tune's default eta: a third of the trials go on at each budget
STATE_FILE = "state.safetensors"


def config_space(space: SearchSpace, seed: int = 0) -> CS.ConfigurationSpace:
    """The search space as a ConfigSpace space: one categorical hyperparameter of option indices per
    variable (BOHB's kernel density model treats them as unordered, as PBT-NAS's mixing does)."""
    cs = CS.ConfigurationSpace(seed=seed)
    cs.add([CS.CategoricalHyperparameter(v.name, list(range(v.n_options))) for v in space])
    return cs


def genome_of(config: Mapping[str, Any], names: Sequence[str]) -> list[int]:
    """The genome of a configuration (ConfigSpace returns numpy integers: made plain ints)."""
    return [int(config[n]) for n in names]


def genome_seed(seed: int, genome: Sequence[int], epoch: int = -1) -> int:
    """A seed of the run's seed, the genome and (for training) the epoch: a trial's randomness does not
    depend on which worker runs it or when.

    >>> genome_seed(0, [1, 2]) == genome_seed(0, [1, 2]), genome_seed(0, [1, 2]) == genome_seed(0, [2, 1])
    (True, False)
    """
    return int(np.random.SeedSequence([seed, epoch + 1, *genome]).generate_state(1)[0] >> 1)


_TASKS: dict[str, Task] = {}  # one task per worker process, built once, reused by its trials


def _task(spec: Mapping[str, Any]) -> Task:
    key = repr(sorted(spec["args"].items())) + spec["target"]
    if key not in _TASKS:
        _TASKS[key] = TaskSpec(spec["target"], spec["args"]).build()
    return _TASKS[key]


class MemberTrainable(tune.Trainable):
    """One architecture as a Tune trial: ``step`` trains one epoch and evaluates (``fitness``);
    checkpoints are the member's state as a pbt_evo state file (a paused trial resumes from it)."""

    def setup(self, config: dict[str, Any]) -> None:
        self._start(config)

    def _start(self, config: dict[str, Any]) -> None:
        torch.set_num_threads(max(1, int(config["_threads"])))
        self.task = _task(config["_task"])
        self.names = [v.name for v in self.task.space]
        self.genome = genome_of(config, self.names)
        self.run_seed = int(config["_seed"])
        self.member: Member = FreshState(genome_seed(self.run_seed, self.genome)).materialise(self.task, self.genome)

    def reset_config(self, new_config: dict[str, Any]) -> bool:
        self._start(new_config)  # a reused worker keeps its task, builds the new trial's member
        return True

    def step(self) -> dict[str, Any]:
        epoch = self.iteration  # epochs trained before this one
        seed_everything(genome_seed(self.run_seed, self.genome, epoch))
        t0 = time.perf_counter()
        metrics = dict(self.member.train(1) or {})
        fitness = float(self.member.evaluate())
        return {"fitness": fitness if math.isfinite(fitness) else -math.inf, "train_s": time.perf_counter() - t0,
                "genome": list(self.genome), **{k: v for k, v in metrics.items() if isinstance(v, (int, float))}}

    def save_checkpoint(self, checkpoint_dir: str) -> None:
        Path(checkpoint_dir, STATE_FILE).write_bytes(statefile.to_bytes(capture(self.member)))

    def load_checkpoint(self, checkpoint: Any) -> None:
        directory = checkpoint if isinstance(checkpoint, str) else checkpoint.path
        self.member = StoredState(os.path.join(directory, STATE_FILE)).materialise(self.task, self.genome)


class EpochBudget(tune.Stopper):
    """Stops the whole search when the trials' epochs together reach ``budget`` (``population * e_total``);
    records every result in arrival order (``results``), the search's log.

    >>> stop = EpochBudget(2)
    >>> stop("a", {"fitness": 0.5}), stop.stop_all(), stop("b", {"fitness": 0.7}), stop.stop_all()
    (False, False, False, True)
    """

    def __init__(self, budget: int):
        self.budget = budget
        self.results: list[dict[str, Any]] = []

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        if len(self.results) < self.budget:  # results of trials still in flight at the end are not counted
            self.results.append({"trial": trial_id, "time": time.time(), **{
                k: result.get(k) for k in ("training_iteration", "fitness", "train_s", "genome")}})
        return False

    def stop_all(self) -> bool:
        return len(self.results) >= self.budget


@dataclass
class Trial:
    """One architecture BOHB trained: its genome, its fitness after each epoch and its last checkpoint."""

    trial: str
    genome: list[int]
    fitness: list[float] = field(default_factory=list)
    state_path: str | None = None

    @property
    def epochs(self) -> int:
        return len(self.fitness)


@dataclass
class BOHBResult:
    """What a BOHB search did: every result in arrival order (one per epoch of a trial) and the trials."""

    results: list[dict[str, Any]]
    trials: dict[str, Trial]
    budget: int

    def incumbent(self) -> Trial:
        """BOHB's answer: the trial with the best last fitness among those trained the most epochs
        (hpbandster's incumbent is the best configuration on the largest budget), with its checkpoint."""
        done = [t for t in self.trials.values() if t.state_path is not None and t.fitness]
        if not done:
            raise RuntimeError("BOHB finished no trial with a checkpoint: raise algorithm.e_total or population")
        most = max(t.epochs for t in done)
        return max((t for t in done if t.epochs == most), key=lambda t: t.fitness[-1])


def run_bohb(task_spec: Mapping[str, Any], space: SearchSpace, population: int, e_total: int, seed: int = 0,
             workers: int = 1, cpus_per_worker: float = 1.0, gpus_per_worker: float = 0.0,
             storage: str | Path = "bohb") -> BOHBResult:
    """BOHB over ``space`` with the budget of ``population`` architectures trained ``e_total`` epochs each;
    at most ``workers`` trials at a time (BOHB's model sees fewer results the more run at once). Ray is
    started (2 CPUs here) if it is not running.

    >>> # res = run_bohb({"target": "tasks.digits:DigitsTask", "args": {}}, space, 8, 6, storage="runs/x/tune")
    """
    import ray

    stopper = EpochBudget(population * e_total)
    param_space = {"_task": {"target": task_spec["target"], "args": dict(task_spec["args"])},
                   "_seed": int(seed), "_threads": max(1, int(cpus_per_worker))}
    # the trial's own keys ride along in each config; BOHB's model only sees the space's variables
    searcher = TuneBOHB(space=config_space(space, seed), metric="fitness", mode="max", seed=seed)
    scheduler = HyperBandForBOHB(time_attr="training_iteration", metric="fitness", mode="max", max_t=e_total,
                                 reduction_factor=REDUCTION_FACTOR)
    trainable = tune.with_resources(MemberTrainable, {"cpu": cpus_per_worker, "gpu": gpus_per_worker})
    # Tune warns at every checkpoint of a short trial (each pause); its files stay small here
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    started = not ray.is_initialized()
    if started:
        ray.init(include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    try:
        tuner = tune.Tuner(
            trainable, param_space=param_space,
            tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=population * e_total,
                                        max_concurrent_trials=workers, reuse_actors=True,
                                        trial_dirname_creator=lambda trial: f"trial_{trial.trial_id}"),
            run_config=tune.RunConfig(storage_path=str(Path(storage).resolve()), name="bohb", stop=stopper,
                                      verbose=0, checkpoint_config=tune.CheckpointConfig(
                                          num_to_keep=1, checkpoint_at_end=True)))
        grid = tuner.fit()
    finally:
        if started:
            ray.shutdown()
    trials: dict[str, Trial] = {}
    for r in stopper.results:
        trial = trials.setdefault(r["trial"], Trial(r["trial"], list(r["genome"])))
        trial.fitness.append(float(r["fitness"]))
    for result in grid:
        tid = (result.metrics or {}).get("trial_id")
        if tid in trials and result.checkpoint is not None:
            path = os.path.join(result.checkpoint.path, STATE_FILE)
            # the checkpoint is the trial's last epoch; an epoch past the budget is not in the log: drop it
            if (result.metrics.get("training_iteration") == trials[tid].epochs and os.path.isfile(path)):
                trials[tid].state_path = path
    return BOHBResult(stopper.results, trials, stopper.budget)
