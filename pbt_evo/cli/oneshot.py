"""One-shot searches from a config (``algorithm.name: bnao`` or ``nao``) and the ranking experiment.

``python -m pbt_evo.run`` dispatches here for bnao / nao: Algorithm 1 (:func:`pbt_evo.oneshot.nao.nao_ws`)
with the supernet's share of the budget (:mod:`pbt_evo.oneshot.budget`), then the best
``algorithm.oneshot.standalone`` candidates trained stand-alone on the config's map (as PBT-NAS's members,
:func:`pbt_evo.train.train_member`) and the best of them exported as ``best/``. The run folder holds what
``compare`` reads: ``config.yaml``, ``log.jsonl`` and ``log.csv`` (one row per round, with no fitness yet,
then one per stand-alone network, ``epochs`` counted as the member-epochs spent / N, ending at
``e_total``) and ``best/``; also ``candidates.jsonl`` (each round's pool: genome, parameters, one-shot
score), ``population.jsonl`` (the stand-alone networks) and ``plots/fitness.png``. A checkpoint is
written after every round (the supernet's weights and optimizer state, the controller, the pool and the
random streams: :func:`pbt_evo.oneshot.nao.nao_state`) and after the stand-alone networks, in the
layout of a PBT run's (:mod:`.checkpoint`): the same command continues an interrupted run with the
uninterrupted run's result.

``python -m pbt_evo.oneshot rank CONFIG --archs 50``: BNAO's ranking experiment on the config's task
(``rank.json``, ``rank.md``, ``rank.png``).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..handles import FreshState, StoredState
from ..individual import Individual
from ..oneshot import SAMPLINGS, model_size
from ..oneshot.budget import Budget
from ..oneshot.nao import NAOResult, NAOSettings, nao_state, nao_ws
from ..oneshot.ranking import rank_experiment
from ..parallel import Call, map_calls
from ..parallel.generation import record
from ..rng import kept_rng, seed_everything, skip_init
from ..task import Task
from ..train import train_member
from ..variants import variant
from . import checkpoint, config, runfolder, saved
from .config import TaskError, build_task
from .failures import FailureLog
from .plot import plot_run
from .runfolder import RunFolder, member_record
from .runlock import LOCK

# log columns of a one-shot run besides a loop's: rounds (supernet) and stand-alone networks; the files it appends to
ONESHOT_FIELDS = ["phase", "oneshot_pool", "oneshot_best", "oneshot_median", "oneshot_score"]
ONESHOT_APPENDED = ("log.jsonl", "candidates.jsonl", "population.jsonl")

# BNAO's Table 6: pairwise accuracy (%) of 50 CIFAR-10 architectures by supernet epochs and sampling
BNAO_TABLE6 = {"uniform": {5: 62, 10: 65, 20: 71, 30: 75, 50: 76}, "proportional": {5: 69, 10: 72, 20: 76, 30: 77, 50: 78}}


def steps_per_epoch(task: Task) -> int:
    """``Member.steps_per_epoch`` of the task's members, or :class:`TaskError` saying what is missing."""
    with kept_rng(), skip_init():
        seed_everything(0)
        member = task.build(task.space.sample(random.Random(0)))
    try:
        return int(member.steps_per_epoch())
    except NotImplementedError as exc:
        raise TaskError(str(exc)) from None


def settings_of(cfg: dict[str, Any]) -> NAOSettings:
    """Algorithm 1's settings from a resolved config."""
    alg = cfg["algorithm"]
    one = alg["oneshot"]
    return NAOSettings(sampling=variant(alg["name"]).options["sampling"], candidates=one["candidates"], seeds=one["seeds"],
                       rounds=one["rounds"], eta=one["eta"], steps_per_sample=one["steps_per_sample"],
                       controller_epochs=one["controller_epochs"], trade_off=one["trade_off"], cell=one["cell"])


def budget_of(cfg: dict[str, Any]) -> Budget:
    alg = cfg["algorithm"]
    one = alg["oneshot"]
    return Budget(alg["population"], alg["e_total"], one["standalone"], one["standalone_epochs"] or alg["e_total"])


