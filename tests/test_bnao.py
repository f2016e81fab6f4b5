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


pytestmark = pytest.mark.usefixtures("one_torch_thread")


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


def test_size_proportional_initial_population(mnist1d):
    from pbt_evo.variants import make_toolbox

    random.seed(0)
    tb = make_toolbox("pbt_nas", mnist1d.space, 8, init="size_proportional", task=mnist1d, naswot_candidates=10)
    pop = tb.population()
    assert [ind.id for ind in pop] == list(range(8)) and len({tuple(ind) for ind in pop}) == 8
    assert all(ind.metrics["params"] == model_size(mnist1d, ind) for ind in pop)
    # drawn by size: over many draws the population is larger than the candidates it is drawn from
    random.seed(1)
    sizes = [np.mean([ind.metrics["params"] for ind in tb.population()]) for _ in range(20)]
    candidates = np.mean([model_size(mnist1d, g) for g in mnist1d.space.sample_balanced(400, random.Random(2))])
    assert np.mean(sizes) > 1.05 * candidates
    with pytest.raises(ValueError, match="pass task="):
        make_toolbox("pbt_nas", mnist1d.space, 8, init="size_proportional")
    with pytest.raises(ValueError, match="one-shot search"):
        make_toolbox("bnao", mnist1d.space, 8)


def test_config_budget_error_is_one_line_exit_2(tmp_path, capsys):
    from pbt_evo.run import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text("task: {target: tasks.digits:DigitsTask, args: {channels: 4}}\n"
                   "algorithm: {name: bnao, population: 2, e_total: 2, e_step: 1, oneshot: {standalone: 2}}\n"
                   "parallel: {backend: serial}\n")
    assert main([str(cfg), "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"error: {cfg}: 'algorithm.oneshot.standalone' / 'standalone_epochs': 2 stand-alone networks x 2"
                   " epochs use the whole budget of 2 x 2 = 4 member-epochs; the supernet needs at least one")


def test_task_without_train_steps_gets_a_clear_message(tmp_path, capsys):
    from pbt_evo.run import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text("task: {target: tasks.w1:W1Task}\n"
                   "algorithm: {name: nao, population: 4, e_total: 2, e_step: 1}\n"
                   "parallel: {backend: serial}\n")
    assert main([str(cfg), "--out", str(tmp_path / "runs")]) == 2
    assert "does not implement Member.train_steps and Member.steps_per_epoch" in capsys.readouterr().err


@pytest.mark.parametrize("algorithm", ["bnao", "nao"])
def test_oneshot_run_end_to_end_is_read_by_compare(tmp_path, algorithm):
    import json

    from pbt_evo.cli.compare import load_run
    from pbt_evo.run import main
    from pbt_evo.cli.sweep import algorithm_label, is_finished
    from pbt_evo.export import load_best

    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: tiny\ntask: {target: tasks.digits:DigitsTask, args: {channels: 4}}\n"
                   f"algorithm: {{name: {algorithm}, population: 4, e_total: 2, e_step: 1,"
                   " oneshot: {candidates: 6, seeds: 2, rounds: 2, standalone: 2, controller_epochs: 200}}\n"
                   "parallel: {backend: serial}\noutput: {tensorboard: false}\n")
    assert main([str(cfg), "--out", str(tmp_path / "runs"), "--quiet"]) == 0
    run = tmp_path / "runs" / "tiny"
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    # 4 x 2 = 8 member-epochs: 8 - 2 x 2 = 4 supernet epochs (2 per round), then 2 stand-alone x 2
    assert [r["epochs"] for r in rows] == [0.5, 1.0, 1.5, 2.0]
    assert [r["phase"] for r in rows] == ["supernet", "supernet", "standalone", "standalone"]
    assert rows[0]["best"] is None and rows[0]["oneshot_supernet_steps"] == 2 * 20  # 20 minibatches an epoch
    summary = load_run(run, test=True)
    assert summary.algorithm == algorithm == algorithm_label(json.loads(json.dumps(
        {"algorithm": {"name": algorithm, "init": "balanced"}})))
    assert summary.best == max(r["best"] for r in rows[2:])
    # each stand-alone row holds the best network trained so far: --report final is the best of them
    fitnesses = [json.loads(line)["fitness"] for line in (run / "population.jsonl").read_text().splitlines()]
    assert [r["best"] for r in rows[2:]] == [fitnesses[0], max(fitnesses)]
    assert summary.final == max(fitnesses)
    _, info = load_best(run)
    assert info["fitness"] == summary.best and 0 < info["test_score"] <= 1 and summary.test == info["test_score"]
    assert is_finished(run, {"algorithm": {"e_total": 2}})
    cands = [json.loads(line) for line in (run / "candidates.jsonl").read_text().splitlines()]
    assert [c["round"] for c in cands].count(1) == 6
    assert [c["round"] for c in cands].count(2) == 6 + rows[0]["oneshot_new"]


def test_pairwise_accuracy_is_naos_and_the_rank_table_states_table_6():
    from pbt_evo.cli.oneshot import rank_table
    from pbt_evo.oneshot.ranking import kendall_tau, pairwise_accuracy

    truth = [0.9, 0.8, 0.8, 0.5]
    # NAO's rule counts a tie in the first list as ">=": the pair (0.8, 0.8) agrees when b_1 >= b_2
    assert pairwise_accuracy(truth, [4, 3, 2, 1]) == 1.0
    assert pairwise_accuracy(truth, [4, 2, 3, 1]) == 5 / 6
    assert kendall_tau([1, 2, 3, 4], [1, 2, 4, 3])[0] == pytest.approx(2 / 3)
    out = {"results": [
        {"sampling": s, "epochs": e, "repeat": r, "pairwise_accuracy": pa, "kendall_tau": tau}
        for s, e, r, pa, tau in [("proportional", 5, 0, 0.70, 0.4), ("proportional", 5, 1, 0.72, 0.44),
                                 ("uniform", 5, 0, 0.60, 0.2), ("uniform", 5, 1, 0.64, 0.3)]]}
    lines = rank_table(out).splitlines()
    assert lines[2] == "| 5 | uniform | 62.0 +- 2.8 | 0.250 +- 0.071 | 2 | 62 |"
    assert lines[3] == "| 5 | proportional | 71.0 +- 1.4 | 0.420 +- 0.028 | 2 | 69 |"
