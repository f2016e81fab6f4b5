"""The PBT family (issue 28): continuous hyperparameters, PB2's GP explore, PB2-Mix's EXP3, FIRE-PBT's
evaluators, BG-PBT's trust region, their memories through checkpoints, and each variant from the command
line (resumed exactly after SIGKILL: tests marked slow)."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from pbt_evo.bgpbt import BGPBT, TrustRegion
from pbt_evo.cli import launch as run_cli
from pbt_evo.cli.records import individual_from_record, individual_record
from pbt_evo.exp3 import Exp3, replay
from pbt_evo.fire import Fire, best_score_difference, groups
from pbt_evo.gp import kappa, time_scale, time_varying_kernel
from pbt_evo.handles import Reinit, StoredState
from pbt_evo.individual import Individual
from pbt_evo.operators import mut_explore
from pbt_evo.pb2 import PB2
from pbt_evo.space import SearchSpace, SpaceError, Variable
from pbt_evo.variants import VARIANTS, make_toolbox

ROOT = Path(__file__).resolve().parents[1]
FAMILY = ("pb2", "pb2_mix", "fire_pbt", "bg_pbt")
LR = Variable("adam.lr", bounds=(1e-4, 1e-1), log=True, hyper=True)


def individual(genome, id, fitness=None, epochs=0):
    ind = Individual(genome, id=id, handle=StoredState({}), epochs=epochs)
    if fitness is not None:
        ind.fitness.values = (fitness,)
    return ind


# -- continuous genes ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, message", [
    (dict(bounds=(0.1, 0.01), hyper=True), "a uniform range needs [low, high] with low < high, got [0.1, 0.01]"),
    (dict(bounds=(0.0, 0.1), log=True, hyper=True), "a loguniform range needs [low, high] with 0 < low < high"),
    (dict(bounds=(0.0, math.inf), hyper=True), "a uniform range needs [low, high]"),
    (dict(bounds=(0.0, 1.0)), "architecture variables are categorical"),
    (dict(options=(1, 2), bounds=(0.0, 1.0), hyper=True), "a continuous variable (bounds) is a hyperparameter with no"),
    (dict(options=(1, 2), log=True), "log applies to a continuous variable"),
])
def test_bad_continuous_variables(kwargs, message):
    with pytest.raises(SpaceError, match=re_escape(message)):
        Variable("x", **kwargs)


def re_escape(text: str) -> str:
    import re

    return re.escape(text)


def test_continuous_genes_validate_decode_encode_sample_and_round_trip():
    space = SearchSpace([Variable("act", ("relu", "tanh")), LR, Variable("wd", bounds=(0.0, 0.01), hyper=True)])
    assert space.decode([1, 0.003, 0.0]) == {"act": "tanh", "adam.lr": 0.003, "wd": 0.0}
    assert space.encode({"act": "tanh", "adam.lr": 0.003, "wd": 0.0}) == [1, 0.003, 0.0]
    for bad, message in (([1, 0.2, 0.0], "genome[1] (adam.lr) = 0.2: must be a number in [0.0001, 0.1]"),
                         ([1.0, 0.01, 0.0], "genome[0] (act) = 1.0: must be an option index 0..1"),
                         ([1, math.nan, 0.0], "genome[1] (adam.lr) = nan")):
        with pytest.raises(SpaceError, match=re_escape(message)):
            space.validate(bad)
    assert SearchSpace.from_dict(json.loads(json.dumps(space.to_dict()))).variables == space.variables
    assert space.to_dict()["adam.lr"] == {"loguniform": [0.0001, 0.1], "owns": [], "hyper": True}
    genomes = space.sample_balanced(8, random.Random(3))
    lrs = sorted(math.log10(g[1]) for g in genomes)  # one in each eighth of [-4, -1]
    assert [math.floor((x + 4) / (3 / 8)) for x in lrs] == list(range(8))
    assert round(space.log10_size, 6) == round(math.log10(2), 6)  # continuous variables are not counted
    ind = individual([1, 0.003, 0.0], id=4, fitness=0.5)
    back = individual_from_record(json.loads(json.dumps(individual_record(ind, lambda h: "s"))), StoredState)
    assert list(back) == [1, 0.003, 0.0] and [type(g) for g in back] == [int, float, float]


def test_continuous_explore_multiplies_by_0_8_or_1_2_within_bounds():
    space = SearchSpace([Variable("act", ("relu", "tanh")), LR])
    random.seed(0)
    moves = [mut_explore(individual([1, 0.01], id=0), space, resample_probability=0.0)[0] for _ in range(1000)]
    assert all(m[0] == 1 for m in moves)  # architecture genes are never explored
    values = [m[1] for m in moves]
    assert set(values) == {0.01 * 1.2, 0.01 * 0.8}
    assert values.count(0.01 * 1.2) == 517  # seeded; expected 500
    random.seed(0)
    assert {mut_explore(individual([1, 0.1], id=0), space, 0.0)[0][1] for _ in range(50)} == {0.1, 0.1 * 0.8}
    assert {mut_explore(individual([1, 1e-4], id=0), space, 0.0)[0][1] for _ in range(50)} == {1e-4, 1e-4 * 1.2}
    random.seed(1)  # resampled: log-uniform within the bounds, a third in each decade
    resampled = [mut_explore(individual([1, 0.01], id=0), space, 1.0)[0][1] for _ in range(3000)]
    assert all(1e-4 <= v <= 0.1 for v in resampled)
    assert [sum(10 ** (k - 4) <= v < 10 ** (k - 3) for v in resampled) for k in range(3)] == [1014, 1021, 965]


def test_continuous_explore_is_ray_tunes_rule_draw_for_draw_clipped():
    """The same random stream gives Ray Tune's PBT explore of a continuous hyperparameter (its own function,
    resampling with a function of `random`), clipped to the bounds where Tune does not clip."""
    from ray.tune.schedulers.pbt import _explore

    low, high = LR.bounds

    def sample():
        return LR.from_unit(random.random())

    random.seed(5)
    tune, value = [], 0.01
    for _ in range(400):
        value = LR.clip(_explore({"lr": value}, {"lr": sample}, 0.25, (1.2, 0.8), None)[0]["lr"])
        tune.append(value)
    random.seed(5)
    ours, ind = [], individual([0.01], id=0)
    for _ in range(400):
        ind, = mut_explore(ind, SearchSpace([LR]), resample_probability=0.25)
        ours.append(ind[0])
    assert ours == tune
    assert min(ours) == low and max(ours) == high  # both bounds reached and held


def write_config(tmp_path: Path, hyperparameters, algorithm: str = "pb2", **alg) -> Path:
    cfg = {"name": "fam", "task": {"target": "tasks.mnist1d:MNIST1DTask",
                                   "args": {"channels": 4, "num_samples": 600, "batch_sizes": [50, 100]},
                                   "hyperparameters": hyperparameters},
           "algorithm": {"name": algorithm, "population": 6, "e_total": 3, "e_step": 1, **alg},
           "parallel": {"backend": "serial"}, "output": {"dir": str(tmp_path / "runs"), "tensorboard": False}}
    path = tmp_path / "fam.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("hyperparameters, message", [
    ({"adam": {"lr": {"loguniform": [0.0, 0.1]}}},
     "'task.hyperparameters.adam.lr.loguniform': a loguniform range needs [low, high] with 0 < low < high, got [0.0, 0.1]"),
    ({"adam": {"lr": {"uniform": [0.1, 0.01]}}},
     "'task.hyperparameters.adam.lr.uniform': a uniform range needs [low, high] with low < high, got [0.1, 0.01]"),
    ({"adam": {"lr": {"uniform": [0.1]}}}, "'task.hyperparameters.adam.lr.uniform': a uniform range needs [low, high]"),
    ({"adam": {"lr": {"loguniform": ["a", 1]}}}, "'task.hyperparameters.adam.lr.loguniform': a loguniform range needs"),
    ({"adam": {"lr": {"uniform": [0.1, 0.2], "log": [0.1, 1, 2]}}}, "'task.hyperparameters.adam.lr': give exactly one of"),
])
def test_bad_bounds_stop_with_one_line_and_exit_code_2(tmp_path, capsys, hyperparameters, message):
    path = write_config(tmp_path, hyperparameters)
    assert run_cli.main([str(path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("algorithm, words", [("bnao", "a one-shot search"), ("bohb", "a Ray Tune search")])
def test_a_continuous_range_is_refused_by_the_searches_over_categorical_genes(tmp_path, capsys, algorithm, words):
    path = write_config(tmp_path, {"adam": {"lr": {"loguniform": [1e-4, 0.1]}}}, algorithm=algorithm)
    assert run_cli.main([str(path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: {path}: 'algorithm.name' {algorithm} is {words} over categorical genes; adam.lr has a"
                   " continuous range: give a grid instead, e.g. {log: [low, high, 7]}\n")


# -- PB2: the GP explore ---------------------------------------------------------------------------------------
def test_the_time_varying_kernel_is_pb2s_formula():
    k = time_varying_kernel(3)
    k.set_params(k1__k1__k1__constant_value=1.7, k1__k1__k2__kernel__length_scale=time_scale(0.2),
                 k1__k2__kernel__length_scale=0.6, k2__noise_level=0.0)
    a, b = np.array([[0.1, 0.3, 0.9]]), np.array([[0.7, 0.5, 0.2]])
    want = 1.7 * (1 - 0.2) ** (0.6 / 2) * math.exp(-((0.3 - 0.5) ** 2 + (0.9 - 0.2) ** 2) / (2 * 0.6 ** 2))
    assert k(a, b)[0, 0] == pytest.approx(want, rel=1e-12)


def hand_made_history(model: PB2) -> None:
    """Four members over three generations of 2 epochs; the learning rate of member 1 and 2 is good."""
    lr = {0: 0.0002, 1: 0.003, 2: 0.01, 3: 0.08}
    f = {0: [0.20, 0.24, 0.27], 1: [0.30, 0.45, 0.58], 2: [0.28, 0.44, 0.55], 3: [0.25, 0.21, 0.22]}
    for gen in range(3):
        model.record([individual([lr[m]], id=m, fitness=f[m][gen], epochs=2 * (gen + 1)) for m in range(4)])


def test_pb2_explore_picks_the_ucb_argmax_of_the_fitted_gp():
    """On a hand-made history, PB2's child gets the learning rate that maximises GP-UCB, computed here with
    scikit-learn directly on the data prepared by hand."""
    from sklearn.gaussian_process import GaussianProcessRegressor

    model = PB2(SearchSpace([LR]))
    hand_made_history(model)
    base = individual([0.003], id=1, fitness=0.58, epochs=6)
    random.seed(0)
    child, = model.explore(base.spawn(9))

    # by hand: steps (t, f, lr) -> y per epoch, starting at t = 2 and 4; the new point starts at (6, 0.58)
    lr = {0: 0.0002, 1: 0.003, 2: 0.01, 3: 0.08}
    f = {0: [0.20, 0.24, 0.27], 1: [0.30, 0.45, 0.58], 2: [0.28, 0.44, 0.55], 3: [0.25, 0.21, 0.22]}
    steps = sorted([(2 * (g + 1), f[m][g], lr[m], (f[m][g + 1] - f[m][g]) / 2) for m in range(4) for g in range(2)],
                   key=lambda s: s[0])
    ts, fs = [s[0] for s in steps] + [6], [s[1] for s in steps] + [0.58]

    def unit(v, vs):
        return (v - min(vs)) / (max(vs) - min(vs))

    X = np.array([[unit(t, ts), unit(f0, fs), (math.log(x) - math.log(1e-4)) / (math.log(0.1) - math.log(1e-4))]
                  for t, f0, x, _ in steps])
    y = np.array([s[3] for s in steps])
    y = np.clip((y - y.mean()) / (y.std() + 1e-8), -2, 2)
    gp = GaussianProcessRegressor(time_varying_kernel(3), alpha=1e-8, n_restarts_optimizer=0).fit(X, y)
    grid = np.linspace(0, 1, 4001)
    rows = np.column_stack([np.ones_like(grid), np.full_like(grid, unit(0.58, fs)), grid])
    mean, std = gp.predict(rows, return_std=True)
    ucb = mean + kappa(len(steps)) * std
    best = grid[int(np.argmax(ucb))]

    got = LR.to_unit(child[0])
    assert abs(got - best) < 1e-3, (got, best)
    m, s = gp.predict(np.array([[1.0, unit(0.58, fs), got]]), return_std=True)
    assert m[0] + kappa(len(steps)) * s[0] >= ucb.max() - 1e-9
    assert model.rows[-1] == {"id": 9, "t": 6, "f": 0.58, "genome": [child[0]], "start": True}


def test_pb2_pending_points_spread_a_batch_and_the_first_generation_explores_as_pbt():
    model = PB2(SearchSpace([LR]))
    parent = individual([0.003], id=1, fitness=0.5, epochs=2)
    model.record([parent])
    random.seed(4)
    first, = model.explore(parent.spawn(5))
    random.seed(4)
    assert first[0] == mut_explore(parent.spawn(5), SearchSpace([LR]))[0][0]  # classic PBT's explore: no data yet
    model = PB2(SearchSpace([LR]))
    hand_made_history(model)
    base = individual([0.003], id=1, fitness=0.58, epochs=6)
    random.seed(0)
    a, = model.explore(base.spawn(9))
    b, = model.explore(base.spawn(10))
    assert len(model.pending) == 2 and a[0] != b[0]


def test_pb2_memory_resumes_to_the_same_choice():
    space = SearchSpace([LR])
    model = PB2(space)
    hand_made_history(model)
    again = PB2(space)
    again.load(json.loads(json.dumps(model.state())))
    base = individual([0.003], id=1, fitness=0.58, epochs=6)
    random.seed(7)
    x, = model.explore(base.spawn(9))
    random.seed(7)
    y, = again.explore(base.spawn(9))
    assert x[0] == y[0] and again.rows == model.rows


# -- PB2-Mix: EXP3 -------------------------------------------------------------------------------------------
def test_exp3_weights_after_known_rewards():
    gamma, alpha, k = 0.2, 0.01, 3
    bandit = replay(k, [[(0, 1.0), (1, 0.0)], [(0, 0.5), (0, 0.5), (2, 1.0)]], gamma, alpha)
    # by hand: round 1 from w = 1/3 each, p = 1/3 each; two pulls
    w = [1 / 3] * 3
    p = [1 / 3] * 3
    share = math.e * alpha / k * sum(w)
    w = [w[0] * math.exp(gamma * (1.0 / (2 * p[0])) / k) + share, w[1] + share, w[2] + share]
    w = [x / sum(w) for x in w]
    p = [(1 - gamma) * x / sum(w) + gamma / k for x in w]
    share = math.e * alpha / k * sum(w)
    w = [w[0] * math.exp(gamma * (1.0 / (3 * p[0])) / k) + share, w[1] + share,
         w[2] * math.exp(gamma * (1.0 / (3 * p[2])) / k) + share]
    w = [x / sum(w) for x in w]
    assert bandit.weights == pytest.approx(w, rel=1e-15)
    assert bandit.probabilities() == pytest.approx([(1 - gamma) * x + gamma / k for x in w], rel=1e-15)
    assert [round(x, 6) for x in bandit.weights] == [0.361167, 0.308774, 0.330059]
    random.seed(0)
    draws = [bandit.draw() for _ in range(10000)]
    assert [draws.count(a) for a in range(3)] == [3510, 3185, 3305]  # seeded; expected 3556, 3137, 3307
    with pytest.raises(ValueError, match="rewards must lie in"):
        Exp3(2).update([(0, 1.5)])


def test_pb2_mix_draws_the_categorical_gene_from_the_bandit_of_the_history():
    space = SearchSpace([Variable("batch", (50, 100, 200), hyper=True), LR])
    model = PB2(space, mix=True)
    assert (model.categorical, model.modelled) == ([0], [1])
    for gen in range(3):  # batch size 100 (option 1) improves most
        model.record([individual([b, 0.003], id=b, fitness=0.3 + 0.1 * gen * (1 + (b == 1)), epochs=2 * (gen + 1))
                      for b in range(3)])
    steps = model.steps()
    random.seed(3)
    want = replay(3, [[(s.genome[0], r) for s, r in zip(steps, [0.0, 1.0, 0.0]) if s.t == t] for t in (2, 4)]).draw()
    random.seed(3)
    assert model.bandit_draw(0, steps) == want
    random.seed(3)
    child, = model.explore(individual([1, 0.003], id=1, fitness=0.7, epochs=6).spawn(7))
    assert child[0] == want and 1e-4 <= child[1] <= 0.1


# -- FIRE-PBT --------------------------------------------------------------------------------------------------
def test_best_score_difference():
    assert round(best_score_difference([0.1, 0.3, 0.5], [0.3, 0.35, 0.4]), 12) == 0.15
    assert round(best_score_difference([0.3, 0.35, 0.4], [0.1, 0.3, 0.5]), 12) == -0.15
    assert round(best_score_difference([0.6, 0.7], [0.1, 0.2]), 12) == 0.4  # no common stretch: ranges
    assert round(best_score_difference([0.1, 0.2], [0.6, 0.7]), 12) == -0.4
    assert round(best_score_difference([0.1, 0.9], [0.5, 0.1]), 12) == 0.4  # from 0.5, one step: 0.9 against 0.5
    assert best_score_difference([0.1, 0.2], [0.3, 0.15]) == 0.0  # no common stretch, ranges overlap
    assert groups(22) == (12, 5, 5)


def test_fire_ranks_p2_by_its_evaluators_curves():
    """P2 members 4, 5, 6 were evaluated by evaluators 20, 21, 22 with the curves below; member 5's
    climbs fastest from the same fitness, member 6's slowest."""
    space = SearchSpace([LR])
    fire = Fire(space, explore=lambda c: (c,))
    curves = {20: [0.30, 0.40, 0.45], 21: [0.20, 0.35, 0.55], 22: [0.40, 0.41, 0.42]}
    for member, curve in curves.items():
        for g, f in enumerate(curve):
            fire.record([individual([0.01], id=member, fitness=f, epochs=2 * (g + 1))])
    fire.evaluated = {4: 20, 5: 21, 6: 22}
    p2 = [individual([0.01], id=m, fitness=0.3, epochs=6) for m in (4, 5, 6)]
    ranked = fire.rank_p2(p2)
    bsd = best_score_difference
    score = {m: sum(bsd(curves[e], curves[o]) for o in curves if o != e) for m, e in fire.evaluated.items()}
    # by hand: 20 vs 21: 20 starts higher, 21 reaches 0.30 at its step 1: max(0.30, 0.40) - max(0.35, 0.55) = -0.15;
    # 21 vs 22: 21 reaches 0.40 at step 2, one step: 0.55 - 0.40 = 0.15; member 5's score 0.15 + 0.15
    assert round(bsd(curves[20], curves[21]), 12) == -0.15 and round(score[5], 12) == 0.3
    assert [m.id for m in ranked] == [5, 4, 6] and sorted(score, key=score.get, reverse=True) == [5, 4, 6]


