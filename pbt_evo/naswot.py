"""A training-free initial population: the NASWOT score (Mellor et al., *Neural Architecture Search
without Training*, 2021) and an initialiser that keeps the best-scored N of k x N candidate genomes.

The score of an untrained network on one minibatch of B inputs: every rectified unit gives a binary
code per input (1 where its pre-activation is positive). With ``c_i`` the code of input ``i`` over all
``N_A`` units, the kernel is ``K_H[i, j] = N_A - d_H(c_i, c_j)`` (``d_H``: Hamming distance), i.e. the
number of units on which two inputs agree, and the score is ``log |det K_H|``. A kernel close to
diagonal (inputs in different linear regions) scores higher; the paper finds it correlates with
trained accuracy.

Units: forward hooks on ReLU-like modules (``nn.ReLU``, ``ReLU6``, ``LeakyReLU``, ``PReLU``, ``RReLU``,
``Hardtanh`` is not one). A network without any ReLU-like module (e.g. only Tanh or Swish) would have no
units; then, and with ``units="all"``, the sign of the pre-activation of every activation module
(ReLU-like plus Tanh, Sigmoid, SiLU, GELU, ELU, Softplus, Mish, Hardswish, ...) is used instead: the
same binary "which side of zero" code, though for smooth activations it no longer identifies an exact
linear region. Functional activations (``torch.relu`` called in ``forward``) are invisible to hooks.

Networks are scored in train mode under ``torch.no_grad()``, as in the authors' code: BatchNorm then
normalises with the minibatch's statistics rather than its fresh running estimates (mean 0, var 1).

>>> # toolbox.register("population", init_population_naswot, space, 12, task_scorer(task), k=10)
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .individual import Individual
from .space import Genome, SearchSpace

RELU_LIKE: tuple[type[nn.Module], ...] = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU)
OTHER_ACTIVATIONS: tuple[type[nn.Module], ...] = (nn.Tanh, nn.Sigmoid, nn.SiLU, nn.GELU, nn.ELU, nn.SELU, nn.CELU,
                                                  nn.Softplus, nn.Mish, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh,
                                                  nn.Softsign, nn.Tanhshrink, nn.LogSigmoid)
UNITS = ("relu", "all")


def activation_codes(model: nn.Module, x: torch.Tensor, units: str = "relu") -> torch.Tensor:
    """Binary codes (B, N_A) of ``x``'s minibatch: 1 where a unit's pre-activation is > 0.

    ``units="relu"`` hooks ReLU-like modules (falls back to all activation modules when there are
    none); ``"all"`` hooks every activation module. The model is run once, in train mode, without grad.

    >>> net = nn.Sequential(nn.Linear(1, 2), nn.ReLU())
    >>> with torch.no_grad(): _ = net[0].weight.copy_(torch.tensor([[1.0], [-1.0]])), net[0].bias.zero_()
    >>> activation_codes(net, torch.tensor([[2.0], [-3.0]])).tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    if units not in UNITS:
        raise ValueError(f"units must be one of {UNITS}, got {units!r}")
    kinds = RELU_LIKE if units == "relu" else RELU_LIKE + OTHER_ACTIVATIONS
    modules = [m for m in model.modules() if isinstance(m, kinds)]
    if not modules and units == "relu":  # no rectified units: use the sign of every activation's input
        modules = [m for m in model.modules() if isinstance(m, RELU_LIKE + OTHER_ACTIVATIONS)]
    if not modules:
        raise ValueError("the network has no activation modules (nn.ReLU, nn.Tanh, ...) to score")
    codes: list[torch.Tensor] = []

    def hook(_module: nn.Module, inputs: tuple[torch.Tensor, ...], _output: Any) -> None:
        codes.append((inputs[0].detach().flatten(1) > 0).to(torch.float64))

    handles = [m.register_forward_hook(hook) for m in modules]
    was_training = model.training
    try:
        model.train()
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return torch.cat(codes, dim=1)


