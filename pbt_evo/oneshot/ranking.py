"""Balanced NAO's ranking experiment: do one-shot scores rank architectures as stand-alone training does?

k architectures are trained stand-alone (the ground truth) and in one supernet for E epochs, sampling
them uniformly or in proportion to their sizes; the pairwise accuracy (NAO's: the share of pairs that
both rankings order alike) and Kendall tau of one-shot against stand-alone scores measure it. One
supernet per sampling and repeat is trained once to the largest E and evaluated at each smaller E on
the way (Adam at a constant rate: continuing is training longer, as separate runs would).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..handles import FreshState
from ..rng import seed_everything
from ..task import Task
from .nao import initial_pool
from .sampling import model_size, sampling_probabilities
from .supernet import Supernet


def pairwise_accuracy(a: Sequence[float], b: Sequence[float]) -> float:
    """NAO's pairwise accuracy: over all pairs i < j, the share with ``a_i >= a_j and b_i >= b_j`` or
    ``a_i < a_j and b_i < b_j``; 1 when ``b`` orders every pair as ``a`` does, 0 when reversed.

    >>> pairwise_accuracy([1, 2, 3], [10, 20, 30]), pairwise_accuracy([1, 2, 3], [30, 20, 10])
    (1.0, 0.0)
    >>> pairwise_accuracy([1, 2, 3, 4], [1, 3, 2, 4])   # one of six pairs swapped
    0.8333333333333334
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) != len(b) or len(a) < 2:
        raise ValueError(f"need two sequences of one length >= 2, got {len(a)} and {len(b)}")
    i, j = np.triu_indices(len(a), k=1)
    same = ((a[i] >= a[j]) & (b[i] >= b[j])) | ((a[i] < a[j]) & (b[i] < b[j]))
    return float(same.mean())


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Kendall's tau-b of ``a`` and ``b`` and its two-sided p-value (scipy).

    >>> round(kendall_tau([1, 2, 3], [1, 3, 2])[0], 4)
    0.3333
    """
    from scipy.stats import kendalltau

    res = kendalltau(a, b)
    return float(res.statistic), float(res.pvalue)


def standalone_scores(task: Task, genomes: Sequence[Sequence[int]], epochs: int, seed: int = 0,
                      log: Callable[[str], None] = print) -> list[float]:
    """Each genome's fitness after ``epochs`` of stand-alone training from its own seeded initialisation."""
    rng = random.Random(seed)
    scores = []
    for n, g in enumerate(genomes, 1):
        s = rng.getrandbits(31)
        member = FreshState(s).materialise(task, g)
        seed_everything(s + 1)
        member.train(epochs)
        scores.append(float(member.evaluate()))
        log(f"stand-alone {n}/{len(genomes)}: {scores[-1]:.4f}")
    return scores


def oneshot_scores(task: Task, genomes: Sequence[Sequence[int]], sampling: str, epochs: Sequence[int],
                   seed: int = 0, steps_per_sample: int = 1) -> dict[int, list[float]]:
    """Each genome's one-shot score (evaluation with shared weights) after each supernet length in
    ``epochs``, one supernet trained on ``genomes`` with ``sampling``."""
    net = Supernet(task, seed)
    spe = net.member(genomes[0]).steps_per_epoch()
    p = sampling_probabilities([model_size(task, g) for g in genomes], sampling)
    rng = np.random.default_rng(seed)
    out, done = {}, 0
    for e in sorted(epochs):
        net.train(genomes, p, (e - done) * spe, steps_per_sample, rng)
        done = e
        out[e] = [net.evaluate(g) for g in genomes]
    return out


def rank_experiment(task: Task, archs: int, epochs: int, supernet_epochs: Sequence[int],
                    samplings: Sequence[str] = ("uniform", "proportional"), repeats: int = 1, seed: int = 0,
                    log: Callable[[str], None] = print) -> dict[str, Any]:
    """The whole experiment: ``archs`` random architectures, their stand-alone scores after ``epochs``,
    and per sampling, repeat and supernet length their one-shot scores, pairwise accuracy and Kendall tau.

    >>> from tasks.digits import DigitsTask
    >>> out = rank_experiment(DigitsTask(channels=4), 3, 1, [1], samplings=["uniform"], log=lambda s: None)
    >>> sorted(out["results"][0])
    ['epochs', 'kendall_p', 'kendall_tau', 'oneshot', 'pairwise_accuracy', 'repeat', 'sampling']
    """
    genomes = initial_pool(task, archs, random.Random(seed))
    truth = standalone_scores(task, genomes, epochs, seed, log)
    results = []
    for sampling in samplings:
        for r in range(repeats):
            for e, scores in oneshot_scores(task, genomes, sampling, supernet_epochs, seed + 1 + r).items():
                tau, p = kendall_tau(truth, scores)
                results.append({"sampling": sampling, "repeat": r, "epochs": e, "oneshot": scores,
                                "pairwise_accuracy": pairwise_accuracy(truth, scores), "kendall_tau": tau,
                                "kendall_p": p})
                log(f"{sampling}, repeat {r}, {e} supernet epochs: pairwise accuracy"
                    f" {results[-1]['pairwise_accuracy']:.3f}, Kendall tau {tau:.3f}")
    return {"genomes": genomes, "params": [model_size(task, g) for g in genomes], "standalone": truth,
            "standalone_epochs": epochs, "results": results}
