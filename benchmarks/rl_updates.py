"""DrQ-v2 agent updates per second inside a pbt_evo Ray worker versus a plain loop in one process.

Same task, genome, batch, replay contents and thread count (1) in both; the worker side runs through
pbt_evo's RayMap (persistent actor, task built once, torch threads set from its CPUs). This machine is
noisy: the two are measured back to back ``--repeats`` times, alternating which goes first, and the
ratio reported is the median of the per-repeat ratios (``benchmarks/paired.py``).

    python benchmarks/rl_updates.py [--updates 300] [--repeats 3] [--obs states|pixels]

Last line: worker_vs_plain=<median of the paired ratios worker updates/s / plain updates/s> (target >= 0.95).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from paired import interleave, paired_ratio, spread

TASK_ARGS = {"domain": "cartpole", "task": "swingup", "obs": "states", "hidden_dim": 128, "encoder_dim": 64,
             "batch_size": 128, "frames_per_epoch": 2000, "num_seed_frames": 1000, "eval_episodes": 1}


def update_rate(task: object, n_updates: int) -> float:
    """Fill a replay buffer with 1,000 agent steps, then time ``n_updates`` agent updates."""
    import torch

    from pbt_evo.rng import seed_everything

    seed_everything(0)
    member = task.build([0] * len(task.space))
    member.train(1)  # 2,000 frames: fills the buffer (and runs a few updates: warm-up)
    cfg = task.agent_config
    batches = [member.replay.sample(cfg.batch_size, cfg.discount) for _ in range(n_updates)]
    step = member.global_step
    start = time.perf_counter()
    for batch in batches:
        member.agent.update(batch, step)
    torch.cuda.synchronize() if torch.cuda.is_available() else None
    return n_updates / (time.perf_counter() - start)


def in_worker(context: object, n_updates: int) -> float:
    """:func:`update_rate` as a call through a map: on the worker's own task."""
    return update_rate(context.task, n_updates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--obs", choices=("states", "pixels"), default="states")
    args = parser.parse_args()
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray
    import torch

    import pbt_evo
    from pbt_evo.parallel import Call, map_calls

    task_args = {**TASK_ARGS, "obs": args.obs}
    if args.obs == "pixels":
        task_args.update(hidden_dim=256, batch_size=32)
    torch.set_num_threads(1)
    task = pbt_evo.TaskSpec("tasks.rl:RLTask", task_args).build()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    rmap = pbt_evo.RayMap(pbt_evo.TaskSpec("tasks.rl:RLTask", task_args), workers=1, cpus_per_worker=1)

    def report(r: int, got: dict) -> None:
        print(f"repeat {r}: plain {got['plain']:.1f} updates/s, pbt_evo worker {got['worker']:.1f} updates/s,"
              f" ratio {got['worker'] / got['plain']:.3f}", flush=True)

    rounds = interleave({"plain": lambda: update_rate(task, args.updates),
                         "worker": lambda: map_calls(rmap, [Call(in_worker, args.updates)])[0]}, args.repeats, report)
    rmap.close()
    ray.shutdown()
    p, w = (statistics.median(r[k] for r in rounds) for k in ("plain", "worker"))
    print(f"median: plain {p:.1f} updates/s, worker {w:.1f} updates/s ({args.obs}, batch {task_args['batch_size']},"
          f" 1 thread each); paired ratios {spread(rounds, 'worker', 'plain')}")
    print(f"worker_vs_plain={paired_ratio(rounds, 'worker', 'plain'):.3f}")


if __name__ == "__main__":
    main()