def test_fire_plans_a_generation():
    """N=8: P1 = slots 0-3, P2 = 4-5, evaluators 6-7. Generation 1 starts two evaluators on P2's members
    with P1's best's hyperparameters; P1's worst is replaced by an explored copy of its best."""
    space = SearchSpace([LR])
    fire = Fire(space, explore=lambda c: (c,))
    pop = [individual([0.001 * (i + 1)], id=i, fitness=f, epochs=2)
           for i, f in enumerate([0.5, 0.7, 0.3, 0.6, 0.4, 0.45, 0.2, 0.1])]
    random.seed(0)
    best, worst = fire.select(pop)
    assert [b.id for b in best] == [1] and sorted(w.id for w in worst) == [2, 6, 7]
    assert fire.plan[2][0] == "explore" and [p.id for p in fire.plan[2][1]] == [1]
    assert [(k, [p.id for p in ps]) for k, ps in (fire.plan[6], fire.plan[7])] == [("evaluate", [4, 1]),
                                                                                      ("evaluate", [5, 1])]
    fire.pair(best, pop[6])
    child, = fire.mate(pop[4].spawn(8), pop[1])
    assert list(child) == [0.002] and child.parents == (4, 1)  # P2 member 4's network, P1 best's learning rate
    assert fire.evaluators == [{"slot": 6, "member": None, "parent": 4, "child": 1, "t0": 2},
                               {"slot": 7, "member": None, "parent": 5, "child": 1, "t0": 2}]
    # generation 2: the evaluator in slot 6 (member 8) beats its child (member 1): member 1 becomes its copy
    pop = [individual([0.001 * (i + 1)], id=i, fitness=f, epochs=4)
           for i, f in enumerate([0.55, 0.72, 0.35, 0.65, 0.5, 0.5])] + [
        individual([0.002], id=8, fitness=0.8, epochs=4), individual([0.002], id=9, fitness=0.6, epochs=4)]
    best, worst = fire.select(pop)
    assert fire.plan[1] == ("copy", (pop[6],))
    # 9 goes on; slot 6 restarts on the P2 member evaluated longest ago (4 again), its evaluator not yet spawned
    assert [(ev["slot"], ev["member"], ev["parent"]) for ev in fire.evaluators] == [(7, 9, 5), (6, None, 4)]
    assert fire.evaluated == {4: -1, 5: 9} and fire.plan[8][0] == "evaluate"
    back = Fire(space, explore=lambda c: (c,))
    back.load(json.loads(json.dumps(fire.state())))
    assert (back.evaluators, back.evaluated, back.evaluated_at, back.rows) == (
        fire.evaluators, fire.evaluated, fire.evaluated_at, fire.rows)