def run_oneshot(cfg: dict[str, Any], run_dir: Path, task: Task, pmap: Any, resume: bool,
                say: Callable[[str], None] = print) -> int:
    """One bnao / nao run in ``run_dir`` (whose lock the caller holds), or its continuation from its last
    checkpoint; see the module docstring."""
    spe = steps_per_epoch(task)
    budget, settings = budget_of(cfg), settings_of(cfg)
    folder = RunFolder(run_dir, task.space, tensorboard=False, extra_fields=ONESHOT_FIELDS)
    found = checkpoint.load_latest(run_dir) if resume else None
    start, done = None, None
    if found is not None:
        for line in found.notices():
            print(f"warning: {line}", file=sys.stderr, flush=True)
        saved.check_resume(cfg, found.data.get("config"), found.folder, run_dir)
        checkpoint.set_aside(found.damaged)
        with checkpoint.writing(run_dir):
            torn = folder.truncate(found.data["generation"], ONESHOT_APPENDED)
        if torn:
            print(f"warning: {run_dir}: dropped the last line of {', '.join(torn)}, torn by a crash while it was"
                  " written (after the checkpoint: it is written again)", file=sys.stderr)
        if found.data.get("phase") == "standalone":
            done = found.data["halloffame"][0]
        else:
            start = found.data["population"][0].handle.load()
        after = "the stand-alone networks" if done is not None else f"round {len(start['rounds'])}"
        say(f"resuming {run_dir} after {after}")
    else:
        runfolder.clear(run_dir, keep=(LOCK,))  # a run stopped before its first checkpoint starts over
        with checkpoint.writing(run_dir):
            folder.write_config(cfg)
            (run_dir / "space.json").write_text(json.dumps(task.space.to_dict()))
        say(f"run folder {run_dir}: {cfg['algorithm']['name']} ({settings.sampling} sampling), {task.space};"
            f" budget {budget.population} x {budget.e_total} = {budget.total} member-epochs: supernet"
            f" {budget.supernet_epochs} epochs ({budget.supernet_steps(spe)} minibatches), {budget.standalone}"
            f" stand-alone x {budget.standalone_epochs}")
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, int(cfg["parallel"]["cpus_per_worker"])))
    t0 = time.perf_counter()
    try:
        if done is None:
            def on_round(rec: dict[str, Any], res: NAOResult) -> None:
                log_round(folder, task, budget, spe, rec, res, t0)
                with checkpoint.writing(run_dir):
                    holder = Individual([], id=0, handle=StoredState(nao_state(res)))
                    checkpoint.save(run_dir, rec["round"], [holder], [], keep=cfg["output"]["keep_checkpoints"],
                                    payload={"phase": "supernet", "config": cfg})
                epochs = budget.as_epochs(rec["supernet_steps"] / spe)
                say(f"round {rec['round']}/{settings.rounds} | epochs {epochs:.4g}/{budget.e_total} | pool"
                    f" {rec['pool']} | one-shot best {rec['best']:.4g} median"
                    f" {rec['median']:.4g}" + (f" | {rec['new']} new candidates" if "new" in rec else ""))

            result = nao_ws(task, settings, budget.supernet_steps(spe), seed=cfg["seed"], hook=on_round, start=start)
            done = train_standalone(cfg, folder, task, pmap, result, budget, len(result.rounds), t0, say)
        with checkpoint.writing(run_dir):
            path = folder.export_best(task, done, cfg)
        say(f"best: candidate {done.id}, stand-alone fitness {done.fitness.values[0]:.4g} -> {path}")
        for p in plot_run(run_dir):
            say(f"plot: {p}")
    finally:
        torch.set_num_threads(threads)
        folder.close()
    print(f"done: results in {run_dir}")
    return 0


def log_round(folder: RunFolder, task: Task, budget: Budget, spe: int, rec: dict[str, Any], res: NAOResult,
              t0: float) -> None:
    """A round's row in ``log.jsonl``/``log.csv`` (no fitness yet: the one-shot scores in ``oneshot_*``) and
    its scored candidates in ``candidates.jsonl``."""
    row = {"gen": rec["round"], "epochs": budget.as_epochs(rec["supernet_steps"] / spe), "best": None,
           "median": None, "worst": None, "failed": 0, "phase": "supernet",
           "wall_s": round(time.perf_counter() - t0, 3), **{f"oneshot_{k}": v for k, v in rec.items()}}
    scored = [g for g in res.pool if tuple(g) in res.scores]
    with checkpoint.writing(folder.path):
        folder.append_row(row)
        _append(folder.path / "candidates.jsonl", [
            {"gen": rec["round"], "round": rec["round"], "genome": g, "arch": task.space.decode(g),
             "params": model_size(task, g), "oneshot_score": res.scores[tuple(g)]} for g in scored])


