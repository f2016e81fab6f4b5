"""NAO-WS as in Balanced NAO's Algorithm 1, on any task whose members can train a number of minibatches.

Each of L rounds:

1. train the supernet: every step samples an architecture of X_eval (the round's new candidates; in
   the first round the whole pool X) uniformly (NAO-WS, ``nao``) or in proportion to its model size
   (equation 3, ``bnao``) and trains it a few minibatches (:class:`~.supernet.Supernet`);
2. evaluate every candidate of X with the shared weights on validation data (``Member.evaluate``); the
   scores replace the older ones (the weights changed since), where Algorithm 1 only adds X_eval's;
3. train the controller (encoder, predictor, decoder; :mod:`.controller`) on X and its scores;
4. take the K best of X as seeds, move their embeddings by gradient steps of size eta on the predictor
   and decode them: the new architectures are X_eval and join X.

Steps 3-4 are skipped in the last round: their candidates would never be trained or scored. The output
is X ranked by one-shot score; the caller trains the best of them stand-alone (:mod:`pbt_evo.cli.oneshot`).

After each round, :func:`nao_state` is everything the search needs to go on (the supernet's weights and
their optimizer state, the controller, the pool and its scores, the random streams); ``nao_ws(...,
start=state)`` continues from it with the result of an uninterrupted search.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..task import Task
from .controller import CELLS, fit, new_controller, propose
from .sampling import SAMPLINGS, model_size, sampling_probabilities
from .supernet import Supernet


@dataclass(frozen=True)
class NAOSettings:
    """Algorithm 1's inputs besides the supernet's steps: ``candidates`` (|X| at the start), ``seeds``
    (K), ``rounds`` (L), ``eta``; and how a step samples, trains and how the controller is built.

    >>> NAOSettings(sampling="uniform").rounds
    3
    """

    sampling: str = "proportional"
    candidates: int = 50
    seeds: int = 10
    rounds: int = 3
    eta: float = 1.0
    steps_per_sample: int = 1
    max_steps: int = 20           # step sizes a seed may try before it counts as yielding nothing new
    controller_epochs: int = 300
    trade_off: float = 0.8        # NAO's lambda: weight of the predictor's loss against the decoder's
    cell: str = "mlp"

    def __post_init__(self) -> None:
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"sampling {self.sampling!r}: allowed values are {', '.join(SAMPLINGS)}")
        if self.cell not in CELLS:
            raise ValueError(f"cell {self.cell!r}: allowed values are {', '.join(CELLS)}")
        for name in ("candidates", "seeds", "rounds", "steps_per_sample", "max_steps", "controller_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not (self.eta > 0 and 0 <= self.trade_off <= 1):
            raise ValueError(f"eta must be > 0 and trade_off in [0, 1], got {self.eta}, {self.trade_off}")


@dataclass
class NAOResult:
    """The candidate pool X, each candidate's latest one-shot score, the rounds' records, the supernet."""

    pool: list[list[int]]
    scores: dict[tuple[int, ...], float]
    rounds: list[dict[str, Any]] = field(default_factory=list)
    supernet: Supernet | None = None
    controller: Any = None                     # NAO's controller (it keeps training from round to round)
    x_eval: list[list[int]] = field(default_factory=list)  # the candidates the next round trains
    rng: np.random.Generator | None = None     # the supernet's sampling stream

    def ranked(self) -> list[list[int]]:
        """X, best one-shot score first (ties: the earlier candidate first)."""
        return sorted(self.pool, key=lambda g: -self.scores[tuple(g)])


def initial_pool(task: Task, n: int, rng: random.Random) -> list[list[int]]:
    """``n`` distinct uniformly random genomes (fewer if the space is smaller).

    >>> from tasks.digits import DigitsTask
    >>> len(initial_pool(DigitsTask(channels=4), 5, random.Random(0)))
    5
    """
    pool: list[list[int]] = []
    seen: set[tuple[int, ...]] = set()
    for _ in range(100 * n):
        g = task.space.sample(rng)
        if tuple(g) not in seen:
            seen.add(tuple(g))
            pool.append(g)
        if len(pool) == n:
            break
    return pool


def split(total: int, parts: int) -> list[int]:
    """``total`` as ``parts`` near-equal integers (the supernet's steps per round).

    >>> split(10, 3)
    [4, 3, 3]
    """
    return [total // parts + (i < total % parts) for i in range(parts)]


def nao_ws(task: Task, settings: NAOSettings, supernet_steps: int, seed: int = 0,
           hook: Callable[[dict[str, Any], NAOResult], None] | None = None,
           start: Mapping[str, Any] | None = None) -> NAOResult:
    """Run Algorithm 1 with ``supernet_steps`` minibatches of supernet training in all; ``hook`` gets
    each round's record (round, supernet steps so far, pool size, best and median one-shot score, ...)
    and the result so far (the pool and its scores; the round's new candidates are not scored yet).
    ``start``: a :func:`nao_state` to continue from (its rounds are not run again).

    >>> from tasks.digits import DigitsTask
    >>> s = NAOSettings(candidates=6, seeds=2, rounds=2, controller_epochs=5)
    >>> res = nao_ws(DigitsTask(channels=4), s, supernet_steps=4, seed=0)
    >>> [r["supernet_steps"] for r in res.rounds], len(res.pool) >= 6, len(res.ranked()) == len(res.pool)
    ([2, 4], True, True)
    """
    net = Supernet(task, seed)
    controller = new_controller([v.n_options for v in task.space], seed, cell=settings.cell)
    if start is None:
        pool = initial_pool(task, settings.candidates, random.Random(seed))
        result = NAOResult(pool, {}, supernet=net, controller=controller, x_eval=list(pool),
                           rng=np.random.default_rng(seed))
    else:
        result = restore(start, net, controller)
    pool, scores, rng = result.pool, result.scores, result.rng
    for rnd, steps in enumerate(split(supernet_steps, settings.rounds), 1):
        if rnd <= len(result.rounds):
            continue  # done before the state it started from
        x_eval = result.x_eval
        t0 = time.perf_counter()
        p = sampling_probabilities([model_size(task, g) for g in x_eval], settings.sampling)
        trained = net.train(x_eval, p, steps, settings.steps_per_sample, rng)
        t1 = time.perf_counter()
        for g in pool:
            scores[tuple(g)] = net.evaluate(g)
        values = np.array([scores[tuple(g)] for g in pool])
        record: dict[str, Any] = {
            "round": rnd, "supernet_steps": net.steps_done, "pool": len(pool), "trained": len(x_eval),
            "trained_archs": int((trained > 0).sum()), "best": float(values.max()), "median": float(np.median(values)),
            "supernet_s": round(t1 - t0, 3), "evaluate_s": round(time.perf_counter() - t1, 3)}
        if rnd < settings.rounds:
            t2 = time.perf_counter()
            fitted = fit(controller, pool, values, settings.controller_epochs, settings.trade_off,
                         seed=seed + rnd)
            seeds = result.ranked()[:settings.seeds]
            new = propose(controller, seeds, settings.eta, known=[tuple(g) for g in pool],
                          max_steps=settings.max_steps)
            pool.extend(new)
            result.x_eval = new or list(pool)  # no new architecture: keep training the whole pool
            record.update(controller_mse=fitted.mse, controller_ce=fitted.ce, reconstructed=fitted.reconstructed,
                          new=len(new), controller_s=round(time.perf_counter() - t2, 3))
        result.rounds.append(record)
        if hook is not None:
            hook(record, result)
    return result


def nao_state(result: NAOResult) -> dict[str, Any]:
    """Everything :func:`nao_ws` needs to continue after ``result``'s last round, as plain values and
    tensors (:mod:`pbt_evo.plain`: a checkpoint's state file).

    >>> from tasks.digits import DigitsTask
    >>> task, s, states = DigitsTask(channels=4), NAOSettings(candidates=6, seeds=2, rounds=2, controller_epochs=5), []
    >>> whole = nao_ws(task, s, supernet_steps=4, hook=lambda rec, res: states.append(nao_state(res)))
    >>> rest = nao_ws(task, s, supernet_steps=4, start=states[0])  # from the end of round 1
    >>> rest.scores == whole.scores, [r["best"] for r in rest.rounds] == [r["best"] for r in whole.rounds]
    (True, True)
    """
    net = result.supernet
    return {"pool": [list(g) for g in result.pool], "x_eval": [list(g) for g in result.x_eval],
            "scores": [[list(g), float(v)] for g, v in result.scores.items()], "rounds": list(result.rounds),
            "bank": {"tensors": dict(net.bank.tensors), "optim": dict(net.bank.optim)}, "steps_done": net.steps_done,
            "controller": {k: v.detach().clone() for k, v in result.controller.state_dict().items()},
            "rng": result.rng.bit_generator.state,
            "random": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def restore(state: Mapping[str, Any], net: Supernet, controller: Any) -> NAOResult:
    """The result a :func:`nao_state` was taken from, its supernet and controller loaded into ``net`` and
    ``controller`` (fresh ones, made as the search makes them)."""
    net.bank.tensors = {tuple(k): torch.as_tensor(v) for k, v in state["bank"]["tensors"].items()}
    net.bank.optim = {tuple(k): {n: torch.as_tensor(x) if isinstance(x, np.ndarray) else x for n, x in v.items()}
                      for k, v in state["bank"]["optim"].items()}
    net.steps_done = int(state["steps_done"])
    controller.load_state_dict({k: torch.as_tensor(v) for k, v in state["controller"].items()})
    rng = np.random.default_rng()
    rng.bit_generator.state = state["rng"]
    random.setstate(state["random"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(torch.as_tensor(state["torch"]))
    pool = [list(g) for g in state["pool"]]
    return NAOResult(pool, {tuple(g): float(v) for g, v in state["scores"]}, list(state["rounds"]), net, controller,
                     [list(g) for g in state["x_eval"]], rng)
