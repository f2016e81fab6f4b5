"""The return of a uniform-random policy on a config's environment: the floor a search must clear.

    python -m tasks.rl.baseline spaces/rl.yaml [--episodes 10] [--seed 0] [--set KEY=VALUE ...]

Episodes are the task's own (same domain, task, observation type, action repeat and time limit as the
config), actions drawn uniformly from [-1, 1] for every dimension. Prints one line:
``random_policy_return=<mean> std=<sample std> episodes=<n>``.

>>> from tasks.rl.env import DMCEnv
>>> env = DMCEnv("cartpole", "swingup", obs="states", time_limit=0.2)
>>> returns = random_policy_returns(env, episodes=2, seed=0)
>>> len(returns), all(0.0 <= r <= 10.0 for r in returns)   # 10 agent steps, reward <= 1 each
(2, True)
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from .env import DMCEnv


def random_policy_returns(env: DMCEnv, episodes: int = 10, seed: int = 0) -> list[float]:
    """Undiscounted returns of ``episodes`` episodes of uniformly random actions."""
    rng = np.random.default_rng(seed)
    env.seed(seed)
    returns = []
    for _ in range(episodes):
        env.reset()
        done, total = False, 0.0
        while not done:
            _, reward, _, done = env.step(rng.uniform(-1.0, 1.0, env.action_dim).astype(np.float32))
            total += reward
        returns.append(total)
    return returns


def main(argv: list[str] | None = None) -> int:
    from pbt_evo.cli.config import ConfigError, load

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="an RL config, e.g. spaces/rl.yaml")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    try:
        cfg = load(args.config, args.set)
        if cfg["task"]["target"] != "tasks.rl:RLTask":
            raise ConfigError(f"{args.config}: task.target is {cfg['task']['target']!r}, not tasks.rl:RLTask")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.episodes < 1:
        print(f"error: --episodes must be >= 1, got {args.episodes}", file=sys.stderr)
        return 2
    task_args = cfg["task"]["args"]
    env_keys = ("action_repeat", "frame_stack", "image_size", "camera_id", "time_limit")
    env = DMCEnv(task_args.get("domain", "cartpole"), task_args.get("task", "swingup"),
                 obs=task_args.get("obs", "states"), **{k: task_args[k] for k in env_keys if k in task_args})
    returns = random_policy_returns(env, args.episodes, args.seed)
    std = float(np.std(returns, ddof=1)) if len(returns) > 1 else 0.0
    print(f"random_policy_return={np.mean(returns):.1f} std={std:.1f} episodes={len(returns)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
