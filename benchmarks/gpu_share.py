"""Several members on one device at once: ``k`` processes, each training its own members, as ``k`` Ray
workers with ``gpus_per_worker: 1/k`` would (one member per worker at a time, each with its own CUDA
context). Ray itself cannot travel to the lent GPU machine (its wheel is larger than what travels), so
this emulates its placement with plain processes; the members are trained by :func:`pbt_evo.train_member`
as in a run.

Used by ``benchmarks/gpu_check.py`` (members per second and device memory per member at k = 1, 2, 4) and by
``tests/test_gpu.py`` (a member trained beside another equals the same member trained alone, bit for bit).

    python benchmarks/gpu_share.py --device cuda --k 1 2 4
"""

from __future__ import annotations

import argparse
import hashlib
import os
import threading
import time
import traceback
from collections.abc import Mapping, Sequence
from typing import Any

TASK = "tasks.mnist1d:MNIST1DTask"
TASK_ARGS = {"channels": 8, "batch_size": 100, "lr": 0.003, "data_seed": 0}  # spaces/mnist1d_study.yaml
WAIT_S = 300.0  # a worker that has not answered by then has failed


def deterministic_kernels() -> None:
    """cuDNN and cuBLAS kernels that give the same bits on every run (what exact resume and these checks need).
    ``CUBLAS_WORKSPACE_CONFIG`` must be set before cuBLAS starts, so call this before any CUDA work."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    import torch

    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    # warn_only: some backward kernels (adaptive pooling) have no deterministic variant; with one output
    # per channel their sums have a single term each, so they are exact anyway
    torch.use_deterministic_algorithms(True, warn_only=True)


def state_digest(state: Mapping[str, Any]) -> str:
    """SHA-256 of a member's whole state (model, optimizer moments, extras): every array's dtype, shape and
    bytes, then the tree's JSON with sorted keys. Not of its state file: safetensors writes the file's
    header in an order that differs from process to process."""
    import json

    import numpy as np

    from pbt_evo import plain

    h = hashlib.sha256()

    def put(x: np.ndarray) -> str:
        h.update(f"{x.dtype.str}{x.shape}".encode())
        h.update(np.ascontiguousarray(x).tobytes())
        return "array"

    h.update(json.dumps(plain.encode(dict(state), put), sort_keys=True).encode())
    return h.hexdigest()


def _worker(rank: int, task_args: Mapping[str, Any], jobs: Sequence[tuple[list[int], int]], epochs: int,
            barrier: Any, queue: Any) -> None:
    try:
        deterministic_kernels()
        import torch

        from pbt_evo import Context, FreshState, Individual, TaskSpec
        from pbt_evo.train import train_member

        task = TaskSpec(TASK, dict(task_args)).build()
        cuda = task.device.type == "cuda"
        if not cuda:
            torch.set_num_threads(1)  # one core per worker, as cpus_per_worker: 1

        def train(genome: list[int], seed: int) -> Any:
            individual = Individual(genome, id=rank, handle=FreshState(seed), seed=seed)
            return train_member(Context(task), individual, epochs)  # a fresh member each time, as a new genome

        train(*jobs[0])  # warm-up: kernels loaded, allocator filled; results depend only on genome and seed
        barrier.wait(timeout=WAIT_S)
        start = time.perf_counter()
        results = [train(genome, seed) for genome, seed in jobs]
        seconds = time.perf_counter() - start
        queue.put({"rank": rank, "seconds": seconds, "fitness": [r.fitness for r in results],
                   "digests": [state_digest(r.state) for r in results],
                   "allocated_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
                   "reserved_mib": torch.cuda.max_memory_reserved() / 2**20 if cuda else None})
    except BaseException:  # the parent must hear of any failure, or it waits for nothing
        queue.put({"rank": rank, "error": traceback.format_exc()})
        barrier.abort()


class _DeviceMemory:
    """Peak device memory in use (all processes, CUDA contexts included), sampled every ``period`` seconds."""

    def __init__(self, period: float = 0.02):
        import torch

        self.torch, self.period = torch, period
        self.base = self.used()
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def used(self) -> int:
        free, total = self.torch.cuda.mem_get_info()
        return total - free

    def _poll(self) -> None:
        while not self._stop.wait(self.period):
            self.peak = max(self.peak, self.used())

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return (self.peak - self.base) / 2**20


def run_shared(k: int, jobs: Sequence[Sequence[tuple[list[int], int]]], task_args: Mapping[str, Any],
               epochs: int = 1) -> dict[str, Any]:
    """Train ``jobs[i]`` (``(genome, seed)`` pairs) in process ``i`` of ``k``, all at once after a warm-up.

    Returns members per second (all members over the wall time from the common start to the last end), the
    per-process results (fitness, state digests, torch's peak allocated and reserved MiB) and, on CUDA, the
    peak rise of device memory in use while they ran (``device_mib``: contexts included)."""
    import multiprocessing as mp

    if len(jobs) != k or any(not j for j in jobs):
        raise ValueError(f"give one non-empty job list per process: {k} processes, {len(jobs)} lists")
    cuda = str(task_args.get("device", "cpu")).startswith("cuda")
    ctx = mp.get_context("spawn")  # CUDA cannot be used in a forked child
    barrier, queue = ctx.Barrier(k + 1), ctx.Queue()
    memory = _DeviceMemory() if cuda else None
    procs = [ctx.Process(target=_worker, args=(i, dict(task_args), list(jobs[i]), epochs, barrier, queue))
             for i in range(k)]
    for p in procs:
        p.start()
    out: list[dict[str, Any]] = []
    try:
        try:
            barrier.wait(timeout=WAIT_S)
        except threading.BrokenBarrierError:
            pass  # a worker failed before the start: its error is in the queue
        start = time.perf_counter()
        while len(out) < k:
            out.append(queue.get(timeout=WAIT_S))
            if "error" in out[-1]:
                raise RuntimeError(f"worker {out[-1]['rank']} failed:\n{out[-1]['error']}")
        wall = time.perf_counter() - start
    finally:
        device_mib = memory.stop() if memory else None
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    out.sort(key=lambda r: r["rank"])
    n = sum(len(j) for j in jobs)
    return {"k": k, "members": n, "wall_s": wall, "members_per_s": n / wall, "workers": out,
            "device_mib": device_mib}


def sample_jobs(k: int, per_process: int, task_args: Mapping[str, Any],
                seed: int = 0) -> list[list[tuple[list[int], int]]]:
    """``per_process`` random (genome, seed) pairs for each of ``k`` processes, the same for a given ``seed``."""
    import random

    from tasks.mnist1d import make_space

    rng, space = random.Random(seed), make_space()
    return [[([rng.randrange(len(v.options)) for v in space], rng.getrandbits(31)) for _ in range(per_process)]
            for _ in range(k)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--k", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--members", type=int, default=8, help="members per process")
    args = parser.parse_args()
    task_args = {**TASK_ARGS, "device": args.device}
    for k in args.k:
        r = run_shared(k, sample_jobs(k, args.members, task_args), task_args)
        print(f"k={k}: {r['members_per_s']:.2f} members/s, device MiB {r['device_mib']}")


if __name__ == "__main__":
    main()
