"""Workload W1 three ways in one command: the sequential floor, pbt_evo on 2 Ray workers, Ray Tune PBT.

    python benchmarks/w1.py [--repeat 1] [--skip-tune]

W1 (../shared/benchmarks/W1.md, implemented once in ``tasks/w1.py`` and used by all three): 8 MLP
regressors, 12 generations of one epoch (64 Adam steps of batch 128), the worst 2 replaced by copies
(weights and Adam state) of the best after every generation but the last.

- parallel floor: two independent processes at once, 4 members each, no exchange (W1.md's real
  parallel floor): what two trainers on this machine cost right now, without any orchestration.
- sequential: one process, ``torch.set_num_threads(1)``, the same data, seeds and steps, copies made
  with ``copy.deepcopy`` of the state dicts. The process imports torch and runs one Adam step before the
  clock starts, as pbt_evo's workers do while they start.
- pbt_evo: ``RayMap`` with 2 workers, ``cx_mix(p=0)`` (a child is its fitter parent's exact copy, its
  state assembled in the worker that trains it from the object store), W1's per-epoch permutation
  seeds honoured (``tasks.w1.train_w1``). Its final fitnesses are compared bit for bit with the floor's.
- tune: ``PopulationBasedTraining(synch=True, quantile_fraction=0.25, perturbation_interval=1)``,
  ``reuse_actors=True``, a class ``Trainable`` that checkpoints with ``torch.save`` into the directory
  Tune gives it (the usual way; Tune wraps it in a ``tune.Checkpoint``). Tune needs at least one
  hyperparameter to explore: ``lr`` from the one-value list [1e-3], so it never changes.

Each implementation runs in a fresh subprocess (no Ray state shared). Wall times exclude ``ray.init`` and
``ray.shutdown`` (reported separately). pbt_evo's wall excludes starting its workers (reported: the floor's
process is also started and warmed before its clock); Tune starts its actors inside ``Tuner.fit``, so
``tune_vs_pbt_evo`` divides Tune's wall by pbt_evo's wall *including* its worker start (conservative).
With ``--repeat R`` the three run R times, interleaved (every other round in reverse order), and the
ratios are medians of the per-round (paired) ratios (``benchmarks/paired.py``).

Last lines: ``pbt_evo_vs_floor=<pbt_evo wall / sequential wall>``, ``tune_vs_pbt_evo=<tune wall / pbt_evo wall>``.
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
from functools import partial
from pathlib import Path

from paired import interleave, paired_ratio, spread

ROOT = Path(__file__).resolve().parents[1]
MARK = "W1RESULT "


# -- the three implementations, each run in its own process ------------------------------------------
def run_sequential() -> dict:
    import copy

    import torch

    from tasks.w1 import GENERATIONS, LR, N_MEMBERS, evaluate, make_data, make_model, train_epoch

    torch.set_num_threads(1)
    data = make_data()
    warm = make_model()
    opt = torch.optim.Adam(warm.parameters(), lr=LR)
    warm(data["x"][:2]).sum().backward()
    opt.step()  # the first Adam step imports ~900 modules; pbt_evo's workers pay this before the clock too

    t0 = time.perf_counter()
    members = []
    for i in range(N_MEMBERS):
        torch.manual_seed(1000 + i)
        model = make_model()
        members.append((model, torch.optim.Adam(model.parameters(), lr=LR)))
    train_s = 0.0
    fitness: list[float] = []
    for gen in range(GENERATIONS):
        fitness = []
        for slot, (model, opt) in enumerate(members):
            t = time.perf_counter()
            train_epoch(model, opt, data, gen, slot)
            fitness.append(evaluate(model, data))
            train_s += time.perf_counter() - t
        if gen == GENERATIONS - 1:
            break
        # pbt_evo's semantics: stable sort by fitness; each of the worst 2 becomes a copy of the fitter of
        # two parents drawn from the best 2, i.e. of the best member
        ranked = sorted(range(N_MEMBERS), key=lambda s: -fitness[s])
        best = members[ranked[0]]
        for loser in ranked[-2:]:
            model, opt = members[loser]
            model.load_state_dict(copy.deepcopy(best[0].state_dict()))
            opt.load_state_dict(copy.deepcopy(best[1].state_dict()))
    wall = time.perf_counter() - t0
    return {"wall": wall, "train_s": train_s, "fitness": fitness}


def run_half(half: int) -> dict:
    """One of the two processes of the parallel floor: members ``4*half .. 4*half+3`` trained for all
    generations with no exchange at all (W1.md's "two independent training processes")."""
    import torch

    from tasks.w1 import GENERATIONS, LR, N_MEMBERS, evaluate, make_data, make_model, train_epoch

    torch.set_num_threads(1)
    data = make_data()
    warm = make_model()
    opt = torch.optim.Adam(warm.parameters(), lr=LR)
    warm(data["x"][:2]).sum().backward()
    opt.step()
    t0 = time.perf_counter()
    slots = range(half * N_MEMBERS // 2, (half + 1) * N_MEMBERS // 2)
    members = []
    for i in slots:
        torch.manual_seed(1000 + i)
        model = make_model()
        members.append((model, torch.optim.Adam(model.parameters(), lr=LR)))
    train_s = 0.0
    for gen in range(GENERATIONS):
        for slot, (model, opt) in zip(slots, members):
            t = time.perf_counter()
            train_epoch(model, opt, data, gen, slot)
            evaluate(model, data)
            train_s += time.perf_counter() - t
    return {"wall": time.perf_counter() - t0, "train_s": train_s}


def run_parallel_floor() -> dict:
    """Two independent processes at once, no communication: the machine's real parallel floor. Wall =
    the slower process's own wall (each starts its clock after the same warm-up)."""
    env = _env()
    procs = [subprocess.Popen([sys.executable, __file__, "--one", f"half{h}"], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for h in (0, 1)]
    outs = []
    for p in procs:
        out, err = p.communicate()
        line = [ln for ln in out.splitlines() if ln.startswith(MARK)]
        if not line:
            raise RuntimeError(f"parallel floor failed:\n{err[-3000:]}")
        outs.append(json.loads(line[0][len(MARK):]))
    return {"wall": max(o["wall"] for o in outs), "train_s": sum(o["train_s"] for o in outs)}


def run_pbt_evo() -> dict:
    import random

    import ray

    import pbt_evo
    from tasks.w1 import GENERATIONS, slot_hook, w1_population, w1_toolbox

    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    t_init = time.perf_counter() - t0
    t0 = time.perf_counter()
    rmap = pbt_evo.RayMap(pbt_evo.TaskSpec("tasks.w1:W1Task"), workers=2)
    ray.get([a.cost.remote([0]) for a in rmap.actors])  # both workers built their task and warmed up
    t_workers = time.perf_counter() - t0

    tb = w1_toolbox(rmap)
    random.seed(0)
    gens: list[tuple[float, float]] = []

    def hook(g: pbt_evo.Generation) -> None:
        slot_hook(g)
        gens.append((g.wall_seconds, g.outcome.train_seconds))

    t0 = time.perf_counter()
    pop, _ = pbt_evo.ea_pbt(w1_population(), tb, e_total=GENERATIONS, e_step=1, hook=hook)
    wall = time.perf_counter() - t0
    fitness = [ind.fitness.values[0] for ind in sorted(pop, key=lambda ind: ind.slot)]
    rmap.close()
    t0 = time.perf_counter()
    ray.shutdown()
    return {"wall": wall, "init": t_init, "workers": t_workers, "shutdown": time.perf_counter() - t0,
            "train_s": sum(t for _, t in gens), "fitness": fitness}


def run_tune() -> dict:
    import ray
    import torch
    from ray import tune
    from ray.tune.schedulers import PopulationBasedTraining

    from tasks.w1 import GENERATIONS, LR, N_MEMBERS, evaluate, make_data, make_model, train_epoch

    class W1Trainable(tune.Trainable):
        """One W1 member; the slot is the trial's index (Tune copies configs on exploit, not trial ids)."""

        def setup(self, config: dict) -> None:
            torch.set_num_threads(1)
            self.data = make_data()
            self.reset_config(config)

        def reset_config(self, new_config: dict) -> bool:
            """A fresh member (``reuse_actors``: a trial's first step must not continue the actor's previous
            trial's network; a trial with a checkpoint is restored after this)."""
            torch.manual_seed(1000 + self._slot())
            self.model = make_model()
            self.opt = torch.optim.Adam(self.model.parameters(), lr=new_config["lr"])
            return True

        def _slot(self) -> int:
            return int(self.trial_id.rsplit("_", 1)[-1])

        def step(self) -> dict:
            t = time.perf_counter()
            train_epoch(self.model, self.opt, self.data, self.iteration, self._slot())
            fitness = evaluate(self.model, self.data)
            return {"fitness": fitness, "train_s": time.perf_counter() - t}

        def save_checkpoint(self, checkpoint_dir: str) -> None:
            torch.save({"model": self.model.state_dict(), "optim": self.opt.state_dict()},
                       os.path.join(checkpoint_dir, "state.pt"))

        def load_checkpoint(self, checkpoint_dir: str) -> None:
            state = torch.load(os.path.join(checkpoint_dir, "state.pt"), weights_only=False)
            self.model.load_state_dict(state["model"])
            self.opt.load_state_dict(state["optim"])

    class Collect(tune.Callback):
        """Sums the members' own training time and keeps each trial's last fitness (in the driver)."""

        def __init__(self) -> None:
            self.train_s, self.fitness = 0.0, {}

        def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
            self.train_s += float(result.get("train_s", 0.0))
            self.fitness[trial.trial_id] = float(result["fitness"])

    collect = Collect()
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    t_init = time.perf_counter() - t0
    pbt = PopulationBasedTraining(time_attr="training_iteration", perturbation_interval=1,
                                  quantile_fraction=0.25, hyperparam_mutations={"lr": [LR]}, synch=True)
    with tempfile.TemporaryDirectory() as storage:
        tuner = tune.Tuner(
            tune.with_resources(W1Trainable, {"cpu": 1}),
            param_space={"lr": LR, "member": tune.grid_search(list(range(N_MEMBERS)))},
            tune_config=tune.TuneConfig(scheduler=pbt, metric="fitness", mode="max", reuse_actors=True),
            run_config=tune.RunConfig(storage_path=storage, name="w1", stop={"training_iteration": GENERATIONS},
                                      verbose=0, callbacks=[collect],
                                      checkpoint_config=tune.CheckpointConfig(num_to_keep=2)),
        )
        t0 = time.perf_counter()
        tuner.fit()
        wall = time.perf_counter() - t0
    fitness = [collect.fitness[k] for k in sorted(collect.fitness)]
    train_s = collect.train_s
    t0 = time.perf_counter()
    ray.shutdown()
    return {"wall": wall, "init": t_init, "shutdown": time.perf_counter() - t0, "train_s": float(train_s),
            "fitness": fitness}


RUNNERS = {"sequential": run_sequential, "parallel_floor": run_parallel_floor, "pbt_evo": run_pbt_evo,
           "tune": run_tune, "half0": lambda: run_half(0), "half1": lambda: run_half(1)}


def _env() -> dict:
    return {**os.environ, "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "disabled"),
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "RAY_DEDUP_LOGS": "0", "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1", "RAY_AIR_NEW_OUTPUT": "0"}


def in_subprocess(name: str) -> dict:
    """Run one implementation in a fresh interpreter; its result comes back as one JSON line."""
    proc = subprocess.run([sys.executable, __file__, "--one", name], cwd=ROOT, env=_env(), capture_output=True,
                          text=True)
    for line in proc.stdout.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    raise RuntimeError(f"{name} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")


def wall(result: dict) -> float:
    return result["wall"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="rounds of the three runs (ratios: medians)")
    parser.add_argument("--skip-tune", action="store_true", help="floor and pbt_evo only (no ray[tune] needed)")
    parser.add_argument("--one", choices=sorted(RUNNERS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(MARK + json.dumps(RUNNERS[args.one]()), flush=True)
        return

    names = ["sequential", "parallel_floor", "pbt_evo"] + ([] if args.skip_tune else ["tune"])

    def report(r: int, row: dict) -> None:
        seq, pe = row["sequential"], row["pbt_evo"]
        same = seq["fitness"] == pe["fitness"]
        line = (f"round {r + 1}: sequential {seq['wall']:.2f} s, pbt_evo {pe['wall']:.2f} s"
                f" (+{pe['workers']:.2f} s workers), ratio {pe['wall'] / seq['wall']:.3f},"
                f" pbt_evo final fitness == sequential: {same}, parallel floor {row['parallel_floor']['wall']:.2f} s")
        if "tune" in row:
            line += f", tune {row['tune']['wall']:.2f} s"
        print(line, flush=True)
        if not same:
            print(f"  sequential {seq['fitness']}\n  pbt_evo    {pe['fitness']}")

    rounds = interleave({name: partial(in_subprocess, name) for name in names}, args.repeat, report)

    def med(name: str, key: str) -> float:
        return statistics.median(r[name][key] for r in rounds)

    print()
    print(f"W1 on {os.cpu_count()} CPUs, {args.repeat} round(s); medians (min-max)")
    print(f"{'implementation':<34} {'wall s':>16} {'/ sequential':>13} {'in-run ratio*':>14} {'ray.init s':>11}"
          f" {'shutdown s':>11}")
    for name in names:
        walls = [r[name]["wall"] for r in rounds]
        ratio = paired_ratio(rounds, name, "sequential", wall)
        inrun = statistics.median(r[name]["wall"] / (r[name]["train_s"] / (1 if name == "sequential" else 2))
                                  for r in rounds)
        init = f"{med(name, 'init'):.2f}" if "init" in rounds[0][name] else "-"
        down = f"{med(name, 'shutdown'):.2f}" if "shutdown" in rounds[0][name] else "-"
        label = {"sequential": "sequential, one process, one thread", "pbt_evo": "pbt_evo, RayMap 2 workers",
                 "parallel_floor": "2 independent processes, no exchange",
                 "tune": "Ray Tune PBT synch, reuse_actors"}[name]
        print(f"{label:<34} {statistics.median(walls):6.2f} ({min(walls):.2f}-{max(walls):.2f})"
              f" {ratio:13.3f} {inrun:14.3f} {init:>11} {down:>11}")
    print(f"pbt_evo workers start (excluded from its wall) {med('pbt_evo', 'workers'):.2f} s")
    print("*wall / (training+evaluation time summed over members / workers)")
    pe_vs_par = paired_ratio(rounds, "pbt_evo", "parallel_floor", wall)
    print(f"pbt_evo / parallel floor (what orchestration costs on this machine now) {pe_vs_par:.3f}")
    print(f"paired ratios pbt_evo / sequential {spread(rounds, 'pbt_evo', 'sequential', wall)}")
    print(f"pbt_evo_vs_floor={paired_ratio(rounds, 'pbt_evo', 'sequential', wall):.3f}")
    if "tune" in names:
        tune_vs = statistics.median(r["tune"]["wall"] / (r["pbt_evo"]["wall"] + r["pbt_evo"]["workers"])
                                    for r in rounds)
        print(f"tune_vs_pbt_evo={tune_vs:.3f}")


if __name__ == "__main__":
    main()