# -- BG-PBT ---------------------------------------------------------------------------------------------------
def test_trust_region_expands_and_shrinks():
    tr = TrustRegion()
    for success in (True, True, True, False, False, False, False, True):
        tr.update(success, fail_tolerance=2)
    assert (tr.length, tr.successes, tr.failures) == (0.4, 1, 0)  # 0.8 -> 1.6 -> 0.8 -> 0.4
    for _ in range(10):
        tr.update(True, fail_tolerance=2)
    assert tr.length == 1.6  # at most LENGTH_MAX


def test_bg_pbt_starts_a_new_generation_of_architectures_after_patience():
    space = SearchSpace([Variable("op0", ("a", "b", "c"), owns=("x",)), Variable("op1", ("a", "b"), owns=("y",)),
                         Variable("op2", ("a", "b"), owns=("z",)), LR])
    bg = BGPBT(space, tau=0.25, patience=2)
    random.seed(0)
    for gen, fits in enumerate([[0.5, 0.4, 0.3, 0.2], [0.45, 0.4, 0.3, 0.2], [0.45, 0.4, 0.35, 0.2]]):
        pop = [individual([i % 3, 0, 1, 0.01], id=i, fitness=f, epochs=2 * (gen + 1)) for i, f in enumerate(fits)]
        best, worst = bg.select(pop)
        assert bg.renew == (gen == 2)
    assert [b.id for b in best] == [0] and [w.id for w in worst] == [1, 2, 3] and bg.generation == 1
    child, = bg.mutate(bg.pair(best, worst[0])[0].spawn(10))
    changed = [i for i in range(3) if child[i] != pop[0][i]]
    assert len(changed) == 1  # at most half of the 3 architecture genes (one)
    assert child.handle.steps == (Reinit(tuple(changed)),) and child.origin[changed[0]] == 10
    assert bg.rows[-1]["source"] == "new" and bg.rows[-1]["generation"] == 1
    back = BGPBT(space)
    back.load(json.loads(json.dumps(bg.state())))
    assert (back.generation, back.best, back.stalled, back.region, back.rows) == (
        bg.generation, bg.best, bg.stalled, bg.region, bg.rows)


