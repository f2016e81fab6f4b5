"""How pbt_evo's own cost grows with the population: tiny members of fixed cost, N = 8 to 512, 2 workers.

    python benchmarks/scale.py [--sizes 8,32,128,512] [--generations 4] [--quick] [--profile]

Each population size runs the whole application path in a fresh process: ``pbt_evo.cli.run.Search`` on a
config of W1's task (``tasks/w1.py``) made tiny (an MLP of hidden 16, 2 Adam steps per epoch: a member
trains in about a millisecond, so what is measured is pbt_evo, Ray and the run folder, not training),
``pbt_nas`` with tau 0.25 (sure survivors started early), ``--generations`` generations of one epoch,
a checkpoint after every generation and the run folder's logs (TensorBoard included), as a user's run
writes them. Per N:

- driver ms / member / gen: the driver process's CPU time (``time.process_time``: every thread, Ray's
  included) spent in the loop (``ea_pbt``: submitting, collecting, selection, mixing recipes, logs,
  checkpoints), divided by members x generations; and the same without the checkpoints;
- framework share: 1 - the workers' training+evaluation time / (2 x the loop's wall time);
- checkpoint s / gen: wall seconds of ``checkpoint.save`` per generation (states fetched from the object
  store, written and fsync'ed, sha256 recorded);
- log KB / gen: the run folder's logs (log.csv, log.jsonl, population.jsonl, lineage.jsonl, tb/) per
  generation.

``--profile`` also prints the cProfile of the largest N's loop (top entries by own time), from a run of
its own (profiling slows the driver: the table is measured without it). ``--quick``: N = 8, 32,
128 (a fresh clone's smoke test; the default includes N = 512).

Last line: ``driver_ms_per_member_growth=<N=512 value / N=8 value>`` (largest over smallest N run; flat is
1.0, the target is <= 1.5).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARK = "SCALERESULT "
TASK_ARGS = {"hidden": 16, "depth": 1, "steps": 2}
LOGS = ("log.csv", "log.jsonl", "population.jsonl", "lineage.jsonl", "tb")


def config(n: int, generations: int, out: str) -> dict:
    """The run's config: tiny W1 members, pbt_nas, a checkpoint every generation."""
    from pbt_evo.cli import config as cfgmod

    return cfgmod.resolve({
        "name": f"scale_{n}", "seed": 0,
        "task": {"target": "tasks.w1:W1Task", "args": TASK_ARGS},
        "algorithm": {"name": "pbt_nas", "population": n, "e_total": generations, "e_step": 1},
        "parallel": {"backend": "ray", "workers": 2, "cpus_per_worker": 1},
        "output": {"dir": out, "keep_checkpoints": 2, "checkpoint_every": 1, "tensorboard": True}}, "scale.py")


def size_of(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size if path.exists() else 0


def run_one(n: int, generations: int, profile: bool) -> dict:
    """One population size, in this (fresh) process."""
    import ray

    import pbt_evo.cli.run as runmod
    from pbt_evo.cli import checkpoint

    # "local": a Ray instance of this process's own, not another one running on this machine
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    timing = {"loop_cpu": 0.0, "loop_wall": 0.0, "ckpt_wall": 0.0, "ckpt_cpu": 0.0}
    loop, save = runmod.ea_pbt, checkpoint.save
    profiler = None

    def timed_loop(*args, **kwargs):
        nonlocal profiler
        if profile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        c0, w0 = time.process_time(), time.perf_counter()
        try:
            return loop(*args, **kwargs)
        finally:
            timing["loop_cpu"] += time.process_time() - c0
            timing["loop_wall"] += time.perf_counter() - w0
            if profiler is not None:
                profiler.disable()

    def timed_save(*args, **kwargs):
        c0, w0 = time.process_time(), time.perf_counter()
        try:
            return save(*args, **kwargs)
        finally:
            timing["ckpt_cpu"] += time.process_time() - c0
            timing["ckpt_wall"] += time.perf_counter() - w0

    runmod.ea_pbt, checkpoint.save = timed_loop, timed_save
    with tempfile.TemporaryDirectory() as out:
        cfg = config(n, generations, out)
        run_dir = Path(out) / cfg["name"]
        runmod.Search(cfg, run_dir, quiet=True).run(resume=False)
        rows = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
        logs = sum(size_of(run_dir / name) for name in LOGS)
        ckpt_bytes = checkpoint.last_complete(run_dir)[1]
    ray.shutdown()
    train = sum(r["train_s"] for r in rows)
    result = {"n": n, "generations": generations, **timing, "train_s": train, "log_bytes": logs,
              "ckpt_bytes": ckpt_bytes, "shares": [r["framework_share"] for r in rows]}
    if profiler is not None:
        import io
        import pstats

        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)
        result["profile"] = text.getvalue()
    return result


def in_subprocess(n: int, generations: int, profile: bool) -> dict:
    env = {**os.environ, "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "disabled"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, __file__, "--one", str(n), "--generations", str(generations)] + ["--profile"] * profile
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    raise RuntimeError(f"N={n} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="8,32,128,512", help="population sizes, comma-separated")
    parser.add_argument("--quick", action="store_true", help="N = 8, 32, 128 only")
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--profile", action="store_true", help="cProfile of the largest N's loop")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(MARK + json.dumps(run_one(args.one, args.generations, args.profile)), flush=True)
        return
    sizes = [8, 32, 128] if args.quick else [int(s) for s in args.sizes.split(",")]
    results = []
    print(f"{'N':>5} {'driver ms/member/gen':>21} {'w/o checkpoint':>15} {'framework share':>16}"
          f" {'checkpoint s/gen':>17} {'checkpoint MB':>14} {'log KB/gen':>11} {'wall s':>8}", flush=True)
    for n in sizes:
        r = in_subprocess(n, args.generations, False)
        results.append(r)
        calls = n * r["generations"]
        r["ms"] = 1e3 * r["loop_cpu"] / calls
        share = 1 - r["train_s"] / (2 * r["loop_wall"])
        print(f"{n:5d} {r['ms']:21.3f} {1e3 * (r['loop_cpu'] - r['ckpt_cpu']) / calls:15.3f} {share:16.3f}"
              f" {r['ckpt_wall'] / r['generations']:17.3f} {r['ckpt_bytes'] / 1e6:14.2f}"
              f" {r['log_bytes'] / 1e3 / r['generations']:11.1f} {r['loop_wall']:8.1f}", flush=True)
    if args.profile:  # a run of its own: cProfile slows the driver's Python code, the table is without it
        r = in_subprocess(max(sizes), args.generations, True)
        print(f"cProfile of N={r['n']} (the loop, by own time; its own run):")
        print(r["profile"])
    print(f"driver_ms_per_member_growth={results[-1]['ms'] / results[0]['ms']:.3f}")


if __name__ == "__main__":
    main()
