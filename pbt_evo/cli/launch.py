"""``python -m pbt_evo.run``'s command line: which config, which run folder, resume or not; then the run.

Everything here runs before torch and Ray are imported (seconds): a bad config, a ``--set`` typo or a
run folder that names an untrusted task stops at once with one line, exit code 2. The run itself is
:func:`pbt_evo.cli.run.start`.

>>> parse(["spaces/digits.yaml", "--set", "seed=3", "--trust-task", "my.tasks:MyTask"]).trust_task
['my.tasks:MyTask']
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from . import config, signals
from .config import ConfigError
from .saved import differences, load_saved


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m pbt_evo.run", description="Run a search from a config:"
                                " python -m pbt_evo.run spaces/digits.yaml")
    p.add_argument("config", nargs="?", help="a config file (spaces/*.yaml) or a run folder to resume")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set algorithm.e_total=10 (repeatable)")
    p.add_argument("--seed", type=int, help="shorthand for --set seed=N")
    p.add_argument("--out", help="shorthand for --set output.dir=DIR")
    p.add_argument("--name", help="shorthand for --set name=NAME")
    p.add_argument("--resume", action="store_true", help="continue the run folder's last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="delete an existing run folder of the same name first")
    p.add_argument("--trust-task", action="append", default=[], metavar="TARGET",
                   help="build this task (package.module:Class) although no installed package registers it, when"
                        " a run folder to resume names it: only for a folder whose origin you trust (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress output; logs only")
    p.add_argument("--keys", action="store_true", help="list every config key with its default and exit")
    return p.parse_args(argv)


def resolve_run(args: argparse.Namespace) -> tuple[dict[str, Any], Path, bool]:
    """The config, the run folder and whether to resume, from the command line."""
    if args.config is None:
        raise ConfigError("give a config file (e.g. spaces/digits.yaml) or a run folder to resume")
    path = Path(args.config)
    overrides = list(args.set)
    overrides += [f"seed={args.seed}"] * (args.seed is not None) + [f"output.dir={args.out}"] * (args.out is not None)
    overrides += [f"name={args.name}"] * (args.name is not None)
    if path.is_dir():
        if not (path / "config.yaml").is_file():
            raise ConfigError(f"{path} is a folder without config.yaml: not a pbt_evo run folder")
        if overrides:
            raise ConfigError(f"{path}: a run folder resumes with its own config; --set/--seed/--out/--name are not"
                              " allowed")
        return load_saved(path, args.trust_task, "run it with --trust-task {target}"), path, True
    cfg = config.load(path, overrides)
    run_dir = Path(cfg["output"]["dir"]) / cfg["name"]
    if args.overwrite:
        return cfg, run_dir, False  # emptied by Search.run once it holds the folder's lock
    if (run_dir / "config.yaml").is_file():
        changed = differences(run_dir, cfg)
        if changed:
            raise ConfigError(f"{run_dir} holds a run with a different config (differs in: {', '.join(changed)});"
                              f" resume it with `python -m pbt_evo.run {run_dir} --resume`, or start a new one"
                              " with --name NEW or --overwrite")
        return cfg, run_dir, True
    return cfg, run_dir, args.resume


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.keys:
        print(config.describe())
        return 0
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    from ..trusted import UntrustedTask

    with signals.handled():
        try:
            cfg, run_dir, resume = resolve_run(args)
            with signals.deferred():  # an import interrupted half way could fail later, at exit
                from .run import start  # torch and Ray: only once the config is known to be good
        except (ConfigError, UntrustedTask) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            return signals.report("nothing was started")
        return start(cfg, run_dir, resume, overwrite=args.overwrite, quiet=args.quiet, source=str(args.config))


if __name__ == "__main__":
    sys.exit(main())
