"""Run one config over several algorithms and seeds, one run folder each:

    python -m pbt_evo.sweep spaces/digits_hard.yaml --algorithms pbt_nas,searl,random --seeds 0,1,2

Each run lands in ``<out>/<name>_<algorithm>_s<seed>`` (``out`` = ``output.dir``, ``name`` = the
config's name). Runs execute one after another in this process; with the Ray backend they share one Ray
instance (each run starts and stops its own workers on it). The sweep is resumable: a finished run is
skipped, an interrupted one continues from its last checkpoint (the same logic as ``pbt_evo.run``), so
re-running the same command completes a sweep. One failed run does not stop the others.

Algorithm labels are a variant of the loop plus optional suffixes (see :func:`algorithm_overrides`):
``pbt_nas``, ``searl``, ``random``, ``no_mixing``; ``_sp10`` / ``_sp01`` set shrink-perturb to
``[1, 0]`` (copy the donor's layers exactly) / ``[0, 1]`` (re-initialise them); ``_naswot`` starts
from the training-free initial population; ``_wfresh`` re-initialises layers whose width a child changes
(``algorithm.width_policy: fresh``); ``_mixing`` searches the architecture too by mixing (``pb2``,
``pb2_mix``, ``fire_pbt``: ``algorithm.mixing: true``). E.g. ``pbt_nas_sp10``, ``pbt_nas_naswot``,
``pbt_nas_wfresh``, ``pb2_mixing``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from ..parallel.connect import init_ray
from ..parallel.resources import ResourceError
from ..trusted import UntrustedTask
from ..variants import VARIANTS, variant
from ..weights import SHRINK_PERTURB
from . import config, signals
from .checkpoint import CheckpointError, WriteError
from .config import ConfigError
from .failures import NothingTrained
from .run import Search
from .runlock import RunFolderError
from .saved import differences

# suffix -> (config overrides it stands for, how to recognise it in a resolved config)
SUFFIXES: dict[str, list[str]] = {
    "sp10": ["algorithm.shrink_perturb=[1.0, 0.0]"],
    "sp01": ["algorithm.shrink_perturb=[0.0, 1.0]"],
    "naswot": ["algorithm.init=naswot"],
    "wfresh": ["algorithm.width_policy=fresh"],
    "rc": ["algorithm.research_code_compat=true"],
    "mixing": ["algorithm.mixing=true"],
}


def algorithm_overrides(label: str) -> list[str]:
    """The ``--set`` overrides an algorithm label stands for.

    >>> algorithm_overrides("pbt_nas_sp10")
    ['algorithm.name=pbt_nas', 'algorithm.shrink_perturb=[1.0, 0.0]']
    >>> algorithm_overrides("searl")
    ['algorithm.name=searl']
    """
    base = next((a for a in sorted(VARIANTS, key=len, reverse=True) if label == a or label.startswith(a + "_")), None)
    if base is None:
        raise ConfigError(f"algorithm {label!r}: must start with one of {', '.join(VARIANTS)}"
                          f" (optionally + _{' / _'.join(SUFFIXES)})")
    out = [f"algorithm.name={base}"]
    rest = label[len(base):]
    for part in filter(None, rest.split("_")):
        if part not in SUFFIXES:
            raise ConfigError(f"algorithm {label!r}: unknown suffix '_{part}'; allowed: _{', _'.join(SUFFIXES)}")
        out += SUFFIXES[part]
    return out


def algorithm_label(cfg: dict[str, Any]) -> str:
    """The label of a resolved config: the inverse of :func:`algorithm_overrides` (other shrink-perturb
    values are spelled out, e.g. ``pbt_nas_sp0.5_0.2``).

    >>> algorithm_label({"algorithm": {"name": "pbt_nas", "shrink_perturb": [1, 0], "init": "balanced"}})
    'pbt_nas_sp10'
    """
    alg = cfg["algorithm"]
    label = alg["name"]
    sp = tuple(float(v) for v in alg.get("shrink_perturb", SHRINK_PERTURB))
    # shrink-perturb is part of the name only where it acts (the registry says)
    if variant(alg["name"]).shrink_perturbs and sp != SHRINK_PERTURB:
        label += {(1.0, 0.0): "_sp10", (0.0, 1.0): "_sp01"}.get(tuple(sp), f"_sp{sp[0]:g}_{sp[1]:g}")
    if alg.get("init") == "naswot":
        label += "_naswot"
    if alg.get("width_policy", "adapt") == "fresh":
        label += "_wfresh"
    if alg.get("research_code_compat"):
        label += "_rc"
    if alg.get("mixing") and variant(alg["name"]).optional_mixing:
        label += "_mixing"
    return label


def run_name(name: str, label: str, seed: int) -> str:
    """``<name>_<algorithm>_s<seed>``.

    >>> run_name("digits_hard", "pbt_nas", 3)
    'digits_hard_pbt_nas_s3'
    """
    return f"{name}_{label}_s{seed}"


def is_finished(run_dir: Path, cfg: dict[str, Any]) -> bool:
    """True when the run folder holds a complete run of ``cfg`` (all epochs logged, best exported)."""
    if not (run_dir / "best" / "genome.json").is_file() or not (run_dir / "log.jsonl").is_file():
        return False
    lines = [ln for ln in (run_dir / "log.jsonl").read_text().splitlines() if ln.strip()]
    return bool(lines) and json.loads(lines[-1])["epochs"] >= cfg["algorithm"]["e_total"]


def plan(config_path: str | Path, algorithms: list[str], seeds: list[int],
         overrides: list[str] = ()) -> list[tuple[str, int, dict[str, Any], Path]]:
    """Resolve every run of the sweep before any starts (a bad config or label fails here, for all).

    Returns ``(label, seed, config, run folder)`` per run.
    """
    if not algorithms:
        raise ConfigError("--algorithms: give at least one, e.g. pbt_nas,searl,random")
    if not seeds:
        raise ConfigError("--seeds: give at least one, e.g. 0,1,2")
    base = config.load(config_path, list(overrides))
    runs = []
    for seed in seeds:  # seed-major: an interrupted sweep has complete seeds, which pair in comparisons
        for label in algorithms:
            sets = list(overrides) + algorithm_overrides(label) + [f"seed={seed}",
                                                                   f"name={run_name(base['name'], label, seed)}"]
            cfg = config.load(config_path, sets)
            runs.append((label, seed, cfg, Path(cfg["output"]["dir"]) / cfg["name"]))
    return runs


def run_sweep(config_path: str | Path, algorithms: list[str], seeds: list[int], overrides: list[str] = (),
              quiet: bool = True, log=print) -> dict[str, list[Path]]:
    """Run (or complete) a sweep; returns run folders by outcome: ``done``, ``skipped``, ``failed``.

    >>> # run_sweep("spaces/digits_hard.yaml", ["pbt_nas", "searl"], [0, 1], ["output.dir=runs/study"])
    """
    runs = plan(config_path, algorithms, seeds, overrides)
    outcome: dict[str, list[Path]] = {"done": [], "skipped": [], "failed": []}
    ray_started = False
    try:
        for k, (label, seed, cfg, run_dir) in enumerate(runs, 1):
            head = f"[{k}/{len(runs)}] {run_dir}"
            resume = False
            if (run_dir / "config.yaml").is_file():
                changed = differences(run_dir, cfg)
                if changed:
                    log(f"{head}: skipped, the folder holds a run with a different config"
                        f" (differs in: {', '.join(changed)})")
                    outcome["failed"].append(run_dir)
                    continue
                if is_finished(run_dir, cfg):
                    log(f"{head}: finished before, skipped")
                    outcome["skipped"].append(run_dir)
                    continue
                resume = True
            log(f"{head}: {'resuming' if resume else 'starting'} ({label}, seed {seed})")
            if cfg["parallel"]["backend"] == "ray" and not ray_started:
                ray_started = _init_ray(cfg)
                signals.reinstall()  # ray.init replaced the SIGTERM and SIGINT handlers
            t0 = time.perf_counter()
            try:
                Search(cfg, run_dir, quiet=quiet).run(resume)
            except KeyboardInterrupt:
                raise
            except (RunFolderError, CheckpointError, WriteError, ResourceError, UntrustedTask,
                    NothingTrained) as exc:  # their message says it all
                log(f"{head}: failed: {exc}")
                outcome["failed"].append(run_dir)
                continue
            except Exception as exc:  # one failed run must not end the sweep; the folder can be resumed
                log(f"{head}: failed: {type(exc).__name__}: {exc}")
                if not quiet:
                    traceback.print_exc()
                outcome["failed"].append(run_dir)
                continue
            best = _best(run_dir)
            log(f"{head}: done in {time.perf_counter() - t0:.0f}s, best fitness {best}")
            outcome["done"].append(run_dir)
    finally:
        if ray_started:
            import ray

            ray.shutdown()
    return outcome


def _init_ray(cfg: dict[str, Any]) -> bool:
    """Start (or join) the one Ray instance the sweep's runs share."""
    import logging

    return init_ray(cfg["parallel"]["address"], key="parallel.address", include_dashboard=False,
                    logging_level=logging.WARNING, log_to_driver=os.environ.get("PBT_EVO_WORKER_LOGS", "0") == "1")


