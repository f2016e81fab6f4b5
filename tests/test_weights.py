"""Weight inheritance: exact arithmetic of shrink-perturb, SEARL mutation bounds, optimizer policy."""

import numpy as np
import pytest
import torch

from pbt_evo.handles import Inherit, MixedState, StoredState, capture, restore
from pbt_evo.space import SearchSpace, Variable
from pbt_evo.weights import (InheritanceError, inherit_model, inherit_optimizer, load_optimizer_state_by_name,
                             optimizer_state_by_name, searl_candidates, searl_weight_mutation, shrink_perturb)
from tasks.digits import DigitsTask


def trained_member(task, genome, seed, steps=3):
    torch.manual_seed(seed)
    member = task.build(genome)
    member.train(1) if steps else None
    return member


def test_shrink_perturb_exact_and_integers_copied():
    donor = torch.tensor([1.0, -2.0, 3.0])
    fresh = torch.tensor([0.5, 0.5, -10.0])
    assert torch.equal(shrink_perturb(donor, fresh), 0.4 * donor + 0.1 * fresh)
    assert torch.equal(shrink_perturb(donor, fresh, 1.0, 0.0), donor)
    assert torch.equal(shrink_perturb(donor, fresh, 0.0, 1.0), fresh)
    counts = torch.tensor(17)
    assert torch.equal(shrink_perturb(counts, torch.tensor(0)), counts)
    with pytest.raises(InheritanceError, match="shape"):
        shrink_perturb(torch.zeros(2), torch.zeros(3))


@pytest.fixture(scope="module")
def parents():
    task = DigitsTask()
    # op0 differs (conv3x3 vs resblock with BatchNorm), op1 same, op2 differs
    base = trained_member(task, [1, 2, 3, 0, 1, 2, 0, 1], seed=1)
    donor = trained_member(task, [4, 2, 0, 1, 1, 0, 1, 2], seed=2)
    return task, base, donor


def test_taken_layers_are_shrink_perturbed_rest_is_base(parents):
    task, base, donor = parents
    child_genome = [4, 2, 3, 0, 1, 2, 0, 1]  # op0 from the donor
    torch.manual_seed(99)
    fresh = task.build(child_genome).model.state_dict()
    b, d = base.model.state_dict(), donor.model.state_dict()
    child = inherit_model(b, d, fresh, task.space, taken=[0, 1])
    assert set(child) == set(fresh)
    n_taken = 0
    for key, value in child.items():
        owner = task.space.owner(key)
        if owner in (0, 1):
            n_taken += 1
            if d[key].is_floating_point():
                assert torch.equal(value, 0.4 * d[key] + 0.1 * fresh[key]), key
            else:  # BatchNorm's num_batches_tracked: copied, never shrink-perturbed
                assert torch.equal(value, d[key]) and d[key].item() == 20
        else:
            assert torch.equal(value, b[key]), key
    assert n_taken == 2 + 7 + 2  # op1: conv5x5 (w, b); op0: resblock (2 convs, BN with 5 entries)


def test_p0_child_equals_base_bit_for_bit(parents):
    task, base, donor = parents
    state = capture(base)
    recipe = MixedState(StoredState(state), (Inherit(StoredState(capture(donor)), ()),), seed=5)
    child = recipe.materialise(task, [1, 2, 3, 0, 1, 2, 0, 1])
    for key, value in base.model.state_dict().items():
        assert torch.equal(child.model.state_dict()[key], value)
    got = optimizer_state_by_name(child.optimizers["adam"], child.model)
    want = optimizer_state_by_name(base.optimizers["adam"], base.model)
    assert got["state"].keys() == want["state"].keys()
    for name in want["state"]:
        for k in want["state"][name]:
            np.testing.assert_array_equal(got["state"][name][k], want["state"][name][k])


def test_ownership_error_names_the_key():
    space = SearchSpace([Variable("width", (8, 16))])  # owns nothing, yet changes the head's shape
    with pytest.raises(InheritanceError, match=r"'head.w'.*owned by no variable"):
        inherit_model({"head.w": torch.zeros(8)}, None, {"head.w": torch.zeros(16)}, space)