# -- the registry and the command line ------------------------------------------------------------------------
def test_each_family_variant_is_one_registry_entry_with_a_memory():
    from pbt_evo.hyper import HyperparameterTask
    from tasks.mnist1d import MNIST1DTask

    task = HyperparameterTask(MNIST1DTask(channels=4, num_samples=600), hyperparameters={"adam": {"lr": {
        "loguniform": [1e-4, 0.1]}}})
    memories = {name: type(make_toolbox(name, task.space, 8, task=task).memory).__name__ for name in FAMILY}
    assert memories == {"pb2": "PB2", "pb2_mix": "PB2", "fire_pbt": "Fire", "bg_pbt": "BGPBT"}
    assert type(make_toolbox("pbt_nas", task.space, 8).memory).__name__ == "Memory"
    one = make_toolbox("pb2", task.space, 8, task=task).population()
    assert len({tuple(ind[:9]) for ind in one}) == 1  # one architecture without mixing
    mixed = make_toolbox("pb2", task.space, 8, task=task, mixing=True)
    assert mixed.mate.func.__name__ == "cx_mix" and len({tuple(ind[:9]) for ind in mixed.population()}) > 1
    assert all(VARIANTS[name].runner == "loop" for name in FAMILY)


def test_a_pb2_run_records_continuous_genes_and_checkpoints_its_memory(tmp_path):
    path = write_config(tmp_path, {"adam": {"lr": {"loguniform": [1e-4, 0.1]}}})
    assert run_cli.main([str(path), "--quiet"]) == 0
    run = tmp_path / "runs" / "fam"
    pop = [json.loads(line) for line in (run / "population.jsonl").read_text().splitlines()]
    assert all(isinstance(r["genome"][-1], float) and r["arch"]["adam.lr"] == r["genome"][-1] for r in pop)
    lineage = [json.loads(line) for line in (run / "lineage.jsonl").read_text().splitlines()]
    by = {(r["gen"], r["id"]): r for r in pop}
    for row in lineage:
        old = by[(row["gen"], row["parents"][0])]["genome"][-1]
        assert row["changes"].get("adam.lr", [old, old]) == [old, row["genome"][-1]]
    loop = json.loads(next((run / "checkpoints").glob("gen_*/loop.json")).read_text())
    rows = loop["payload"]["memory"]["rows"]
    assert len([r for r in rows if not r["start"]]) == 6 * 2 and len([r for r in rows if r["start"]]) == len(
        [r for r in lineage if r["gen"] <= 2])
    assert (run / "plots" / "hyperparameters.png").is_file()

    # replay: the best member's architecture from scratch along its schedule, beside the searched network
    from pbt_evo.cli import replay
    from pbt_evo.cli.schedule import best_member, schedule

    assert replay.main([str(run), "--seeds", "3,3"]) == 0
    record = json.loads((run / "replay.json").read_text())
    best = json.loads((run / "best" / "genome.json").read_text())
    assert record["member"] == best["id"] == best_member(run, pop)
    epochs = best["epochs"]  # the hall of fame's best state, maybe from before the last generation
    assert record["searched"] == {"fitness": best["fitness"], "test_score": best["test_score"], "epochs": epochs}
    steps = schedule(pop, lineage, best["id"], "adam.lr")[:epochs]
    assert [s[2]["adam.lr"] for s in record["schedule"]] == [s[2] for s in steps]
    assert [s[:2] for s in record["schedule"]] == [[k, k + 1] for k in range(epochs)]
    a, b = record["replayed"]
    assert a == b and 0 <= a["fitness"] <= 1 and 0 <= a["test_score"] <= 1  # a seed replays exactly


