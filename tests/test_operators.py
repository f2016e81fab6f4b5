"""Operators and the loop's selection, on genomes and handles only (no training)."""

import copy
import math
import random

import pytest
from deap import tools

from pbt_evo.handles import FreshState, MixedState, MutateWeights, Reinit, StoredState
from pbt_evo.individual import Individual
from pbt_evo.operators import (cx_mix, init_population, mut_searl, n_selected, pair_random, pair_self,
                               sel_truncation, sure_survivors)
from pbt_evo.space import SearchSpace, Variable


def population(values):
    pop = []
    for i, v in enumerate(values):
        ind = Individual([i % 2, 0], id=i, handle=StoredState({"id": i}))
        ind.fitness.values = (v,)
        pop.append(ind)
    return pop


@pytest.mark.parametrize("n, k", [(12, 3), (24, 6), (8, 2), (10, 3), (2, 1), (1, 0)])
def test_truncation_counts(n, k):
    assert n_selected(n, 0.25) == k
    best, worst = sel_truncation(population(range(n)), tau=0.25)
    assert len(best) == len(worst) == k
    assert [b.id for b in best] == list(range(n - 1, n - 1 - k, -1))
    assert sorted(w.id for w in worst) == list(range(k))


def test_nan_and_inf_are_worst_and_never_parents():
    pop = population([0.5, float("nan"), 0.9, float("inf"), -float("inf"), 0.7, 0.6, 0.1])
    best, worst = sel_truncation(pop, tau=0.25)
    assert [b.id for b in best] == [2, 5]
    assert {w.id for w in worst} <= {1, 3, 4}
    # more failures than parent slots: the best are only finite members
    pop = population([float("nan")] * 7 + [0.3])
    best, worst = sel_truncation(pop, tau=0.25)
    assert [b.id for b in best] == [7] and 7 not in {w.id for w in worst}


def test_sure_survivors_are_never_truncated_whatever_the_rest_scores():
    nan = float("nan")
    # N=8, 2 replaced: a finished member is sure once 2 finished members are strictly worse
    assert [i.id for i in sure_survivors(population([0.5, 0.9, 0.1]), 8)] == [1]
    assert [i.id for i in sure_survivors(population([0.5, 0.5, 0.5, 0.5]), 8)] == []  # ties are not worse
    assert [i.id for i in sure_survivors(population([nan, 0.1, 0.5, 0.7]), 8)] == [2, 3]
    assert sure_survivors(population([nan, nan, nan]), 8) == []  # a failed member is never sure
    assert [i.id for i in sure_survivors(population([0.3]), 8, tau=0)] == [0]  # nothing replaced
    # exhaustive check against the selection itself: for every finished subset of a population of 6 and
    # the worst and best scores the others could get, a sure survivor is never among the worst
    rng = random.Random(0)
    for _ in range(300):
        values = [rng.choice([0.1, 0.2, 0.3, nan]) for _ in range(6)]
        done = rng.sample(range(6), rng.randint(0, 6))
        pop = population(values)
        sure = {i.id for i in sure_survivors([pop[j] for j in done], 6, tau=0.34)}
        for rest in (-1.0, 1.0, nan):
            for j in set(range(6)) - set(done):
                pop[j].fitness.values = (rest,)
            _, worst = sel_truncation(pop, tau=0.34)
            assert not sure & {w.id for w in worst}


def test_cx_mix_takes_from_donor_with_probability_p():
    random.seed(3)
    n_vars, taken_total, trials = 20, 0, 200
    for _ in range(trials):
        a = Individual([0] * n_vars, id=1, handle=StoredState({}))
        b = Individual([1] * n_vars, id=2, handle=StoredState({}))
        a.fitness.values, b.fitness.values = (0.2,), (0.8,)  # b is fitter: base
        base, donor = pair_random([a, b])
        assert (base, donor) == (b, a)
        child, = cx_mix(base.spawn(7), donor, p=0.25)
        assert child.id == 7 and child.parents == (2, 1) and not child.fitness.valid
        assert [i for i, g in enumerate(child) if g == 0] == list(child.taken)
        assert child.origin == [1 if i in child.taken else 2 for i in range(n_vars)]
        step, = child.handle.steps
        assert isinstance(child.handle, MixedState) and child.handle.base is b.handle
        assert step.donor is a.handle and step.variables == child.taken and step.shrink_perturb == (0.4, 0.1)
        taken_total += len(child.taken)
    assert abs(taken_total / (trials * n_vars) - 0.25) < 0.02