def hamming_kernel(codes: torch.Tensor) -> torch.Tensor:
    """``K_H[i, j] = N_A - d_H(c_i, c_j)``: the number of units on which inputs i and j agree.

    >>> hamming_kernel(torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])).tolist()
    [[3.0, 1.0], [1.0, 3.0]]
    """
    c = codes.to(torch.float64)
    return c @ c.T + (1 - c) @ (1 - c).T


def naswot_score(model: nn.Module, x: torch.Tensor, units: str = "relu") -> float:
    """``log |det K_H|`` of ``model`` on the minibatch ``x`` (``-inf`` when two inputs share a code).

    >>> net = nn.Sequential(nn.Linear(1, 2), nn.ReLU())
    >>> with torch.no_grad(): _ = net[0].weight.copy_(torch.tensor([[1.0], [-1.0]])), net[0].bias.zero_()
    >>> naswot_score(net, torch.tensor([[2.0], [-3.0]]))  # K = [[2, 0], [0, 2]]: log 4
    1.3862943611198906
    """
    k = hamming_kernel(activation_codes(model, x, units))
    sign, logabsdet = torch.linalg.slogdet(k)
    return float(logabsdet) if float(sign) != 0 else -math.inf


def score_genome(task: Any, genome: Sequence[int], x: torch.Tensor, seed: int, units: str = "relu") -> float:
    """The NASWOT score of ``task``'s network for ``genome`` initialised under ``seed`` (the same
    initialisation a :class:`~pbt_evo.handles.FreshState` of that seed gives the member)."""
    from .handles import seed_everything

    seed_everything(seed)
    return naswot_score(task.build_model(list(genome)), x, units)


def top_n(scores: Sequence[float], n: int) -> list[int]:
    """Indices of the ``n`` highest scores, best first; ties keep the earlier candidate.

    >>> top_n([0.5, 2.0, -math.inf, 2.0, 1.0], 3)
    [1, 3, 4]
    """
    order = sorted(range(len(scores)), key=lambda i: (-scores[i] if not math.isnan(scores[i]) else math.inf, i))
    return order[:n]


def init_population_naswot(space: SearchSpace, n: int, score: Callable[[Genome, int], float], k: int = 10,
                           container: type[Individual] = Individual) -> list[Individual]:
    """``n`` individuals: the best-scored of ``k * n`` balanced candidate genomes, each with the seed it
    was scored under (so the network that trains is the network that was scored).

    ``score(genome, seed)`` is e.g. ``lambda g, s: score_genome(task, g, task.naswot_batch(), s)``.
    Uses the ``random`` module (like DEAP's initialisers); ``metrics["naswot"]`` holds the score.

    >>> from pbt_evo.space import Variable
    >>> space = SearchSpace([Variable("a", (0, 1, 2, 3))])
    >>> pop = init_population_naswot(space, 2, lambda g, s: float(g[0]), k=2)
    >>> sorted(ind[0] for ind in pop), [ind.id for ind in pop]
    ([2, 3], [0, 1])
    """
    if k < 1:
        raise ValueError(f"k (candidates per member) must be >= 1, got {k}")
    genomes = space.sample_balanced(k * n)
    seeds = [random.getrandbits(31) for _ in genomes]
    scores = [float(score(g, s)) for g, s in zip(genomes, seeds)]
    from .handles import FreshState

    pop = []
    for i, j in enumerate(top_n(scores, n)):
        ind = container(genomes[j], id=i, handle=FreshState(seeds[j]), seed=seeds[j])
        ind.metrics = {"naswot": scores[j]}
        pop.append(ind)
    return pop


def task_scorer(task: Any, units: str = "relu") -> Callable[[Genome, int], float]:
    """``score(genome, seed)`` for :func:`init_population_naswot` from a task's ``naswot_batch()``."""
    x = task.naswot_batch()
    if x is None:
        raise ValueError(f"{type(task).__name__} has no naswot_batch(): implement Task.naswot_batch to return one"
                         " minibatch of inputs to use algorithm.init: naswot")
    return lambda genome, seed: score_genome(task, genome, x, seed, units)


