"""PBT and PB2 on one hyperparameter, side by side: Ray Tune's ``PopulationBasedTraining`` and pbt_evo's
``pbt``; Ray Tune's ``PB2`` and pbt_evo's ``pb2``.

    python benchmarks/pbt_vs_tune.py [--seeds 0,1,2,3,4] [--algorithms pbt,pb2]

The problem (the same for both, built by the same code, ``tasks.mnist1d``): MNIST-1D's default
architecture (``tasks.mnist1d.DEFAULT_ARCHITECTURE``, 8 channels), Adam's learning rate on the grid
``log_grid(1e-4, 1e-1, 7)``; N=8 members, 6 epochs each, exploit and explore every 2 epochs (twice),
the worst quarter replaced by copies (weights and Adam state) of the best quarter, then explore: the
learning rate resampled with probability 0.25, else moved to a neighbouring option (Tune's rule for a
list; pbt_evo's ``mut_explore`` is the same rule). Fitness: validation accuracy (1,000 samples).

PB2 (``--algorithms pb2``): the same problem with Adam's learning rate continuous in [1e-4, 1e-1] (Ray
Tune's ``hyperparam_bounds``, which it normalises linearly, so pbt_evo's is ``uniform: [1e-4, 1e-1]``
too), the same N, budget, exploit interval and truncation; explore is each tool's GP-UCB.

Same seeds: for seed s both start from the same initial learning rates (pbt_evo's balanced initial
population under ``random.seed(s)``, each option at least once, or one per stratum of the continuous range;
Tune gets them as a ``grid_search`` over members), and both drivers' ``random`` (and numpy's) are seeded
with s. Network initialisations and batch orders differ (each
tool seeds its own way), so the fitness of a seed is not expected to match, only its distribution.

Both on 2 Ray workers (``RayMap(workers=2)``; Tune: ``reuse_actors``, ``synch=True``, 1 CPU a trial),
each run in a fresh subprocess; wall time excludes ``ray.init``; pbt_evo's includes starting its workers,
as Tune starts its actors inside ``Tuner.fit`` (the convention of ``benchmarks/w1.py``).

Prints, per algorithm and seed, each tool's best final fitness and wall time; then their mean +- std over
seeds, and ``tune_vs_pbt_evo=<median over seeds of Tune's wall / pbt_evo's wall>`` (PB2:
``tune_pb2_vs_pbt_evo=``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARK = "PBTRESULT "
N, E_TOTAL, E_STEP, TAU, RESAMPLE = 8, 6, 2, 0.25, 0.25
TASK_ARGS = {"channels": 8, "batch_size": 100, "lr": 0.003, "data_seed": 0}
GRID = {"log": [1e-4, 1e-1, 7]}
BOUNDS = {"uniform": [1e-4, 1e-1]}
LR = {"pbt": GRID, "pb2": BOUNDS}  # the learning rate each algorithm searches


def problem(algorithm: str = "pbt"):
    """The hyperparameter-only task (default architecture + Adam's lr) of ``algorithm``."""
    from pbt_evo.hyper import HyperparameterTask
    from tasks.mnist1d import MNIST1DTask

    return HyperparameterTask(MNIST1DTask(**TASK_ARGS), hyperparameters={"adam": {"lr": LR[algorithm]}})


def initial_lrs(seed: int, algorithm: str = "pbt") -> list[float]:
    """The initial learning rates of seed ``seed``: pbt_evo's balanced initial population."""
    import random

    import numpy as np

    from pbt_evo.variants import make_toolbox

    task = problem(algorithm)
    random.seed(seed)
    np.random.seed(seed)
    pop = make_toolbox(algorithm, task.space, N, task=task).population()
    lr = task.space.index("adam.lr")
    return [task.space[lr].value(ind[lr]) for ind in pop]


def run_pbt_evo(seed: int, algorithm: str = "pbt") -> dict:
    import random

    import numpy as np
    import ray

    import pbt_evo
    from pbt_evo.hyper import task_spec

    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    t_init = time.perf_counter() - t0
    task = problem(algorithm)
    t0 = time.perf_counter()
    rmap = pbt_evo.RayMap(task_spec("tasks.mnist1d:MNIST1DTask", TASK_ARGS, {"adam": {"lr": LR[algorithm]}}),
                          workers=2, local_task=task)
    toolbox = pbt_evo.make_toolbox(algorithm, task.space, N, tau=TAU, task=task, resample_probability=RESAMPLE)
    toolbox.map = rmap
    random.seed(seed)
    np.random.seed(seed)
    pop = toolbox.population()
    pop, log = pbt_evo.ea_pbt(pop, toolbox, e_total=E_TOTAL, e_step=E_STEP)
    wall = time.perf_counter() - t0
    if any(row["failed"] for row in log):  # a figure from failed members would compare nothing
        raise RuntimeError(f"pbt_evo {algorithm} seed {seed}: members failed: {[row['failed'] for row in log]}")
    rmap.close()
    ray.shutdown()
    lr = task.space.index("adam.lr")
    best = max(pop, key=lambda ind: ind.score)
    return {"wall": wall, "init": t_init, "best": best.fitness.values[0],
            "best_lr": task.space[lr].value(best[lr])}


def run_tune(seed: int, algorithm: str = "pbt") -> dict:
    import random

    import numpy as np
    import ray
    import torch
    from ray import tune
    from ray.tune.schedulers import PopulationBasedTraining
    from ray.tune.schedulers.pb2 import PB2

    from pbt_evo.space import log_grid

    grid = list(log_grid(*GRID["log"]))
    lrs = initial_lrs(seed, algorithm)

    class Member(tune.Trainable):
        """One member: the same network, data and training code as pbt_evo's (``tasks.mnist1d``)."""

        def setup(self, config: dict) -> None:
            torch.set_num_threads(1)
            self.task = problem(algorithm)
            self.reset_config(config)

        def reset_config(self, new_config: dict) -> bool:
            """A fresh member for ``new_config``: with ``reuse_actors`` Tune resets an actor for the next trial
            and restores a checkpoint only if that trial has one, so a trial's first step must not continue
            the network of the actor's previous trial (a restore then overwrites weights and moments)."""
            task = self.task
            torch.manual_seed(seed * 1000 + new_config["member"])
            genome = [0] * len(task.space)
            genome[:9] = task.inner.space.encode(task.inner.default_architecture)
            lr = task.space.index("adam.lr")
            genome[lr] = grid.index(new_config["lr"]) if algorithm == "pbt" else task.space[lr].clip(new_config["lr"])
            self.member = task.build(genome)
            self.config, self.epochs = new_config, 0
            return True

        def step(self) -> dict:
            self.member.train(E_STEP)
            self.epochs += E_STEP
            return {"fitness": self.member.evaluate(), "epochs": self.epochs}

        def save_checkpoint(self, checkpoint_dir: str) -> None:
            torch.save({"model": self.member.model.state_dict(),
                        "optim": self.member.optimizers["adam"].state_dict(), "epochs": self.epochs},
                       os.path.join(checkpoint_dir, "s.pt"))

        def load_checkpoint(self, checkpoint_dir: str) -> None:
            state = torch.load(os.path.join(checkpoint_dir, "s.pt"), weights_only=False)
            self.member.model.load_state_dict(state["model"])
            self.member.optimizers["adam"].load_state_dict(state["optim"])  # restores the donor's lr ...
            self.epochs = state["epochs"]
            for group in self.member.optimizers["adam"].param_groups:  # ... then the explored one is set
                group["lr"] = self.config["lr"]

    class Collect(tune.Callback):
        def __init__(self) -> None:
            self.fitness: dict[str, float] = {}
            self.lr: dict[str, float] = {}
            self.epochs: dict[str, int] = {}

        def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
            self.fitness[trial.trial_id] = float(result["fitness"])
            self.epochs[trial.trial_id] = int(result["epochs"])
            self.lr[trial.trial_id] = float(trial.config["lr"])

    collect = Collect()
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    t_init = time.perf_counter() - t0
    random.seed(seed)  # Tune's PBT explores with the driver's `random`
    np.random.seed(seed)  # ... and PB2's acquisition starts with numpy's
    if algorithm == "pbt":
        pbt = PopulationBasedTraining(time_attr="training_iteration", perturbation_interval=1, quantile_fraction=TAU,
                                      resample_probability=RESAMPLE, hyperparam_mutations={"lr": grid}, synch=True)
    else:
        pbt = PB2(time_attr="training_iteration", perturbation_interval=1, quantile_fraction=TAU,
                  hyperparam_bounds={"lr": list(BOUNDS["uniform"])}, synch=True)
    with tempfile.TemporaryDirectory() as storage:
        tuner = tune.Tuner(
            tune.with_resources(Member, {"cpu": 1}),
            param_space={"member": tune.grid_search(list(range(N))),
                         "lr": tune.sample_from(lambda spec: lrs[spec.config["member"]])},
            tune_config=tune.TuneConfig(scheduler=pbt, metric="fitness", mode="max", reuse_actors=True),
            run_config=tune.RunConfig(storage_path=storage, name="pbt", stop={"training_iteration": E_TOTAL // E_STEP},
                                      verbose=0, callbacks=[collect],
                                      checkpoint_config=tune.CheckpointConfig(num_to_keep=2)),
        )
        t0 = time.perf_counter()
        tuner.fit()
        wall = time.perf_counter() - t0
    ray.shutdown()
    if set(collect.epochs.values()) != {E_TOTAL}:  # every trial's network trained the budget, no more, no less
        raise RuntimeError(f"tune {algorithm} seed {seed}: trials' epochs {sorted(collect.epochs.values())}, not {E_TOTAL}")
    best = max(collect.fitness, key=collect.fitness.get)
    return {"wall": wall, "init": t_init, "best": collect.fitness[best], "best_lr": collect.lr[best],
            "initial_lrs": lrs}


def _env() -> dict:
    return {**os.environ, "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "disabled"),
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "RAY_DEDUP_LOGS": "0", "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1", "RAY_AIR_NEW_OUTPUT": "0"}


def in_subprocess(name: str, seed: int, algorithm: str = "pbt", attempts: int = 3) -> dict:
    """One tool on one seed in a fresh interpreter; retried when Ray's node did not start (its raylet has
    30 s, which a loaded machine can miss): a start-up failure, not the run's."""
    for _ in range(attempts):
        proc = subprocess.run([sys.executable, __file__, "--one", name, "--seeds", str(seed), "--algorithms",
                               algorithm], cwd=ROOT, env=_env(), capture_output=True, text=True, check=False)
        for line in proc.stdout.splitlines():
            if line.startswith(MARK):
                return json.loads(line[len(MARK):])
        if "timed out during startup" not in proc.stderr:
            break
        print(f"{name} seed {seed}: Ray's node did not start in time; again", file=sys.stderr, flush=True)
    raise RuntimeError(f"{name} seed {seed} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated seeds (default 0..4)")
    parser.add_argument("--algorithms", default="pbt,pb2", help="pbt, pb2 or both (default)")
    parser.add_argument("--one", choices=("pbt_evo", "tune"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    algorithms = [a for a in args.algorithms.split(",") if a]
    if args.one:
        runner = run_pbt_evo if args.one == "pbt_evo" else run_tune
        print(MARK + json.dumps(runner(seeds[0], algorithms[0])), flush=True)
        return
    for algorithm in algorithms:
        compare(algorithm, seeds)


def compare(algorithm: str, seeds: list[int]) -> None:
    """Both tools on every seed, then the table and the wall-time ratio."""
    rows = []
    for seed in seeds:
        row = {name: in_subprocess(name, seed, algorithm) for name in ("pbt_evo", "tune")}
        rows.append(row)
        pe, tu = row["pbt_evo"], row["tune"]
        print(f"{algorithm} seed {seed}: pbt_evo best {pe['best']:.3f} (lr {pe['best_lr']:.3g}) in {pe['wall']:.1f} s,"
              f" tune best {tu['best']:.3f} (lr {tu['best_lr']:.3g}) in {tu['wall']:.1f} s;"
              f" initial lrs {[f'{x:.3g}' for x in tu['initial_lrs']]}", flush=True)

    def mean_std(name: str, key: str) -> str:
        xs = [r[name][key] for r in rows]
        return f"{statistics.mean(xs):.4f} +- {statistics.stdev(xs) if len(xs) > 1 else 0.0:.4f}"

    space = "lr in log_grid(1e-4, 1e-1, 7)" if algorithm == "pbt" else "lr continuous in [1e-4, 1e-1]"
    print()
    print(f"{algorithm}: MNIST-1D, {space}, N={N}, {E_TOTAL} epochs, exploit every {E_STEP}; {len(seeds)} seeds,"
          f" 2 Ray workers, {os.cpu_count()} CPUs")
    print(f"{'':10s} {'best final fitness':>22s} {'wall s':>18s}")
    for name in ("pbt_evo", "tune"):
        print(f"{name:10s} {mean_std(name, 'best'):>22s} {mean_std(name, 'wall'):>18s}")
    ratio = statistics.median(r["tune"]["wall"] / r["pbt_evo"]["wall"] for r in rows)
    print(f"tune{'_pb2' if algorithm == 'pb2' else ''}_vs_pbt_evo={ratio:.3f}", flush=True)


if __name__ == "__main__":
    main()