def train_standalone(cfg: dict[str, Any], folder: RunFolder, task: Task, pmap: Any, result: NAOResult,
                     budget: Budget, rounds: int, t0: float, say: Callable[[str], None]) -> Individual:
    """Train the best ``budget.standalone`` candidates from scratch on the map; log and checkpoint them;
    return the best (:class:`~.failures.NothingTrained` when none trained)."""
    rng = random.Random(cfg["seed"])
    top = result.ranked()[:budget.standalone]
    seeds = [rng.getrandbits(31) for _ in top]
    members = [Individual(g, id=i, handle=FreshState(s), seed=s) for i, (g, s) in enumerate(zip(top, seeds))]
    train = partial(train_member, epochs=budget.standalone_epochs)
    trained = map_calls(pmap, [Call(train, ind, state=ind.handle, genome=ind, label=f"candidate {ind.id}")
                               for ind in members])
    run_dir = folder.path
    failures = FailureLog(run_dir)
    rows, best, so_far = [], None, -math.inf
    for k, (ind, res) in enumerate(zip(members, trained), 1):
        failures.note(k - 1, res)
        record(ind, res, budget.standalone_epochs)
        ind.metrics["oneshot_score"] = result.scores[tuple(ind)]
        fitness = ind.fitness.values[0]
        spent = budget.supernet_epochs + k * budget.standalone_epochs
        # "best" is the best of the networks trained so far, as a loop's row is its population's best:
        # compare's --report final then reads the best stand-alone network, not the last one
        so_far = max(so_far, fitness) if np.isfinite(fitness) else so_far
        rows.append({"gen": rounds + k, "epochs": budget.as_epochs(spent), "best": so_far if np.isfinite(so_far) else None,
                     "median": None, "worst": None, "failed": int(res.failed), "phase": "standalone",
                     "wall_s": round(time.perf_counter() - t0, 3), "oneshot_score": ind.metrics["oneshot_score"]})
        say(f"stand-alone {k}/{len(members)}: one-shot score {ind.metrics['oneshot_score']:.4g} -> fitness"
            f" {fitness:.4g}")
        if best is None or fitness > best.fitness.values[0]:
            best = ind
    with checkpoint.writing(run_dir):
        trouble = failures.generation(rounds + 1, members)  # none trained: stops here, nothing exported
        for row in rows:
            folder.append_row(row)
        _append(run_dir / "population.jsonl", [member_record(ind, task.space, rounds + 1) for ind in members])
        checkpoint.save(run_dir, rounds + len(members), members, [best], keep=cfg["output"]["keep_checkpoints"],
                        payload={"phase": "standalone", "config": cfg})
    if trouble:
        print(f"warning: stand-alone networks: {trouble}", file=sys.stderr, flush=True)
    return best


def _append(path: Path, records: Sequence[dict[str, Any]]) -> None:
    with open(path, "a") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)


# -- the ranking experiment ------------------------------------------------------------------------------
def rank_table(out: dict[str, Any]) -> str:
    """Markdown: pairwise accuracy and Kendall tau (mean +- std over repeats) by sampling and supernet
    length, next to BNAO's Table 6."""
    lines = ["| supernet epochs | sampling | pairwise accuracy (%) | Kendall tau | repeats | BNAO Table 6 (%) |",
             "|---:|---|---:|---:|---:|---:|"]
    keys = sorted({(r["epochs"], r["sampling"]) for r in out["results"]}, key=lambda k: (k[0], k[1] != "uniform"))
    for e, sampling in keys:
        rs = [r for r in out["results"] if r["epochs"] == e and r["sampling"] == sampling]
        pa = 100 * np.array([r["pairwise_accuracy"] for r in rs])
        tau = np.array([r["kendall_tau"] for r in rs])
        sd = (lambda x: f" +- {x.std(ddof=1):.1f}" if len(x) > 1 else "")
        sd_tau = f" +- {tau.std(ddof=1):.3f}" if len(tau) > 1 else ""
        paper = BNAO_TABLE6.get(sampling, {}).get(e, "")
        lines.append(f"| {e} | {sampling} | {pa.mean():.1f}{sd(pa)} | {tau.mean():.3f}{sd_tau} | {len(rs)} | {paper} |")
    return "\n".join(lines) + "\n"


