"""Memory: the driver must not grow with model size, and states are kept about once per member.

    python benchmarks/memory.py [--generations 4] [--scale 10] [--early [--max-early K]]

Runs the W1 population (8 members, 2 Ray workers, the worst 2 replaced by copies of the best) twice, each
in a fresh process so that peak figures are that run's own: with W1's MLP (hidden 256, 0.21 M parameters)
and with one ``--scale`` times larger (hidden widened until the parameter count is ``scale`` x). Epochs are
shortened to 4 steps: memory, not training, is measured.

Figures, per size:

- driver peak RSS: ``VmHWM`` of ``/proc/self/status`` at the end (the process-lifetime peak; the
  driver's baseline after importing torch and starting Ray is printed too). ``driver_rss_growth_mb`` is the
  10x run's peak minus the 1x run's: what the driver pays for bigger models. The driver never holds a
  state: results come back as handles (ObjectRefs) and children are
  assembled in the workers.
- one state: the serialized size of one member's state (model + Adam moments), pickled in a worker.
- states: Ray's plasma usage (``memory_summary(stats_only=True)``: every object in the store, not
  only ours), sampled at every generation boundary (after the loop
  has replaced the handles and made the children, and Ray has deleted what nobody refers to: deletion is asynchronous), and the part of it still
  referenced ("needed") after every member's result arrives (during a generation).

``bytes_per_member_over_state`` = (the peak of those states at generation boundaries + the members the workers keep)
over (members x one state). What the workers hold: by default only the member each one is training
(``RayMap(reuse_members=False)``, or a task that does not declare ``reuse_members``), counted as one state
per worker; with live members (W1 and digits opt in: faster, see ``pbt_evo.parallel``) the members the
workers keep, measured (``Worker.live_bytes``): a second copy of every kept member. Both configurations
run and print; the last-line figure is the rebuilding one (the default of tasks that do not opt in), the
live-member figure is printed above it.
Between generations the store holds exactly the population's states (children's recipes point at their
parents' states; nothing is copied before a child trains), so 1.0 plus the workers' share is the floor.
The peak *during* a generation is printed too. The maps hand each trained member its new state as soon
as it arrives, and the loop drops the previous generation's results, so a member's old state is freed
when its new one exists: about one state per member, plus the parents' old states that the children's
recipes still need until the children have trained (figures: docs/PERFORMANCE.md).

Last lines: ``bytes_per_member_over_state=<ratio>`` (of the larger model, where MiB rounding is
negligible) and ``driver_rss_growth_mb=<MB>``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARK = "MEMRESULT "
N_WORKERS = 2


def rss_mb(field: str = "VmRSS") -> float:
    """This process's resident set (``VmRSS``) or its peak (``VmHWM``), in MB."""
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1)) / 1024


def hidden_for(scale: float, depth: int = 4) -> int:
    """The hidden width whose W1 MLP has ``scale`` times W1's parameter count."""
    def params(h: int) -> int:
        return 64 * h + h + (depth - 1) * (h * h + h) + h + 1

    target = scale * params(256)
    h = 256
    while params(h) < target:
        h += 1
    return h


def run_one(hidden: int, generations: int, reuse: bool, early: bool, max_early: int | None = None) -> dict:
    import random

    import ray
    from deap import base
    from ray._private.internal_api import memory_summary

    import pbt_evo
    from tasks.w1 import slot_hook, train_w1, w1_population

    ctx = ray.init(num_cpus=N_WORKERS, include_dashboard=False, log_to_driver=False)
    address = ctx.address_info["address"]
    rmap = pbt_evo.RayMap(pbt_evo.TaskSpec("tasks.w1:W1Task", {"hidden": hidden, "steps": 4}), workers=N_WORKERS,
                          reuse_members=reuse)
    ray.get([a.cost.remote([0]) for a in rmap.actors])
    rss_start = rss_mb()

    capacity = ray.cluster_resources()["object_store_memory"]

    def plasma_bytes(settled: bool) -> float:
        """Bytes in the store: its usage in MiB once Ray has deleted what nobody refers to (deletion is
        asynchronous, ~0.2-1 s), else the part still referenced ("needed", 0.01% of capacity resolution)."""
        text = memory_summary(address=address, stats_only=True)
        if settled:
            return float(re.search(r"Plasma memory usage (\d+) MiB", text).group(1)) * 2**20
        return float(re.search(r"([\d.]+)% needed", text).group(1)) / 100 * capacity

    during: list[float] = []
    boundary: list[float] = []
    live: list[float] = []  # bytes of live members kept in the workers, at generation boundaries
    progress = lambda i, res: during.append(plasma_bytes(settled=False))  # noqa: E731
    tb = base.Toolbox()
    tb.register("train", train_w1)
    tb.register("select", pbt_evo.sel_truncation, tau=0.25)
    tb.register("survivors", pbt_evo.no_survivors)
    if early:  # a survivor's next state may exist before its generation ends: up to 2 states for it
        tb.register("survivors", pbt_evo.sure_survivors, tau=0.25)
    tb.register("pair", pbt_evo.pair_random)
    tb.register("mate", pbt_evo.cx_mix, p=0.0)
    tb.register("mutate", pbt_evo.mut_none)
    tb.map = rmap
    rmap.max_early, rmap.progress = max_early, progress
    sizes: list[int] = []

    def hook(g: pbt_evo.Generation) -> None:
        slot_hook(g)
        time.sleep(1.0)  # let Ray delete the states nobody refers to any more
        boundary.append(plasma_bytes(settled=True))
        live.append(float(sum(ray.get([a.live_bytes.remote() for a in rmap.actors]))))

    random.seed(0)
    pop, _ = pbt_evo.ea_pbt(w1_population(), tb, e_total=generations, e_step=1, hook=hook)
    (params, size), _ = ray.get(rmap.actors[0].run.options(num_returns=2).remote(_count_params, None))[0]
    sizes.append(size)
    rmap.close()
    ray.shutdown()
    return {"hidden": hidden, "params": params, "members": len(pop), "state_bytes": sizes[0],
            "rss_start_mb": rss_start, "rss_peak_mb": rss_mb("VmHWM"),
            "plasma_boundary_max": max(boundary), "plasma_during_max": max(during), "live_max": max(live)}


