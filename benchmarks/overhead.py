"""Framework overhead on the digits task: 8 individuals x 6 generations on 2 Ray workers.

Prints, per generation, wall time, the workers' training+evaluation time and the framework share:
everything but the task's own training and evaluation inside the workers (scheduling, Ray calls,
building members, loading/mixing/capturing states, selection, logging) as a fraction of the workers'
wall time. It also reports how well heterogeneous members were packed onto the workers.

    python benchmarks/overhead.py [--population 8] [--generations 6] [--workers 2]

Last line: framework_share=<fraction over all generations, after the workers have started>.
"""

from __future__ import annotations

import argparse
import os
import random
import time

import numpy as np


def best_packing(costs: list[float], workers: int) -> float:
    """Lower bound on a generation's makespan: max(longest member, total / workers)."""
    return max(max(costs), sum(costs) / workers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--population", type=int, default=8)
    parser.add_argument("--generations", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pipeline", type=int, default=2, help="calls in flight per worker (1: no pipelining)")
    parser.add_argument("--no-reuse", action="store_true", help="rebuild every member (no live members in workers)")
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    import pbt_evo
    from pbt_evo.variants import make_toolbox
    from tasks.digits import DigitsTask

    t0 = time.perf_counter()
    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
    t_init = time.perf_counter() - t0
    task = DigitsTask()
    rmap = pbt_evo.RayMap(pbt_evo.TaskSpec("tasks.digits:DigitsTask"), workers=args.workers, local_task=task,
                           pipeline=args.pipeline, reuse_members=False if args.no_reuse else None)
    ray.get([a.cost.remote([0] * len(task.space)) for a in rmap.actors])  # workers built their task
    t_workers = time.perf_counter() - t0 - t_init
    tb = make_toolbox("pbt_nas", task.space, args.population)
    tb.map = rmap
    random.seed(0)
    rows = []
    last = [time.perf_counter()]

    def hook(g: pbt_evo.Generation) -> None:
        now = time.perf_counter()
        wall = now - last[0]
        per_member = [ind.metrics["train_seconds"] for ind in g.trained]
        worker_fw = sum(ind.metrics.get("worker_framework_s", 0.0) for ind in g.trained)
        rows.append((g.generation, wall, g.train_seconds, worker_fw, best_packing(per_member, args.workers)))
        last[0] = now

    start = time.perf_counter()
    pbt_evo.ea_pbt(tb.population(), tb, e_total=args.generations, e_step=1, hook=hook)
    total = time.perf_counter() - start
    rmap.close()
    ray.shutdown()

    print(f"ray.init {t_init:.2f} s, workers ready {t_workers:.2f} s (not counted below)")
    print(f"{'gen':>3} {'wall s':>8} {'train s':>8} {'in-worker fw s':>15} {'share':>7} {'packing':>8}")
    for gen, wall, train, wfw, pack in rows:
        share = 1 - train / (wall * args.workers)
        print(f"{gen:3d} {wall:8.3f} {train:8.3f} {wfw:15.3f} {share:7.3f} {wall / pack:8.3f}")
    train = sum(r[2] for r in rows)
    share = 1 - train / (total * args.workers)
    packing = np.median([r[1] / r[4] for r in rows])
    print(f"total wall {total:.2f} s, training+evaluation in workers {train:.2f} s over {args.workers} workers")
    print(f"in-worker framework (build, load/mix, capture) {sum(r[3] for r in rows):.2f} s")
    print(f"generation wall / best packing (median) {packing:.3f}")
    print(f"framework_share={share:.4f}")


if __name__ == "__main__":
    main()
