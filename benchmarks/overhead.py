"""Framework overhead on the digits task: 8 individuals x 6 generations on 2 Ray workers.

Prints, per generation, wall time, the workers' training+evaluation time and the framework share:
everything but the task's own training and evaluation inside the workers (scheduling, Ray calls,
building members, loading/mixing/capturing states, selection, logging) as a fraction of the workers'
wall time. It also reports how well heterogeneous members were packed onto the workers.

    python benchmarks/overhead.py [--population 8] [--generations 6] [--workers 2] [--pipeline 2] [--no-reuse] [--barrier]
                                  [--repeat 5]

Last lines: framework_ms_per_call=<(workers x wall - training+evaluation) / member calls, ms: the fixed
per-call cost, which the share hides behind long members> and framework_share=<fraction over all
generations, after the workers have started> (with ``--repeat N``: medians of N runs, each in a fresh
process).
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


def decompose(rows: list[tuple], gen_ends: list[float], timelines: list[list[tuple[float, float]]],
              workers: int) -> None:
    """Where the workers' wall time went, in worker-seconds, from the workers' own call timelines.

    - training + evaluation: the task's own work (``TrainResult.seconds``);
    - in-worker framework: building members, loading/mixing and capturing states (inside the call);
    - rest of the calls: the call wrapper (live-member bookkeeping) and the train function's own code;
    - between calls: a worker waiting for its next call (Ray's per-call work: argument
      deserialization, storing the returned state, the driver's round trip when the pipeline is empty);
    - at generation ends: idle gaps that span the end of a generation (waiting for the slowest member,
      then selection, mixing recipes, statistics, hooks), and the first dispatch. Early starts of sure
      survivors fill these gaps, except at the run's end: the last generation has no next one to start,
      so a worker that finishes its last member first idles until the other finishes (shown apart: paid
      once per run, whatever its length).
    """
    t0, t1 = gen_ends[0], gen_ends[-1]
    total = (t1 - t0) * workers
    train = sum(r[2] for r in rows)
    wfw = sum(r[3] for r in rows)
    in_calls = between = at_ends = tail = 0.0
    for tl in timelines:
        calls = sorted((a, b) for a, b in tl if t0 - 0.05 <= a and b <= t1 + 0.05)
        if not calls:
            at_ends += t1 - t0
            continue
        in_calls += sum(b - a for a, b in calls)
        tail += max(0.0, t1 - calls[-1][1])
        gaps = [(t0, calls[0][0])] + [(calls[k][1], calls[k + 1][0]) for k in range(len(calls) - 1)]
        for a, b in gaps + [(calls[-1][1], t1)]:
            if any(a <= t <= b for t in gen_ends):
                at_ends += max(0.0, b - a)
            else:
                between += max(0.0, b - a)
    parts = [("training + evaluation", train), ("in-worker framework (build, load/mix, capture)", wfw),
             ("rest of the calls", in_calls - train - wfw), ("between calls (Ray per-call work)", between),
             ("at generation ends (barrier, selection, hooks)", at_ends),
             ("  of which the run's end (after a worker's last call)", tail)]
    print(f"where the {workers} workers' time went (worker-seconds, share of {total:.2f}):")
    for name, value in parts:
        print(f"  {name:<50} {value:8.3f} {value / total:7.3f}")


def repeat(n: int) -> None:
    """This script ``n`` times with the same options, in fresh processes; the median share last."""
    import statistics
    import subprocess
    import sys

    argv = [a for a in sys.argv[1:] if not a.startswith("--repeat=")]  # the same options, without --repeat
    if "--repeat" in argv:
        del argv[argv.index("--repeat"):argv.index("--repeat") + 2]
    shares, per_call = [], []
    for k in range(n):
        out = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True, check=True).stdout
        parts = {line.split()[0]: float(line.split()[-1]) for line in out.splitlines()
                 if line.strip().startswith(("between", "at generation", "of which"))}
        last = dict(line.split("=", 1) for line in out.strip().splitlines()[-2:])
        shares.append(float(last["framework_share"]))
        per_call.append(float(last["framework_ms_per_call"]))
        print(f"run {k + 1}: framework_share={shares[-1]:.4f}, {per_call[-1]:.1f} ms per call (between calls"
              f" {parts.get('between', 0):.3f}, at generation ends {parts.get('at', 0):.3f}, of which the run's end"
              f" {parts.get('of', 0):.3f})", flush=True)
    print(f"median of {n} runs, min {min(shares):.4f}, max {max(shares):.4f}; ms per call {min(per_call):.1f}-"
          f"{max(per_call):.1f}")
    print(f"framework_ms_per_call={statistics.median(per_call):.2f}")
    print(f"framework_share={statistics.median(shares):.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--population", type=int, default=8)
    parser.add_argument("--generations", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pipeline", type=int, default=2, help="calls in flight per worker (1: no pipelining)")
    parser.add_argument("--no-reuse", action="store_true", help="rebuild every member (no live members in workers)")
    parser.add_argument("--barrier", action="store_true",
                        help="no early starts: every generation waits for its slowest member (the synchronous loop)")
    parser.add_argument("--cprofile", action="store_true", help="also print a cProfile of the driver's loop")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs, each in a fresh process (single runs spread 0.03-0.07 here); prints each"
                             " run's share and its parts, and the median as the last line")
    args = parser.parse_args()
    if args.repeat > 1:
        repeat(args.repeat)
        return
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
    if args.barrier:
        tb.register("survivors", pbt_evo.no_survivors)  # every generation waits for its slowest member
    tb.map = rmap
    random.seed(0)
    rows = []
    gen_ends = [time.time()]

    def hook(g: pbt_evo.Generation) -> None:
        per_member = [ind.metrics["train_seconds"] for ind in g.trained]
        worker_fw = sum(ind.metrics.get("worker_framework_s", 0.0) for ind in g.trained)
        rows.append((g.generation, g.wall_seconds, g.outcome.train_seconds, worker_fw,
                     best_packing(per_member, args.workers), g.outcome.busy_seconds, g.outcome.started_early))
        gen_ends.append(time.time())

    profiler = None
    if args.cprofile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    gen_ends[0] = time.time()
    start = time.perf_counter()
    pbt_evo.ea_pbt(tb.population(), tb, e_total=args.generations, e_step=1, hook=hook)
    total = time.perf_counter() - start
    if profiler is not None:
        profiler.disable()
    timelines = ray.get([a.timeline.remote() for a in rmap.actors])
    continued = sum(s["continued"] for s in ray.get([a.live_stats.remote() for a in rmap.actors]))
    rmap.close()
    ray.shutdown()

    print(f"ray.init {t_init:.2f} s, workers ready {t_workers:.2f} s (not counted below)")
    print(f"{'gen':>3} {'wall s':>8} {'train s':>8} {'in-worker fw s':>15} {'share':>7} {'packing':>8} {'early':>6}")
    for gen, wall, train, wfw, pack, busy, early in rows:
        share = 1 - busy / (wall * args.workers)  # training that ran in this generation's wall time
        print(f"{gen:3d} {wall:8.3f} {train:8.3f} {wfw:15.3f} {share:7.3f} {wall / pack:8.3f} {early:6d}")
    train = sum(r[2] for r in rows)
    share = 1 - train / (total * args.workers)
    packing = np.median([r[1] / r[4] for r in rows])
    run_packing = total / sum(r[4] for r in rows)
    print(f"total wall {total:.2f} s, training+evaluation in workers {train:.2f} s over {args.workers} workers")
    calls = args.population * args.generations
    print(f"in-worker framework (build, load/mix, capture) {sum(r[3] for r in rows):.2f} s;"
          f" {continued} of {calls} calls continued a live member")
    print(f"generation wall / best packing (median; with early starts a generation also runs the next one's"
          f" sure survivors) {packing:.3f}")
    print(f"run wall / sum of the generations' best packings {run_packing:.3f} (below 1: early starts beat"
          " any synchronous schedule)")
    decompose(rows, gen_ends, timelines, args.workers)
    if profiler is not None:
        import pstats

        print("driver cProfile (cumulative, top 15):")
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(15)
    # the unit that stays meaningful for short members: the share falls as members get longer, this does not
    print(f"framework_ms_per_call={1e3 * (total * args.workers - train) / calls:.2f}")
    print(f"framework_share={share:.4f}")


if __name__ == "__main__":
    main()
