"""Balanced NAO (issue 21): the supernet's weight bank, size-proportional sampling, NAO's controller,
the budget rule, and the bnao / nao run end to end."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from pbt_evo.objectives import count_params
from pbt_evo.oneshot import Supernet, model_size, sampling_probabilities
from pbt_evo.oneshot.budget import Budget, BudgetError
from pbt_evo.oneshot.controller import ascend, fit, new_controller, propose
from pbt_evo.oneshot.sampling import draw
from tasks.digits import DigitsTask
from tasks.mnist1d import MNIST1DTask


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: these networks are tiny, and two threads on a busy machine are many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def mnist1d():
    return MNIST1DTask(channels=4)


# conv3 / identity / resblock3 / sepconv5 cells; genome B differs from A in op0, op1 and op3
A = [1, 0, 7, 6, 0, 1, 2, 3, 0]
B = [2, 5, 7, 0, 0, 1, 2, 3, 1]


def test_one_step_writes_back_exactly_the_trained_tensors(mnist1d):
    net = Supernet(mnist1d, seed=0)
    net.step(B, steps=2, seed=1)  # the bank now holds B's options too
    before = {k: t.clone() for k, t in net.bank.tensors.items()}
    net.step(A, steps=3, seed=2)
    trained = net.member(A).model.state_dict()
    keys_a = net.bank.keys_of(A, net.member(A).model)
    # A's options (and the shared stem and head): the bank holds exactly the member's trained tensors
    for name, key in keys_a.items():
        assert torch.equal(net.bank.tensors[key], trained[name]), name
    changed = [name for name, key in keys_a.items() if key in before and not torch.equal(before[key], trained[name])]
    assert "stem.0.weight" in changed and "head.weight" in changed  # shared layers, trained by B then A
    assert "cells.2.op.body.0.weight" in changed  # A and B share op2 = resblock3
    new = [name for name, key in keys_a.items() if key not in before]
    assert sorted(new) == ["cells.0.op.bias", "cells.0.op.weight", "cells.3.op.0.bias", "cells.3.op.0.weight",
                           "cells.3.op.1.bias", "cells.3.op.1.weight"]  # A's conv3 at op0, sepconv5 at op3
    # options A does not use: unchanged, to the bit
    others = set(before) - set(keys_a.values())
    assert {k[:2] for k in others} == {("op0", 2), ("op1", 5)}
    for key in others:
        assert torch.equal(net.bank.tensors[key], before[key]), key
    # the Adam moments follow the parameters into the bank
    opt = net.member(A).optimizers["adam"]
    p = dict(net.member(A).model.named_parameters())["stem.0.weight"]
    saved = net.bank.optim[("adam", keys_a["stem.0.weight"])]
    assert torch.equal(saved["exp_avg"], opt.state[p]["exp_avg"]) and int(saved["step"]) == 5
    assert net.steps_done == 5


def test_loading_puts_the_bank_tensors_into_another_architecture(mnist1d):
    net = Supernet(mnist1d, seed=0)
    net.step(A, steps=2, seed=1)
    shared = net.bank.tensors[(None, None, "stem.0.weight", (4, 1, 5))]
    net.evaluate(B)
    assert torch.equal(net.member(B).model.state_dict()["stem.0.weight"], shared)
    # B's conv5 at op0 is a bank entry of its own, taken from B's fresh member when first seen
    assert net.bank.key(B, "cells.0.op.weight", (4, 4, 5)) == ("op0", 2, "cells.0.op.weight", (4, 4, 5))
    assert ("op0", 1, "cells.0.op.weight", (4, 4, 3)) in net.bank.tensors  # A's conv3, trained


def test_model_size_is_the_initialised_networks_parameter_count(mnist1d):
    for g in (A, B, [0] * 9):
        assert model_size(mnist1d, g) == count_params(mnist1d.build_model(g))
    # stem 24 + head 50; conv3 52, resblock3 2 x 52 + BN 8, sepconv5 24 + 20, conv5 84, dilconv3_d4 52
    assert [model_size(mnist1d, g) for g in (A, B, [0] * 9)] == [74 + 52 + 112 + 44, 74 + 84 + 52 + 112, 74]


def test_proportional_sampling_frequencies_match_the_sizes(mnist1d):
    rng = random.Random(0)
    pool = [[0] * 9] + [mnist1d.space.sample(rng) for _ in range(7)]  # identity cells: the smallest
    sizes = np.array([model_size(mnist1d, g) for g in pool])
    n = 20000
    for sampling in ("proportional", "uniform"):
        p = sampling_probabilities(sizes, sampling)
        gen = np.random.default_rng(1)
        counts = np.bincount([draw(p, gen) for _ in range(n)], minlength=len(pool))
        expected_prop = n * sizes / sizes.sum()
        pvalue = chisquare(counts, expected_prop).pvalue
        if sampling == "proportional":
            assert pvalue > 0.01, (counts, expected_prop)
        else:  # uniform draws are far from the sizes (they differ by up to 5x here)
            assert pvalue < 1e-6
            assert chisquare(counts).pvalue > 0.01
    assert sizes.max() / sizes.min() > 5


@pytest.mark.parametrize("cell,epochs", [("mlp", 100), ("lstm", 200)])
def test_encoder_decoder_reconstructs_its_training_architectures(cell, epochs):
    space = DigitsTask(channels=4).space  # 8 variables, 48,000 architectures
    rng = random.Random(0)
    genomes = [space.sample(rng) for _ in range(40)]
    scores = [rng.random() for _ in genomes]
    ctl = new_controller([v.n_options for v in space], seed=0, cell=cell)
    result = fit(ctl, genomes, scores, epochs=epochs, seed=0)
    assert result.reconstructed == 1.0  # all 40 decoded exactly
    assert result.mse < 0.01


def test_a_gradient_step_on_the_embedding_raises_the_predicted_score():
    space = DigitsTask(channels=4).space
    rng = random.Random(1)
    genomes = [space.sample(rng) for _ in range(30)]
    ctl = new_controller([v.n_options for v in space], seed=0)
    fit(ctl, genomes, [sum(g) for g in genomes], epochs=50, seed=0)
    e = ctl.encode(genomes).detach()
    before = ctl.predict(e).detach()
    after = ctl.predict(ascend(ctl, e, eta=0.05)).detach()
    assert bool((after > before).all())
    new = propose(ctl, genomes[:10], eta=1.0, known=[tuple(g) for g in genomes])
    assert new and all(tuple(g) not in {tuple(x) for x in genomes} for g in new)
    for g in new:
        space.validate(g)


def test_budget_rule_arithmetic():
    b = Budget(population=8, e_total=24, standalone=2, standalone_epochs=24)
    assert (b.total, b.supernet_epochs, b.supernet_steps(30), b.as_epochs(144 + 24)) == (192, 144, 4320, 21.0)
    assert Budget(2, 3, 1, 5).supernet_epochs == 1
    with pytest.raises(BudgetError, match=r"8 stand-alone networks x 24 epochs use the whole budget of 8 x 24 = 192"):
        Budget(8, 24, 8, 24)
    with pytest.raises(BudgetError, match="standalone must be an integer >= 1"):
        Budget(8, 24, 0, 24)