def _count_params(context: object, _: object) -> tuple[int, int]:
    """Runs in a worker: the parameter count of the task's network, and the bytes of one member's state
    (model + Adam moments after a step) as Ray serializes it."""
    import ray

    from pbt_evo.handles import capture

    member = context.task.build([0])
    member.train(1)
    state = ray.cloudpickle.dumps(capture(member), protocol=5)
    return sum(p.numel() for p in member.model.parameters()), len(state)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--scale", type=float, default=10.0)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--reuse", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--early", action="store_true",
                        help="start sure survivors early (the default of make_toolbox): their next state can"
                             " arrive before their generation ends, and both are held until it does")
    parser.add_argument("--max-early", type=int, default=None,
                        help="with --early: at most this many early starts per generation (RayMap(max_early=K))")
    args = parser.parse_args()
    if args.one:
        print(MARK + json.dumps(run_one(args.one, args.generations, bool(args.reuse), args.early,
                                        args.max_early)), flush=True)
        return

    env = {**os.environ, "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "disabled"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    rows = []
    for reuse in (False, True):
        for scale in (1.0, args.scale):
            proc = subprocess.run([sys.executable, __file__, "--one", str(hidden_for(scale)), "--generations",
                                   str(args.generations), "--reuse", str(int(reuse))] + ["--early"] * args.early
                                  + ([] if args.max_early is None else ["--max-early", str(args.max_early)]),
                                  cwd=ROOT, env=env, capture_output=True, text=True)
            line = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)]
            if not line:
                raise RuntimeError(f"scale {scale} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
            rows.append((reuse, scale, json.loads(line[0][len(MARK):])))

    print(f"{'live members':>12} {'model':>6} {'params':>9} {'state MB':>9} {'driver RSS start':>17}"
          f" {'driver RSS peak':>16} {'store/state between gens':>25} {'+ live in workers':>18}"
          f" {'store/state peak in gen':>24}")
    ratio: dict[bool, float] = {}
    for reuse, scale, r in rows:
        n, state = r["members"], r["state_bytes"]
        between = r["plasma_boundary_max"] / (n * state)
        # between generations: the store, plus either the live members the workers keep (reuse) or,
        # while a generation runs, the one member each worker trains
        total = (r["plasma_boundary_max"] + max(r["live_max"], N_WORKERS * state)) / (n * state)
        ratio[reuse] = total
        print(f"{'yes' if reuse else 'no':>12} {scale:5.0f}x {r['params']:9d} {state / 1e6:9.2f}"
              f" {r['rss_start_mb']:14.0f} MB {r['rss_peak_mb']:13.0f} MB {between:25.2f} {total:18.2f}"
              f" {r['plasma_during_max'] / (n * state):24.2f}")
    print("(store = Ray plasma usage, MiB-rounded; 'live members': RayMap(reuse_members=...), W1 opts in)")
    print(f"with live members kept in workers (faster, 2x memory): bytes_per_member_over_state={ratio[True]:.3f}")
    growth = max(r["rss_peak_mb"] for reuse, s, r in rows if s != 1.0) - max(
        r["rss_peak_mb"] for reuse, s, r in rows if s == 1.0)
    print(f"bytes_per_member_over_state={ratio[False]:.3f}")
    print(f"driver_rss_growth_mb={growth:.1f}")


if __name__ == "__main__":
    main()
