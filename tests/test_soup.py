"""Model soups: exact averaging rules and the greedy selection."""

import numpy as np
import pytest
import torch

from pbt_evo.soup import average_states, greedy_soup


def state(seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"conv.weight": torch.randn(4, 3, generator=g), "bn.running_mean": torch.randn(4, generator=g),
            "bn.num_batches_tracked": torch.tensor(10 + seed), "head.weight": torch.randn(2, 4, generator=g)}


def test_soup_of_identical_members_equals_each_member():
    a = state(0)
    for n in (1, 2, 3, 7):
        soup = average_states([{k: v.clone() for k, v in a.items()} for _ in range(n)])
        for k in a:
            assert torch.equal(soup[k], a[k]) and soup[k].dtype == a[k].dtype, (n, k)


def test_average_of_two_is_the_elementwise_mean():
    a, b = state(0), state(1)
    soup = average_states([a, b])
    for k in ("conv.weight", "bn.running_mean", "head.weight"):
        assert torch.allclose(soup[k], (a[k] + b[k]) / 2, atol=1e-7, rtol=0)


def test_integer_buffers_are_the_best_members():
    a, b, c = state(0), state(1), state(2)
    assert int(average_states([a, b, c])["bn.num_batches_tracked"]) == 10
    assert int(average_states([c, a])["bn.num_batches_tracked"]) == 12


def test_numpy_states_are_accepted():
    a, b = state(0), state(1)
    soup = average_states([{k: v.numpy() for k, v in a.items()}, b])
    assert torch.allclose(soup["head.weight"], (a["head.weight"] + b["head.weight"]) / 2)


def test_prefixes_average_only_the_sub_network():
    a, b = state(0), state(1)
    soup = average_states([a, b], prefixes=["conv"])
    assert torch.allclose(soup["conv.weight"], (a["conv.weight"] + b["conv.weight"]) / 2)
    assert torch.equal(soup["head.weight"], a["head.weight"]) and torch.equal(soup["bn.running_mean"], a["bn.running_mean"])
    # a prefix matches whole path components only: "con" is not "conv"
    assert torch.equal(average_states([a, b], prefixes=["con"])["conv.weight"], a["conv.weight"])


def test_different_architectures_are_refused():
    a, b = state(0), state(1)
    del b["head.weight"]
    with pytest.raises(ValueError, match="different keys"):
        average_states([a, b])


def test_greedy_soup_adds_only_improving_candidates():
    states = [{"w": torch.tensor([v])} for v in (1.0, 5.0, 3.0, 1.0)]
    target = 2.0
    calls = []

    def evaluate(s):
        calls.append(float(s["w"][0]))
        return -abs(float(s["w"][0]) - target)

    r = greedy_soup(states, evaluate)
    # start 1.0 (fitness -1); +5 -> 3.0 (-1, not better); +3 -> 2.0 (0, added); +1 -> 5/3 (-1/3, not)
    assert calls == pytest.approx([1.0, 3.0, 2.0, 5 / 3])
    assert r.ingredients == [0, 2] and r.fitness == 0.0 and r.best_single == -1.0 and r.gain == 1.0
    assert [h["added"] for h in r.history] == [True, False, True, False]


def test_greedy_soup_never_worse_than_the_best_member():
    rng = np.random.default_rng(0)
    states = [{"w": torch.tensor(rng.normal(size=3))} for _ in range(6)]
    r = greedy_soup(states, lambda s: -float(torch.sum(s["w"] ** 2)))
    assert r.fitness >= r.best_single