def test_searl_changes_at_most_ten_percent_of_each_chosen_tensor(parents):
    task, base, _ = parents
    state = base.model.state_dict()
    candidates = searl_candidates(base.model)
    assert candidates and all(state[k].dim() > 1 for k in candidates)
    chosen_counts = []
    for seed in range(30):
        new, changed = searl_weight_mutation(state, candidates, torch.Generator().manual_seed(seed))
        assert 1 <= len(changed) <= len(candidates)
        chosen_counts.append(len(changed))
        for key in state:
            diff = int((new[key] != state[key]).sum())
            if key in changed:
                assert diff <= changed[key] <= 0.1 * state[key].numel()
            else:
                assert diff == 0 and new[key] is state[key] or torch.equal(new[key], state[key])
    assert len(set(chosen_counts)) > 1  # the number of mutated tensors varies


def test_searl_constants_on_a_large_tensor():
    w = torch.full((200, 500), 2.0)
    new, changed = searl_weight_mutation({"w": w}, ["w"], torch.Generator().manual_seed(3))
    delta = (new["w"] - w)[new["w"] != w]
    assert len(delta) == changed["w"]
    small = delta.abs() < 2.0  # N(0, (0.1*2)^2) steps are < 2 with overwhelming probability
    assert 0.85 < small.float().mean() < 0.95  # ~90% normal mutations (+ some super/reset that land small)
    assert new["w"].abs().max() <= 1e6


def test_optimizer_state_by_name_survives_reordering():
    a = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 3))
    opt = torch.optim.Adam(a.parameters())
    a(torch.ones(1, 3)).sum().backward()
    opt.step()
    named = optimizer_state_by_name(opt, a)
    # a new optimizer whose parameter order is reversed still gets each layer's own moments
    b = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 3))
    b.load_state_dict(a.state_dict())
    opt_b = torch.optim.Adam(list(b.parameters())[::-1])
    load_optimizer_state_by_name(opt_b, b, named)
    for name, p in b.named_parameters():
        np.testing.assert_array_equal(opt_b.state[p]["exp_avg"].numpy(), named["state"][name]["exp_avg"])


def test_optimizer_policy_reset_and_donor():
    space = SearchSpace([Variable("l0", ("a", "b"), owns=("l0",)), Variable("l1", ("a",), owns=("l1",))])
    base = {"state": {"l0.w": {"m": 1}, "l1.w": {"m": 1}}, "groups": [{"lr": 0.1}]}
    donor = {"state": {"l0.w": {"m": 2}, "l1.w": {"m": 2}}, "groups": [{"lr": 0.5}]}
    reset = inherit_optimizer(base, donor, space, taken=[0])
    assert reset == {"state": {"l1.w": {"m": 1}}, "groups": [{"lr": 0.1}]}
    taken = inherit_optimizer(base, donor, space, taken=[0], policy="donor")
    assert taken["state"] == {"l0.w": {"m": 2}, "l1.w": {"m": 1}}
    reinit = inherit_optimizer(base, donor, space, taken=[0], reinit=[1], policy="donor")
    assert reinit["state"] == {"l0.w": {"m": 2}}
    with pytest.raises(ValueError, match="allowed values are reset, donor"):
        inherit_optimizer(base, donor, space, policy="position")


def test_capture_restore_roundtrip(parents):
    task, base, _ = parents
    state = capture(base)
    torch.manual_seed(123)
    other = task.build([1, 2, 3, 0, 1, 2, 0, 1])
    restore(other, state)
    assert other.evaluate() == base.evaluate()


@pytest.mark.parametrize("coefs", [(1.0, 0.0), (0.0, 1.0)])
def test_ablation_coefficients_through_the_child_recipe(parents, coefs):
    task, base, donor = parents
    genome = [4, 2, 0, 0, 1, 2, 0, 1]  # op0 and op2 from the donor
    recipe = MixedState(StoredState(capture(base)), (Inherit(StoredState(capture(donor)), (0, 2), coefs),), seed=11)
    child = recipe.materialise(task, genome).model.state_dict()
    torch.manual_seed(11)
    fresh = task.build(genome).model.state_dict()
    d = donor.model.state_dict()
    for key in child:
        if task.space.owner(key) in (0, 2) and child[key].is_floating_point():
            assert torch.equal(child[key], d[key] if coefs == (1.0, 0.0) else fresh[key]), key
