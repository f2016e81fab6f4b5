"""How fast the dashboard answers on a large run: 512 members over 200 generations (synthetic).

    python benchmarks/dashboard.py [--population 512] [--generations 200] [--repeat 3] [--keep DIR]

Makes a run folder of that size with the run's own writer (``pbt_evo.cli.runfolder.RunFolder.record``:
the same ``log.jsonl``, ``population.jsonl`` and ``lineage.jsonl`` a run writes), its generations a
simulated PBT-NAS (truncation selection, children mixing two parents' layers, hyperparameters explored,
a few failed members), no training. Then it starts ``python -m pbt_evo.dashboard`` on it (a real server
process on 127.0.0.1) and times, over HTTP as the browser calls them:

- ``run_page_cold_s``: the run page's data callbacks on the server's first visit (started with ``--warm 0``:
  every file parsed then; the head's callback, then the figures' and the table's at once, as a browser
  asks); ``run_page_cold_server_cpu_s``: the server's CPU seconds for it (all threads): on a shared machine,
  what the same work takes on an idle core;
- ``run_poll_unchanged_s``: the live view's poll when nothing changed (a ``stat`` per file);
- ``run_page_warm_s``: the page opened again (parsed files cached, figures recomputed);
- ``run_page_append_s``: the poll and the page's update after one more generation was appended (the
  appended bytes read only), and ``run_page_append_server_cpu_s``;
- ``tree_click_s``: a click on a family-tree node; ``run_list_s``: the list of runs;
- ``folder_mb``: the run folder's logs; ``load_average``: the machine's, before and after.

Each figure is the median over ``--repeat`` fresh server processes of the wall time from the first
request to the last response. Last line: ``run_page_cold_s=<value>`` (the target: under 2 s).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OPS = ("identity", "conv3x3", "conv5x5", "sepconv3x3", "resblock3x3")


def space():
    """8 cells that own layers, 2 activations, 2 optimizer hyperparameters (as a PBT-NAS co-search)."""
    from pbt_evo.space import SearchSpace, Variable, log_grid

    return SearchSpace([Variable(f"op{i}", OPS, owns=(f"cells.{i}.op",)) for i in range(8)]
                       + [Variable(f"act{i}", ("relu", "tanh", "swish"), ) for i in range(2)]
                       + [Variable("adam.lr", log_grid(1e-4, 1e-2, 5), hyper=True),
                          Variable("adam.weight_decay", (0.0, 1e-5, 1e-4), hyper=True)])


def config(name: str, population: int, generations: int, out: Path) -> dict:
    from pbt_evo.cli import config as cfgmod

    return cfgmod.resolve({
        "name": name, "seed": 0, "task": {"target": "tasks.digits:DigitsTask", "args": {"channels": 8}},
        "algorithm": {"name": "pbt_nas", "population": population, "e_total": 2 * generations, "e_step": 2},
        "parallel": {"backend": "serial"}, "output": {"dir": str(out), "tensorboard": False}}, "dashboard.py")


class Synthetic:
    """A simulated PBT-NAS population written generation by generation through ``RunFolder``."""

    def __init__(self, run: Path, population: int, seed: int = 0, fail_every: int = 37):
        from pbt_evo.cli.runfolder import RunFolder
        from pbt_evo.individual import Individual

        self.rng = random.Random(seed)
        self.space = space()
        self.folder = RunFolder(run, self.space, tensorboard=False)
        self.n, self.fail_every, self.gen, self.epochs = population, fail_every, 0, 0
        sizes = [v.n_options for v in self.space.variables]
        self.pop = [Individual([self.rng.randrange(k) for k in sizes], id=i) for i in range(population)]
        self.next_id = population
        self.quality = {i: self.rng.random() for i in range(population)}

    def _child(self, base, donor):
        from pbt_evo.individual import Individual

        genome, origin, taken = list(base), list(base.origin), []
        for i in range(len(genome)):
            if self.rng.random() < 0.25:
                genome[i], origin[i] = donor[i], donor.origin[i]
                taken.append(i)
        for i in self.space.hyperparameters:  # explore: a neighbouring option
            genome[i] = min(max(genome[i] + self.rng.choice((-1, 1)), 0), self.space[i].n_options - 1)
        if self.rng.random() < 0.03:  # a mutated layer: re-initialised, "new"
            i = self.rng.randrange(8)
            genome[i], origin[i] = self.rng.randrange(len(OPS)), self.next_id
        child = Individual(genome, id=self.next_id, parents=(base.id, donor.id), origin=origin, epochs=base.epochs)
        child.taken, child.base_genome = tuple(taken), tuple(base)  # the lineage's changes: the difference
        self.quality[child.id] = 0.5 * (self.quality[base.id] + self.quality[donor.id]) + self.rng.gauss(0, 0.05)
        self.next_id += 1
        return child

    def step(self) -> None:
        """Train (simulated), record, replace the worst quarter by children of the best quarter."""
        from deap import tools

        from pbt_evo.algorithms import Generation
        from pbt_evo.cli.runfolder import generation_row
        from pbt_evo.parallel.generation import Outcome

        self.gen += 1
        self.epochs += 2
        failed = 0
        for k, ind in enumerate(self.pop):
            ind.epochs = self.epochs
            if self.fail_every and (self.gen * self.n + k) % self.fail_every == 0:
                ind.fitness.values, failed = (-math.inf,), failed + 1  # what a failed member records
            else:
                ceiling = 0.7 + 0.3 / (1 + math.exp(-4 * (self.quality[ind.id] - 0.5)))  # what it can reach
                ind.fitness.values = (ceiling * (1 - math.exp(-self.epochs / 40)) + self.rng.gauss(0, 0.01),)
            ind.metrics = {"train_loss": self.rng.random(), "train_seconds": 0.01}
        trained = [self._copy(ind) for ind in self.pop]
        ranked = sorted(range(self.n), key=lambda j: self.pop[j].score)
        q = max(1, round(0.25 * self.n))
        best, worst = ranked[-q:], ranked[:q]
        replaced = []
        for j in worst:
            a, b = self.rng.sample(best, 2)
            child = self._child(self.pop[a], self.pop[b])
            self.pop[j] = child
            replaced.append((j, child))
        g = Generation(self.gen, self.epochs, trained, replaced, list(self.pop), tools.Logbook(), None, self.next_id,
                       wall_seconds=1.0, outcome=Outcome(failed=failed, train_seconds=1.5, busy_seconds=1.5))
        self.folder.record(g, generation_row(g, 2, 1.0))

    @staticmethod
    def _copy(ind):
        import copy

        return copy.deepcopy(ind)


def make_run(path: str | Path, population: int = 512, generations: int = 200, seed: int = 0) -> Synthetic:
    """A run folder of ``generations`` simulated generations (``config.yaml``, ``space.json``, the logs);
    returns the simulation, whose ``step()`` appends the next generation."""
    run = Path(path)
    sim = Synthetic(run, population, seed)
    sim.folder.write_config(config(run.name, population, generations, run.parent))
    (run / "space.json").write_text(json.dumps(sim.space.to_dict()))
    for _ in range(generations):
        sim.step()
    return sim


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--population", type=int, default=512)
    p.add_argument("--generations", type=int, default=200)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--keep", help="make the synthetic folder here (and leave it) instead of a temporary one")
    args = p.parse_args(argv)
    from pbt_evo.cli.dashboard.probe import Server, time_pages

    tmp = Path(tempfile.mkdtemp(prefix="dashbench_"))
    root = Path(args.keep) if args.keep else tmp / "runs"
    run = root / f"synthetic_{args.population}x{args.generations}"
    shutil.rmtree(run, ignore_errors=True)
    t0 = time.perf_counter()
    sim = make_run(run, args.population, args.generations)
    print(f"made {run} in {time.perf_counter() - t0:.1f} s")
    print(f"folder_mb={sum(f.stat().st_size for f in run.glob('*.jsonl')) / 2**20:.1f}")
    results: dict[str, list[float]] = {}
    load_before = os.getloadavg()[0]
    try:
        for _ in range(args.repeat):
            with Server([root], "--warm", "0") as server:  # the first visit parses everything
                for name, seconds in time_pages(server, f"{root.name}/{run.name}", sim.step).items():
                    results.setdefault(name, []).append(seconds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"load_average={load_before:.1f} -> {os.getloadavg()[0]:.1f}  ({os.cpu_count()} cores)")
    for name, values in results.items():
        print(f"{name}={statistics.median(values):.3f}  (each server: {', '.join(f'{v:.3f}' for v in values)})")
    print(f"run_page_cold_s={statistics.median(results['run_page_cold_s']):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
