"""The measured steps of the GPU check (``benchmarks/gpu_check.py``), each at the size the GPU run uses or, with
``tiny=True``, at a size that runs in seconds on a CPU (what ``--dry-run`` runs to show the code works).

Each step returns its figures as ``{name: value}``; the names are the ``name=value`` lines the check prints.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

# DrQ-v2 at the paper's size (spaces/rl_quadruped_run.yaml): 84x84 pixels, 3 frames, 12 actions, hidden 1024
RL = {"batch": 256, "hidden": 1024, "action_dim": 12, "frames": 3, "size": 84}
RL_TINY = {"batch": 4, "hidden": 32, "action_dim": 2, "frames": 3, "size": 24}
# the GAN at its CIFAR-10 paper size (spaces/gan_cifar10.yaml), on synthetic images, scored by the
# digits-classifier distance (FID needs the Inception weights, which cannot be fetched there)
GAN = {"space": "gan", "dataset": "synthetic", "fitness": "fd_digits_classifier", "img_size": 32, "bottom_width": 4,
       "gf_dim": 256, "df_dim": 128, "latent_dim": 120, "batch_size": 40, "steps_per_epoch": 50, "n_fid": 1000,
       "n_synthetic": 2000}
GAN_TINY = {**GAN, "img_size": 16, "bottom_width": 2, "gf_dim": 8, "df_dim": 8, "latent_dim": 12, "batch_size": 4,
            "steps_per_epoch": 1, "n_fid": 32, "n_synthetic": 64}


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def rl_update_rate(device: str, updates: int, warmup: int, size: dict[str, int]) -> tuple[float, dict[str, float]]:
    """DrQ-v2 agent updates per second on one synthetic pixel batch (uint8 frames, as the replay buffer gives
    them: each update copies the batch to the device); no environment is needed for an update."""
    import torch

    from tasks.rl.agent import AgentConfig, DrQV2Agent
    from tasks.rl.networks import DrQV2Model
    from tasks.rl.spaces import drqv2_default, pixel_space

    space = pixel_space()
    torch.manual_seed(0)
    channels, s, b, a = 3 * size["frames"], size["size"], size["batch"], size["action_dim"]
    model = DrQV2Model("pixels", (channels, s, s), a, size["hidden"], space.decode(drqv2_default(space))).to(device)
    agent = DrQV2Agent(model, DrQV2Agent.make_optimizers(model, 1e-4), AgentConfig(batch_size=b), pixels=True)
    rng = np.random.default_rng(0)
    batch = (rng.integers(0, 256, (b, channels, s, s), dtype=np.uint8), rng.uniform(-1, 1, (b, a)).astype(np.float32),
             rng.uniform(0, 1, (b, 1)).astype(np.float32), np.full((b, 1), 0.99, np.float32),
             rng.integers(0, 256, (b, channels, s, s), dtype=np.uint8))
    for _ in range(warmup):
        agent.update(batch, 10_000)
    _sync(device)
    start = time.perf_counter()
    for _ in range(updates):
        metrics = agent.update(batch, 10_000)
    _sync(device)
    return updates / (time.perf_counter() - start), metrics


def rl_updates(device: str, tiny: bool = False) -> dict[str, Any]:
    """Updates per second on ``device`` against the same loop on the CPU (all its threads)."""
    import torch

    size = RL_TINY if tiny else RL
    out: dict[str, Any] = {"rl_batch": size["batch"], "rl_hidden": size["hidden"],
                           "rl_cpu_threads": torch.get_num_threads()}
    if device != "cpu":
        torch.cuda.reset_peak_memory_stats()
        rate, metrics = rl_update_rate(device, 200, 10, size)
        out.update(rl_updates_per_s_cuda=rate, rl_update_gpu_mib=torch.cuda.max_memory_allocated() / 2**20)
    cpu_rate, metrics = rl_update_rate("cpu", 2 if tiny else 4, 1, size)
    out["rl_updates_per_s_cpu"] = cpu_rate
    if device != "cpu":
        out["rl_cuda_over_cpu"] = out["rl_updates_per_s_cuda"] / cpu_rate
    if not all(np.isfinite(v) for v in metrics.values()):
        raise RuntimeError(f"non-finite DrQ-v2 losses: {metrics}")
    return out


def gan_generations(device: str, tiny: bool = False, generations: int = 2) -> dict[str, Any]:
    """A seeded pbt_nas search of the GAN task through the serial map: the first generation trains fresh
    members, the second children mixed from them (on ``device``); seconds of each, and the best -FD."""
    import random

    import torch
    from deap import tools

    import pbt_evo
    from pbt_evo.variants import make_toolbox
    from tasks.gan import GanTask

    population = 8  # the fewest with two parents per child (tau 0.25)
    task = GanTask(**(GAN_TINY if tiny else GAN), device=device)  # the user's cache ($PBT_EVO_CACHE, ~/.cache)
    task.reference_stats()  # trains the digits classifier once (CPU, seconds), before the clock starts
    tb = make_toolbox("pbt_nas", task.space, population=population)
    tb.map = pbt_evo.SerialMap(task)
    marks = [time.perf_counter()]
    random.seed(0)
    if device != "cpu":
        torch.cuda.reset_peak_memory_stats()
    hof = tools.HallOfFame(1)
    try:
        _, log = pbt_evo.ea_pbt(tb.population(), tb, e_total=generations, e_step=1, halloffame=hof,
                                hook=lambda g: marks.append(time.perf_counter()))
    finally:
        tb.map.close()
    failed = sum(r["failed"] for r in log)
    if failed:
        raise RuntimeError(f"{failed} GAN member(s) failed")
    out: dict[str, Any] = {f"gan_gen{i + 1}_s": b - a for i, (a, b) in enumerate(zip(marks, marks[1:]))}
    out.update(gan_population=population, gan_best_neg_fd=hof[0].fitness.values[0])
    if device != "cpu":
        out["gan_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def shared_members(device: str, tiny: bool = False) -> dict[str, Any]:
    """Members per second and device memory per member with k = 1, 2, 4 processes training at once
    (``benchmarks/gpu_share.py``; MNIST-1D as in spaces/mnist1d_study.yaml, one epoch a member)."""
    from gpu_share import TASK_ARGS, run_shared, sample_jobs

    args = {**TASK_ARGS, "device": device, **({"channels": 4, "num_samples": 500} if tiny else {})}
    out: dict[str, Any] = {}
    for k in (2,) if tiny else (1, 2, 4):  # tiny: one round of processes shows the code works
        r = run_shared(k, sample_jobs(k, 1 if tiny else 8, args), args)
        out[f"share_k{k}_members_per_s"] = r["members_per_s"]
        if r["device_mib"] is not None:
            out[f"share_k{k}_device_mib_per_member"] = r["device_mib"] / k
            out[f"share_k{k}_torch_reserved_mib_per_member"] = float(np.mean([w["reserved_mib"] for w in r["workers"]]))
    return out


STEPS = {"share": shared_members, "rl_updates": rl_updates, "gan": gan_generations}
WHAT = {"share": "MNIST-1D members per second and device MiB per member, k = 1, 2, 4 processes on the GPU",
        "rl_updates": "DrQ-v2 updates per second, pixels 84x84, batch 256, hidden 1024: CUDA (200) against CPU (4)",
        "gan": "GAN (CIFAR-10 paper size, synthetic images, digits-classifier distance): 2 generations of 8"}