def cli(config, out, *extra):
    return [sys.executable, "-m", "pbt_evo.run", str(config), "--out", str(out), "--quiet", *extra]


@pytest.mark.slow
@pytest.mark.parametrize("name", FAMILY)
def test_each_variant_resumes_identically_after_sigkill(tmp_path, name, killed_after):
    """Two generations and more on MNIST-1D (continuous learning rate, grid batch size), killed after the
    second generation's checkpoint, resumed: the same members, genomes and fitness as without the kill."""
    path = write_config(tmp_path, {"adam": {"lr": {"loguniform": [1e-4, 0.1]}}}, algorithm=name,
                        population=8, e_total=4)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(cli(path, tmp_path / "a"), check=True, cwd=ROOT, capture_output=True, env=env)
    reached = killed_after(cli(path, tmp_path / "b"), tmp_path / "b" / "fam", "gen_00002", cwd=ROOT, env=env)
    assert reached < "gen_00004", "the run finished before it could be killed"
    resumed = subprocess.run(cli(path, tmp_path / "b")[:-1], cwd=ROOT, capture_output=True, text=True, env=env)
    assert resumed.returncode == 0 and "resuming" in resumed.stdout, resumed.stderr

    def rows(out):
        keys = ("gen", "id", "genome", "fitness", "parents")
        return [{k: json.loads(line)[k] for k in keys} for line in (out / "fam" / "population.jsonl").open()]

    assert rows(tmp_path / "b") == rows(tmp_path / "a") and len(rows(tmp_path / "a")) == 32


