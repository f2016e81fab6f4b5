"""Sampling from the replay buffer shared per machine versus an agent's own buffer (pixels).

Fills a pixel buffer (84x84 frames, stack 3, n-step 3) with ``--episodes`` episodes of 500 steps, then
times ``--batches`` samples of ``--batch`` transitions three ways: an agent's own buffer in one process;
the shared buffer (a Ray actor per node owning shared memory, ``tasks.rl.shared_replay``) read by the
Ray worker that wrote it; and by another worker that only reads. Writes go to the actor an episode at a
time, reads come from each worker's own mapping of the shared memory.

    python benchmarks/shared_replay.py [--batch 256] [--batches 30] [--episodes 20] [--repeats 3]

The own-buffer and reading-worker timings are measured back to back ``--repeats`` times, alternating which
goes first (random gathers over hundreds of MB vary by a quarter from run to run here), and compared by
the median of the per-repeat ratios (``benchmarks/paired.py``).
Last line: ``shared_vs_own=<median of paired ratios: shared ms per batch (reader) / own ms per batch>``
(1.0: sharing is free).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
from paired import interleave, paired_ratio, spread

SPEC = dict(frame_shape=(3, 84, 84), action_dim=6, frame_stack=3, nstep=3, dtype=np.uint8)
STEPS = 500


def episodes(n: int):
    rng = np.random.default_rng(0)
    for _ in range(n):
        yield (rng.integers(0, 255, (STEPS + 1, 3, 84, 84), dtype=np.uint8),
               rng.random((STEPS, 6), dtype=np.float32), np.ones(STEPS, np.float32), np.ones(STEPS, np.float32))


def ms_per_batch(replay, batch: int, n: int) -> float:
    replay.sample(batch, 0.99)  # warm-up
    start = time.perf_counter()
    for _ in range(n):
        replay.sample(batch, 0.99)
    return (time.perf_counter() - start) / n * 1e3


def ms(result: tuple[float, int]) -> float:
    """The ms per batch of a (ms per batch, buffer size) result."""
    return result[0]


class Agent:
    """A Ray worker holding a connection to the node's buffer, as an RL task does."""

    def __init__(self, spec: dict):
        self.spec, self.cache = spec, {}

    def run(self, batch: int, n: int, fill: int) -> tuple[float, int]:
        from tasks.rl.shared_replay import SharedReplay, node_replay

        connection = node_replay("bench", self.spec, self.cache)
        for ep in episodes(fill):
            connection.add_episode(*ep)
        replay = SharedReplay(connection, batch, 0.99)
        return ms_per_batch(replay, batch, n), replay.size()

    def close(self) -> None:
        for connection in self.cache.values():
            connection.release()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    from tasks.rl.replay import ReplayBuffer

    spec = dict(SPEC, capacity=args.episodes * (STEPS + 1))
    own = ReplayBuffer(**spec)
    for ep in episodes(args.episodes):
        own.add_episode(*ep)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    writer, reader = (ray.remote(num_cpus=1)(Agent).remote(spec) for _ in range(2))
    writer_ms, size = ray.get(writer.run.remote(args.batch, args.batches, args.episodes))
    rounds = interleave({"own": lambda: (ms_per_batch(own, args.batch, args.batches), len(own)),
                         "reader": lambda: ray.get(reader.run.remote(args.batch, args.batches, 0))}, args.repeats)
    ray.get([writer.close.remote(), reader.close.remote()])
    ray.shutdown()
    assert all(r["reader"][1] == size == len(own) for r in rounds), (rounds, size, len(own))
    own_ms, reader_ms = (statistics.median(r[k][0] for r in rounds) for k in ("own", "reader"))
    print(f"{args.episodes} episodes ({size} steps, {size * 3 * 84 * 84 / 2**20:.0f} MiB of frames), "
          f"batch {args.batch} stacked-frame pairs")
    print(f"own buffer, one process        {own_ms:7.1f} ms per batch (median)")
    print(f"shared buffer, writing worker  {writer_ms:7.1f} ms per batch")
    print(f"shared buffer, other worker    {reader_ms:7.1f} ms per batch (median)")
    print(f"paired ratios (other worker / own buffer) {spread(rounds, 'reader', 'own', ms)}")
    print(f"shared_vs_own={paired_ratio(rounds, 'reader', 'own', ms):.3f}")


if __name__ == "__main__":
    main()