# -- the correlation study: python -m pbt_evo.naswot CONFIG --archs 40 ---------------------------------
def correlate(task: Any, n_archs: int, epochs: int, seed: int = 0,
              log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Score ``n_archs`` random genomes at initialisation, train each ``epochs`` epochs, evaluate.
    Returns one record per architecture (genome, seed, scores for both unit choices, fitness)."""
    from .handles import seed_everything

    x = task.naswot_batch()
    if x is None:
        raise ValueError(f"{type(task).__name__} has no naswot_batch()")
    rng = random.Random(seed)
    rows = []
    for a in range(n_archs):
        genome, s = task.space.sample(rng), rng.getrandbits(31)
        scores = {u: score_genome(task, genome, x, s, u) for u in UNITS}
        seed_everything(s)
        member = task.build(genome)
        t0 = time.perf_counter()
        member.train(epochs)
        fitness = float(member.evaluate())
        rows.append({"genome": genome, "seed": s, "score_relu": scores["relu"], "score_all": scores["all"],
                     "fitness": fitness, "train_s": round(time.perf_counter() - t0, 3)})
        log(f"arch {a + 1}/{n_archs}: score {scores['relu']:.2f} (all units {scores['all']:.2f}) -> fitness"
            f" {fitness:.4f}")
    return rows


def kendall(rows: Sequence[dict[str, Any]], key: str) -> tuple[float, float]:
    """Kendall tau (and two-sided p) of ``rows[key]`` against fitness; non-finite scores rank lowest."""
    from scipy.stats import kendalltau

    s = np.array([r[key] for r in rows], dtype=float)
    s[~np.isfinite(s)] = np.nanmin(np.where(np.isfinite(s), s, np.nan)) - 1.0 if np.isfinite(s).any() else 0.0
    res = kendalltau(s, [r["fitness"] for r in rows])
    return float(res.statistic), float(res.pvalue)


def plot_correlation(rows: Sequence[dict[str, Any]], summary: dict[str, Any], path: Path) -> Path:
    """Scatter of the score (ReLU units) against trained fitness, Kendall tau in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3.4))
    finite = [r for r in rows if math.isfinite(r["score_relu"])]
    ax.scatter([r["score_relu"] for r in finite], [r["fitness"] for r in finite], s=14)
    ax.set_xlabel("NASWOT score at initialisation (log|K_H|)")
    ax.set_ylabel(f"fitness after {summary['epochs']} epochs")
    ax.set_title(f"Kendall tau {summary['kendall_tau_score_relu']:.2f} (n={len(rows)})", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pbt_evo.naswot",
                                description="Kendall tau of the NASWOT score against trained fitness on a config's task")
    p.add_argument("config", help="a config file (its task and algorithm.e_total are used)")
    p.add_argument("--archs", type=int, default=40, help="random architectures to score and train")
    p.add_argument("--epochs", type=int, help="training epochs per architecture (default: algorithm.e_total)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", default="runs/naswot_tau", help="folder for naswot.csv and naswot.json")
    args = p.parse_args(argv)
    from . import config
    from .run import TaskError, build_task

    try:
        cfg = config.load(args.config, args.set)
        task = build_task(cfg)
        torch.set_num_threads(max(1, int(cfg["parallel"]["cpus_per_worker"])))
        rows = correlate(task, args.archs, args.epochs or cfg["algorithm"]["e_total"], args.seed)
    except (config.ConfigError, TaskError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "naswot.csv", "w") as f:
        f.write("score_relu,score_all,fitness,seed,genome\n")
        for r in rows:
            f.write(f"{r['score_relu']},{r['score_all']},{r['fitness']},{r['seed']},\"{r['genome']}\"\n")
    summary = {"config": str(args.config), "archs": len(rows), "epochs": args.epochs or cfg["algorithm"]["e_total"]}
    for key in ("score_relu", "score_all"):
        tau, pval = kendall(rows, key)
        summary[f"kendall_tau_{key}"], summary[f"kendall_p_{key}"] = tau, pval
        print(f"Kendall tau ({key}) vs fitness: {tau:.3f} (p = {pval:.3g}, n = {len(rows)})")
    (out / "naswot.json").write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))
    plot_correlation(rows, summary, out / "naswot.png")
    print(f"written: {out / 'naswot.csv'}, {out / 'naswot.json'}, {out / 'naswot.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
