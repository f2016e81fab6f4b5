"""The NASWOT score against a hand-computed kernel, and the k x N -> N initialiser."""

import math
import random

import pytest
import torch
from torch import nn

from pbt_evo.naswot import (activation_codes, hamming_kernel, init_population_naswot, naswot_score, score_genome,
                            task_scorer, top_n)
from pbt_evo.space import SearchSpace, Variable


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_mlp(act: nn.Module) -> nn.Module:
    net = nn.Sequential(nn.Linear(2, 3), act)
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        net[0].bias.zero_()
    return net


X3 = torch.tensor([[1.0, 1.0], [1.0, -2.0], [-1.0, 2.0]])


def test_score_matches_hand_computed_kernel():
    # pre-activations: (1, 1, 2) -> code 111; (1, -2, -1) -> 100; (-1, 2, 1) -> 011; N_A = 3
    # Hamming distances d12 = 2, d13 = 1, d23 = 3, so K = N_A - d_H = [[3, 1, 2], [1, 3, 0], [2, 0, 3]]
    # det K = 3 * (9 - 0) - 1 * (3 - 0) + 2 * (0 - 6) = 12
    net = tiny_mlp(nn.ReLU())
    assert activation_codes(net, X3).tolist() == [[1, 1, 1], [1, 0, 0], [0, 1, 1]]
    assert hamming_kernel(activation_codes(net, X3)).tolist() == [[3, 1, 2], [1, 3, 0], [2, 0, 3]]
    assert naswot_score(net, X3) == pytest.approx(math.log(12), abs=1e-12)


def test_identical_codes_give_minus_infinity():
    net = tiny_mlp(nn.ReLU())
    assert naswot_score(net, torch.tensor([[1.0, 1.0], [2.0, 2.0]])) == -math.inf


def test_without_relu_the_sign_of_pre_activations_is_used():
    assert naswot_score(tiny_mlp(nn.Tanh()), X3) == pytest.approx(math.log(12), abs=1e-12)
    with pytest.raises(ValueError, match="no activation modules"):
        naswot_score(nn.Linear(2, 2), X3)


def test_relu_units_only_unless_all():
    net = nn.Sequential(tiny_mlp(nn.ReLU()), nn.Linear(3, 2), nn.Tanh())
    assert activation_codes(net, X3).shape == (3, 3)
    assert activation_codes(net, X3, units="all").shape == (3, 5)


def test_model_mode_is_restored():
    net = tiny_mlp(nn.ReLU()).eval()
    naswot_score(net, X3)
    assert not net.training


def test_top_n_and_k_times_n_candidates_keep_the_best():
    assert top_n([0.5, 2.0, -math.inf, 2.0, 1.0, float("nan")], 3) == [1, 3, 4]
    space = SearchSpace([Variable("a", tuple(range(5))), Variable("b", tuple(range(4)))])
    seen = []

    def score(genome, seed):
        s = genome[0] * 10 + genome[1] + (seed % 7) / 100
        seen.append((s, list(genome), seed))
        return s

    random.seed(3)
    pop = init_population_naswot(space, 4, score, k=5)
    assert len(seen) == 20 and [ind.id for ind in pop] == [0, 1, 2, 3]
    best = sorted(seen, key=lambda t: -t[0])[:4]
    assert [(list(ind), ind.seed, ind.handle.seed) for ind in pop] == [(g, s, s) for _, g, s in best]
    assert [ind.metrics["naswot"] for ind in pop] == [t[0] for t in best]


def test_digits_scored_network_is_the_trained_one(digits_task):
    x = digits_task.naswot_batch()
    assert x.shape == (64, 1, 8, 8)
    genome = [1, 4, 2, 0, 1, 2, 0, 1]
    s = score_genome(digits_task, genome, x, seed=5)
    assert math.isfinite(s) and s == score_genome(digits_task, genome, x, seed=5)
    # the FreshState of the same seed builds the very network that was scored
    from pbt_evo.handles import FreshState

    member = FreshState(5).materialise(digits_task, genome)
    assert naswot_score(member.model, x) == s
    assert task_scorer(digits_task)(genome, 5) == s


def test_toolbox_and_config_wiring(digits_task):
    from pbt_evo.cli import config
    from pbt_evo.variants import make_toolbox

    cfg = config.resolve({"task": {"target": "tasks.digits:DigitsTask"},
                          "algorithm": {"population": 6, "e_total": 2, "e_step": 1, "init": "naswot"}})
    assert cfg["algorithm"]["naswot_candidates_per_member"] == 10
    random.seed(0)
    tb = make_toolbox("pbt_nas", digits_task.space, 6, init="naswot", task=digits_task, naswot_candidates=2)
    pop = tb.population()
    assert len(pop) == 6 and all(math.isfinite(ind.metrics["naswot"]) for ind in pop)
    assert [ind.metrics["naswot"] for ind in pop] == sorted((ind.metrics["naswot"] for ind in pop), reverse=True)
    with pytest.raises(ValueError, match="pass task="):
        make_toolbox("pbt_nas", digits_task.space, 6, init="naswot")