def _best(run_dir: Path) -> Any:
    try:
        return json.loads((run_dir / "best" / "genome.json").read_text())["fitness"]
    except (OSError, ValueError, KeyError):
        return None


def _csv(text: str, what: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise ConfigError(f"--{what}: expected a comma-separated list, got {text!r}")
    return items


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pbt_evo.sweep", description=__doc__.splitlines()[0])
    p.add_argument("config", help="a config file, e.g. spaces/digits_hard.yaml")
    p.add_argument("--algorithms", required=True,
                   help=f"comma-separated labels: {', '.join(VARIANTS)}, each optionally + _{' / _'.join(SUFFIXES)}")
    p.add_argument("--seeds", required=True, help="comma-separated integers, e.g. 0,1,2")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key (repeatable)")
    p.add_argument("--out", help="shorthand for --set output.dir=DIR")
    p.add_argument("--name", help="shorthand for --set name=NAME (run folders are NAME_<algorithm>_s<seed>)")
    p.add_argument("--verbose", action="store_true", help="print every run's own progress")
    args = p.parse_args(argv)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    overrides = list(args.set) + [f"output.dir={args.out}"] * (args.out is not None)
    overrides += [f"name={args.name}"] * (args.name is not None)
    with signals.handled():
        try:
            algorithms = _csv(args.algorithms, "algorithms")
            try:
                seeds = [int(s) for s in _csv(args.seeds, "seeds")]
            except ValueError:
                raise ConfigError(f"--seeds: expected comma-separated integers, got {args.seeds!r}") from None
            outcome = run_sweep(args.config, algorithms, seeds, overrides, quiet=not args.verbose,
                                log=lambda s: print(s, flush=True))
        except (ConfigError, ResourceError) as exc:  # ResourceError: no cluster at parallel.address
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            return signals.report("run the same command again to continue the sweep")
    n = sum(map(len, outcome.values()))
    print(f"sweep: {len(outcome['done'])} run, {len(outcome['skipped'])} already finished,"
          f" {len(outcome['failed'])} failed of {n}")
    return 1 if outcome["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
