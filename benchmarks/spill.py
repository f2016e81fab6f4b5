"""States larger than Ray's object store: what spilling costs a run, against the same run with room.

    python benchmarks/spill.py [--members 12] [--hidden 1400] [--generations 2] [--store-mb 80] [--repeats 3]

W1 (``tasks/w1.py``; children are exact copies of the best) with a wide MLP, so that one member's state
(model + Adam) is large (hidden 1400: 24.6 MB; 12 members: 296 MB, 3.7 times an 80 MB store), one Adam
step per epoch (state, not training, is measured), 2 workers. Each run is a fresh process with its own
Ray instance: one with ``object_store_memory`` of ``--store-mb`` (Ray spills primary copies to disk when
the store is full and restores them when a worker asks), one with a store that holds everything (2 GB).
They alternate (``benchmarks/paired.py``); each pair's slowdown is its wall ratio, the loop's wall only
(not Ray's start). Ray's memory summary gives the bytes spilled and restored. The final populations of
the two are compared member for member (they must be equal).

Last line: ``spill_slowdown=<median of paired ratios: small-store wall / roomy-store wall>``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from paired import interleave, paired_ratio, spread

ROOT = Path(__file__).resolve().parents[1]
MARK = "SPILLRESULT "
ROOMY_MB = 2048


def spill_stats() -> dict[str, int]:
    """Bytes Ray spilled to disk and restored from it so far (its memory summary, in MiB)."""
    import ray
    from ray._private.internal_api import memory_summary

    text = memory_summary(ray.get_runtime_context().gcs_address, stats_only=True)
    return {kind: int(m.group(1)) * 2**20 if (m := re.search(rf"{kind} (\d+) MiB", text)) else 0
            for kind in ("Spilled", "Restored")}


def run_one(store_mb: int, members: int, hidden: int, generations: int) -> dict:
    import shutil

    import ray

    import pbt_evo
    from tasks.w1 import outcome, run_w1

    temp_dir = tempfile.mkdtemp(prefix="pbtsp", dir="/tmp")  # short (Ray's sockets) and this run's own
    ray.init(address="local", num_cpus=2, object_store_memory=store_mb * 2**20, include_dashboard=False,
             log_to_driver=False, _temp_dir=temp_dir)
    try:
        rmap = pbt_evo.RayMap(pbt_evo.TaskSpec("tasks.w1:W1Task", {"hidden": hidden, "depth": 2, "steps": 1}),
                              workers=2)
        ray.get([a.cost.remote([0]) for a in rmap.actors])  # workers built their task: not in the wall
        t0 = time.perf_counter()
        result = outcome(*run_w1(rmap, members, generations))
        wall = time.perf_counter() - t0
        stats = spill_stats()
        rmap.close()
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)
    return {"wall": wall, "spilled": stats["Spilled"], "restored": stats["Restored"], "result": result}


def in_subprocess(store_mb: int, args: argparse.Namespace) -> dict:
    env = {**os.environ, "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "disabled"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, __file__, "--one", str(store_mb), "--members", str(args.members), "--hidden",
           str(args.hidden), "--generations", str(args.generations)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    raise RuntimeError(f"store {store_mb} MB failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n"
                       f"{proc.stderr[-5000:]}")


def wall(run: dict) -> float:
    return run["wall"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=12)
    parser.add_argument("--hidden", type=int, default=1400)
    parser.add_argument("--generations", type=int, default=2)
    parser.add_argument("--store-mb", type=int, default=80, help="the small object store, MiB (Ray's minimum: 75)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(MARK + json.dumps(run_one(args.one, args.members, args.hidden, args.generations)), flush=True)
        return

    def report(r: int, got: dict) -> None:
        small, roomy = got["small"], got["roomy"]
        print(f"repeat {r}: {args.store_mb} MB store {small['wall']:.2f} s (spilled {small['spilled'] / 2**20:.0f}"
              f" MiB, restored {small['restored'] / 2**20:.0f} MiB), {ROOMY_MB} MB store {roomy['wall']:.2f} s"
              f" (spilled {roomy['spilled'] / 2**20:.0f} MiB), ratio {small['wall'] / roomy['wall']:.3f},"
              f" same results: {small['result'] == roomy['result']}", flush=True)

    rounds = interleave({"small": lambda: in_subprocess(args.store_mb, args),
                         "roomy": lambda: in_subprocess(ROOMY_MB, args)}, args.repeats, report)
    state = rounds[0]["small"]["result"]["state_bytes"]
    calls = args.members * args.generations
    print(f"{args.members} members x {state / 1e6:.1f} MB states = {args.members * state / 2**20:.0f} MiB"
          f" ({args.members * state / (args.store_mb * 2**20):.1f} x the {args.store_mb} MiB store),"
          f" {args.generations} generations ({calls} calls), 2 workers")
    print(f"paired ratios {spread(rounds, 'small', 'roomy', wall)}")
    print(f"spill_slowdown={paired_ratio(rounds, 'small', 'roomy', wall):.3f}")


if __name__ == "__main__":
    main()