@pytest.mark.slow
@pytest.mark.parametrize("name", FAMILY)
def test_the_hyperparameter_demo_runs_with_each_variant(tmp_path, name):
    """``python -m pbt_evo.run spaces/mnist1d_hp.yaml --set algorithm.name=<each>`` (grids only), shortened."""
    proc = subprocess.run([sys.executable, "-m", "pbt_evo.run", "spaces/mnist1d_hp.yaml", "--quiet", "--out",
                           str(tmp_path), "--set", f"algorithm.name={name}", "--set", "algorithm.e_total=6",
                           "--set", "task.args.channels=4", "--set", "output.tensorboard=false"],
                          cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "mnist1d_hp" / "best" / "genome.json").is_file()


def test_sweep_labels_of_the_family(tmp_path):
    """``pb2_mix`` is a variant, ``pb2_mixing`` is ``pb2`` with ``algorithm.mixing: true``: both round-trip."""
    from pbt_evo.cli.sweep import algorithm_label, plan

    runs = plan("spaces/mnist1d_family.yaml", ["pb2_mix", "pb2_mixing", "pb2_mix_mixing", "fire_pbt", "bg_pbt"], [0],
                [f"output.dir={tmp_path}"])
    assert [(cfg["algorithm"]["name"], cfg["algorithm"]["mixing"], algorithm_label(cfg)) for _, _, cfg, _ in runs] == [
        ("pb2_mix", False, "pb2_mix"), ("pb2", True, "pb2_mixing"), ("pb2_mix", True, "pb2_mix_mixing"),
        ("fire_pbt", False, "fire_pbt"), ("bg_pbt", False, "bg_pbt")]