def test_cx_mix_p0_and_ablation_coefficients():
    a, b = population([0.9, 0.1])
    child, = cx_mix(a.spawn(9), b, p=0.0, shrink_perturb=(1, 0))
    step, = child.handle.steps
    assert list(child) == list(a) and step.variables == () and step.shrink_perturb == (1.0, 0.0)


def test_pairs():
    pop = population([0.1, 0.2, 0.3])
    for _ in range(20):
        x, y = pair_random(pop)
        assert x is not y and x.score >= y.score  # the fitter first: base parent, then donor
        x, y = pair_self(pop)
        assert x is y
    with pytest.raises(ValueError, match="at least 2 parents"):
        pair_random(pop[:1])


def test_mut_searl_thirds():
    space = SearchSpace([Variable("a", (0, 1, 2), owns=("a",)), Variable("b", (0,))])
    random.seed(0)
    kinds = {"resample": 0, "weights": 0, "none": 0}
    for _ in range(600):
        ind = Individual([0, 0], id=5, handle=StoredState({}))
        ind.fitness.values = (1.0,)
        out, = mut_searl(ind, space)
        if isinstance(out.handle, StoredState):
            kinds["none"] += 1
            assert out.fitness.valid
        elif isinstance(out.handle.steps[0], Reinit):
            kinds["resample"] += 1
            assert out[0] != 0 and out.handle.steps == (Reinit((0,)),) and out.origin[0] == 5
        else:
            kinds["weights"] += 1
            assert isinstance(out.handle.steps[0], MutateWeights) and list(out) == [0, 0]
    assert all(170 < c < 230 for c in kinds.values()), kinds


def test_init_population_fresh_handles():
    space = SearchSpace([Variable("a", (0, 1)), Variable("b", (0, 1, 2, 3))])
    pop = init_population(space, 8)
    assert [ind.id for ind in pop] == list(range(8))
    assert all(isinstance(ind.handle, FreshState) and ind.handle.seed == ind.seed for ind in pop)
    assert sorted(ind[1] for ind in pop) == [0, 0, 1, 1, 2, 2, 3, 3]


def test_deap_tools_accept_individuals():
    pop = population([0.3, 0.9, 0.5])
    assert tools.selBest(pop, 1)[0].id == 1
    hof = tools.HallOfFame(1)
    hof.update(pop)
    assert hof[0].id == 1 and hof[0].handle is pop[1].handle  # cloned without copying weights
    # the same network trained further and better replaces its younger self
    older = copy.deepcopy(pop[1])
    pop[1].epochs += 2
    pop[1].fitness.values = (0.95,)
    hof.update(pop)
    assert hof[0].epochs == 2 and hof[0].fitness.values == (0.95,) and older.epochs == 0
    history = tools.History()
    history.update(pop)
    assert len(history.genealogy_history) == 3
    stats = tools.Statistics(lambda ind: ind.fitness.values[0])
    stats.register("max", max)
    assert stats.compile(pop)["max"] == 0.95


def test_pickle_keeps_bookkeeping():
    import pickle

    ind = Individual([1, 0], id=4, parents=(1, 2), handle=FreshState(7), seed=9, epochs=3)
    ind.fitness.values = (0.5,)
    back = pickle.loads(pickle.dumps(ind))
    assert (back, back.parents, back.handle, back.seed, back.fitness.values) == (ind, (1, 2), FreshState(7), 9, (0.5,))
    assert math.isclose(back.score, 0.5)