def plot_rank(out: dict[str, Any], path: Path) -> Path:
    """One-shot score against stand-alone fitness, a panel per (sampling, supernet length), first repeat."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samplings = list(dict.fromkeys(r["sampling"] for r in out["results"]))
    lengths = sorted({r["epochs"] for r in out["results"]})
    fig, axes = plt.subplots(len(samplings), len(lengths), figsize=(2.8 * len(lengths) + 1, 2.7 * len(samplings)),
                             squeeze=False, sharex=True)
    size = np.array(out["params"], dtype=float)
    for i, sampling in enumerate(samplings):
        for j, e in enumerate(lengths):
            r = next(r for r in out["results"] if r["sampling"] == sampling and r["epochs"] == e and r["repeat"] == 0)
            ax = axes[i][j]
            sc = ax.scatter(out["standalone"], r["oneshot"], c=np.log10(size), s=12, cmap="viridis")
            ax.set_title(f"{sampling}, {e} supernet epochs\npairwise {100 * r['pairwise_accuracy']:.0f}%,"
                         f" tau {r['kendall_tau']:.2f}", fontsize=7)
            ax.tick_params(labelsize=6)
            if i == len(samplings) - 1:
                ax.set_xlabel("stand-alone fitness", fontsize=7)
            if j == 0:
                ax.set_ylabel("one-shot score", fontsize=7)
    fig.colorbar(sc, ax=axes, shrink=0.6, label="log10 parameters")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _ints(text: str, what: str) -> list[int]:
    try:
        values = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise config.ConfigError(f"--{what}: expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise config.ConfigError(f"--{what}: expected positive integers, got {text!r}")
    return values


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pbt_evo.oneshot", description="One-shot NAS tools")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("rank", help="BNAO's ranking experiment: one-shot vs stand-alone scores of random architectures")
    r.add_argument("config", help="a config file (its task, algorithm.e_total and parallel.cpus_per_worker are used)")
    r.add_argument("--archs", type=int, default=50, help="random architectures (k), default 50 as in BNAO")
    r.add_argument("--epochs", type=int, help="stand-alone epochs per architecture (default: algorithm.e_total)")
    r.add_argument("--supernet-epochs", default="5,10,20,30,50", help="supernet lengths, default 5,10,20,30,50")
    r.add_argument("--samplings", default="uniform,proportional", help="default uniform,proportional")
    r.add_argument("--repeats", type=int, default=1, help="supernets per sampling (other seeds), default 1")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    r.add_argument("--out", default="runs/oneshot_rank", help="folder for rank.json, rank.md, rank.png")
    args = p.parse_args(argv)
    try:
        cfg = config.load(args.config, args.set)
        lengths = _ints(args.supernet_epochs, "supernet-epochs")
        samplings = [s.strip() for s in args.samplings.split(",") if s.strip()]
        bad = [s for s in samplings if s not in SAMPLINGS]
        if bad or not samplings or args.archs < 2 or args.repeats < 1:
            raise config.ConfigError(f"--samplings must name uniform and/or proportional (got {args.samplings!r}),"
                                     f" --archs >= 2 and --repeats >= 1")
        task = build_task(cfg)
        steps_per_epoch(task)
        torch.set_num_threads(max(1, int(cfg["parallel"]["cpus_per_worker"])))
        epochs = args.epochs or cfg["algorithm"]["e_total"]
        out = rank_experiment(task, args.archs, epochs, lengths, samplings, args.repeats, args.seed,
                              log=lambda s: print(s, flush=True))
    except (config.ConfigError, TaskError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    out["config"] = str(args.config)
    (folder / "rank.json").write_text(json.dumps(out, indent=1))
    table = (f"{args.archs} random architectures of `{args.config}`, stand-alone {epochs} epochs vs one-shot"
             " (one supernet per sampling and repeat). BNAO's Table 6: 50 CIFAR-10 architectures.\n\n"
             + rank_table(out))
    (folder / "rank.md").write_text(table)
    print(table)
    print(f"written: {folder / 'rank.json'}, {folder / 'rank.md'}, {plot_rank(out, folder / 'rank.png')}")
    return 0