@pytest.mark.parametrize("algorithm, extra, message", [
    ("fire_pbt", {"population": 3}, "'algorithm.population' 3: fire_pbt needs at least 4 (two P1 members, one P2"
                                    " member, one evaluator)"),
    ("pbt_nas", {"mixing": True}, "'algorithm.mixing' is for pb2, pb2_mix, fire_pbt, not pbt_nas"),
    ("pb2", {"mixing": True, "population": 4}, "gives 1 parent; mixing needs at least 2"),
])
def test_family_config_errors_are_one_line(tmp_path, capsys, algorithm, extra, message):
    path = write_config(tmp_path, {"adam": {"lr": {"loguniform": [1e-4, 0.1]}}}, algorithm=algorithm, **extra)
    assert run_cli.main([str(path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_continuous_genes_train_on_real_ray_workers(tmp_path):
    """A worker warms up on a valid genome of any space (a continuous gene at its lower bound), so members
    with continuous hyperparameters train there as in-process (every member failed before)."""
    path = write_config(tmp_path, {"adam": {"lr": {"loguniform": [1e-4, 0.1]}}}, e_total=2)
    proc = subprocess.run([sys.executable, "-m", "pbt_evo.run", str(path), "--quiet", "--set", "parallel.backend=ray",
                           "--set", "parallel.workers=2"], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    run = tmp_path / "runs" / "fam"
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [row["failed"] for row in log] == [0, 0] and not (run / "errors.log").exists()
    pop = [json.loads(line) for line in (run / "population.jsonl").read_text().splitlines()]
    assert len(pop) == 12 and all(isinstance(r["genome"][-1], float) and 0 <= r["fitness"] <= 1 for r in pop)
