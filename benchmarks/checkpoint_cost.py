"""Disk cost of a checkpoint on the paper's configs, and the time to verify one on resume.

For each paper config, members of random genomes are built with the paper's task arguments, given one
optimizer step (so that Adam's moments exist) and written as a state file (:mod:`pbt_evo.statefile`); an
RL agent with its own replay buffer (quadruped) adds the buffer's export when full, from
``ReplayBuffer.layout`` (walker and humanoid share one buffer per machine, which is not checkpointed). A
checkpoint holds the population's N states (children are recipes naming their parents' states; the hall
of fame's state is one of them) plus ``loop.json``. Building needs no data: GAN configs use their
synthetic dataset and the digits-classifier fitness, which change neither network nor optimizer.

Verifying a checkpoint is one sha256 pass over its files, done as each file is read on resume: measured
here on a checkpoint of 8 states of 64 MB written by ``checkpoint.save``, read back by
``checkpoint.load_latest`` (hashing and reading), against reading it without hashing.

    python benchmarks/checkpoint_cost.py [--genomes 3]

Last line: paper_checkpoint_gb_max=<the largest config's checkpoint, GB>
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {
    "rl_quadruped_run": ["task.args.buffer_size=1000"],
    "rl_walker_run": ["task.args.shared_replay=false", "task.args.buffer_size=1000"],
    "rl_humanoid_run": ["task.args.shared_replay=false", "task.args.buffer_size=1000"],
    "gan_cifar10": ["task.args.dataset=synthetic", "task.args.fitness=fd_digits_classifier"],
    "gan_hard_cifar10": ["task.args.dataset=synthetic", "task.args.fitness=fd_digits_classifier"],
    "gan_hard_stl10": ["task.args.dataset=synthetic", "task.args.fitness=fd_digits_classifier"],
}


def member_bytes(task, genome) -> int:
    """Bytes of one member's state file after one optimizer step (moments allocated)."""
    import torch

    from pbt_evo import statefile
    from pbt_evo.handles import capture
    from pbt_evo.rng import seed_everything

    seed_everything(0)
    member = task.build(genome)
    for opt in member.optimizers.values():
        for group in opt.param_groups:
            for p in group["params"]:
                p.grad = torch.zeros_like(p)
        opt.step()
    return len(statefile.to_bytes(capture(member)))


def replay_bytes(task, capacity: int) -> int:
    """Bytes of a full replay buffer's export (what travels with an agent that owns its buffer)."""
    import numpy as np

    from tasks.rl.replay import ReplayBuffer

    spec = {**task.replay_spec(), "capacity": capacity}
    layout = ReplayBuffer.layout(**spec)
    return sum(int(np.prod(shape)) * dt.itemsize for name, (shape, dt) in layout.items() if name != "counters")


def verify_cost(states: int = 8, mb_each: int = 64) -> tuple[float, float, float]:
    """Seconds to write a checkpoint of ``states`` x ``mb_each`` MB, to resume from it (verify + read),
    and to read its files without verifying."""
    import numpy as np

    from pbt_evo.cli import checkpoint
    from pbt_evo.handles import StoredState
    from pbt_evo.individual import Individual

    rng = np.random.default_rng(0)
    pop = [Individual([0], id=i, handle=StoredState({"model": {"w": rng.random(mb_each * 2 ** 17, np.float32)}}))
           for i in range(states)]
    with tempfile.TemporaryDirectory(dir=ROOT) as run:
        t0 = time.perf_counter()
        folder = checkpoint.save(run, 1, pop, [], {"epochs": 1, "next_id": states, "logbook": None})
        t1 = time.perf_counter()
        checkpoint.load_latest(run)
        t2 = time.perf_counter()
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                f.read_bytes()
        t3 = time.perf_counter()
    return t1 - t0, t2 - t1, t3 - t2


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--genomes", type=int, default=3, help="random genomes per config (default 3)")
    args = p.parse_args()
    os.environ.setdefault("MUJOCO_GL", "egl")
    import random

    import torch

    from pbt_evo.cli import config
    from pbt_evo.cli.config import build_task

    torch.set_num_threads(1)
    write, resume, read = verify_cost()
    speed = 512 / resume
    print(f"checkpoint of 8 states x 64 MB: written in {write:.2f} s, resumed from (verified and read) in"
          f" {resume:.2f} s = {speed:.0f} MB/s; reading its files alone {read:.2f} s")
    largest = 0.0
    for name, overrides in CONFIGS.items():
        cfg = config.load(ROOT / "spaces" / f"{name}.yaml", overrides)
        task = build_task(cfg)
        random.seed(0)
        genomes = [task.space.sample() for _ in range(args.genomes)]  # first: building reseeds `random`
        sizes = [member_bytes(task, g) for g in genomes]
        args_ = config.load(ROOT / "spaces" / f"{name}.yaml")["task"]["args"]
        own_buffer = name.startswith("rl_") and not args_.get("shared_replay", False)
        replay = replay_bytes(task, args_["buffer_size"]) if own_buffer else 0
        n = cfg["algorithm"]["population"]
        member = statistics.median(sizes) + replay
        gb = n * member / 1e9
        largest = max(largest, gb)
        print(f"{name}: N={n}, member state {min(sizes) / 1e6:.1f}-{max(sizes) / 1e6:.1f} MB"
              f" (median {statistics.median(sizes) / 1e6:.1f})" + (f" + replay buffer {replay / 1e9:.2f} GB" if replay
                                                                    else "") +
              f" -> checkpoint {gb:.2f} GB, 2 kept {2 * gb:.2f} GB (+1 while the next is written),"
              f" resume (verify + read) ~{n * member / 1e6 / speed:.0f} s")
    print(f"paper_checkpoint_gb_max={largest:.2f}")


if __name__ == "__main__":
    main()
