"""Width variables: unit maps, Net2Net widening that keeps the function, narrowing that keeps the first
units, shrink-perturb and the fresh policy on adapted tensors, optimizer moments, the critic target, a
property test on the MNIST-1D width space, and declarations that do not match the model."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from pbt_evo.cli.sweep import algorithm_label, algorithm_overrides
from pbt_evo.handles import Inherit, MixedState, Reinit, StoredState, capture
from pbt_evo.operators import mut_resample
from pbt_evo.individual import Individual
from pbt_evo.rng import seed_everything
from pbt_evo.run import main
from pbt_evo.space import SearchSpace, Variable
from pbt_evo.weights import inherit_model
from pbt_evo.widths import (UnitAxis, UnitAxisError, adapt_along, check_task_widths, check_unit_axes, group_map,
                            unit_map)
from tasks.mnist1d_widths import MNIST1DWidthsTask


@pytest.fixture(scope="module")
def task() -> MNIST1DWidthsTask:
    torch.set_num_threads(1)
    return MNIST1DWidthsTask(widths=(4, 8, 16))


def genome_of(task: MNIST1DWidthsTask, ops, widths, acts=("relu", "swish", "tanh", "identity"), pool="avg"):
    values = {**{f"op{i}": o for i, o in enumerate(ops)}, **{f"act{i}": a for i, a in enumerate(acts)},
              "pool": pool, **{f"width{i}": w for i, w in enumerate(widths)}}
    return task.space.encode(values)


def trained(task, genome, seed=0, steps=5):
    """A member after ``steps`` Adam steps: BatchNorm's running statistics and Adam's moments are not
    their initial values any more."""
    seed_everything(seed)
    member = task.build(genome)
    x, y = task.data["train"]
    member.model.train()
    for s in range(steps):
        loss = nn.functional.cross_entropy(member.model(x[s * 100:(s + 1) * 100]), y[s * 100:(s + 1) * 100])
        member.optimizers["adam"].zero_grad()
        loss.backward()
        member.optimizers["adam"].step()
    return member


def resampled(parent_state, reinit, seed=11, width_policy="adapt", optimizer_policy="reset",
              shrink_perturb=(0.4, 0.1)):
    """A child recipe of one parent with some variables changed (the resample mutation's recipe). Other
    coefficients or the donor policy for the layers adapted to the new widths are those of an inheriting
    step that takes no variable (as when a mixed child's width changed)."""
    steps = (Reinit(tuple(reinit)),)
    if optimizer_policy == "donor" or tuple(shrink_perturb) != (0.4, 0.1):
        steps = (Inherit(StoredState(parent_state), (), tuple(shrink_perturb), optimizer_policy),) + steps
    return MixedState(StoredState(parent_state), steps, seed=seed, width_policy=width_policy)


def outputs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(x)


# -- pure functions -------------------------------------------------------------------------------
def test_unit_map_widens_in_balanced_rounds_and_narrows_to_the_first_units():
    m = unit_map(3, 8, seed=4)
    assert m.index[:3].tolist() == [0, 1, 2]
    assert sorted(m.index[3:6].tolist()) == [0, 1, 2]  # a whole permutation before any unit gets a third copy
    assert sorted(np.bincount(m.index.numpy()).tolist()) == [2, 3, 3]
    assert m.count.tolist() == [float(np.bincount(m.index.numpy())[i]) for i in m.index.tolist()]
    assert unit_map(4, 8, seed=9).count.tolist() == [2.0] * 8  # a multiple: every unit twice
    assert unit_map(5, 2).index.tolist() == [0, 1] and unit_map(5, 2).count.tolist() == [1.0, 1.0]
    assert torch.equal(group_map(1, "g", 3, 8).index, group_map(1, "g", 3, 8).index)
    assert not all(torch.equal(group_map(s, "g", 3, 30).index, group_map(0, "g", 3, 30).index) for s in range(1, 5))
    with pytest.raises(ValueError, match="at least one unit"):
        unit_map(0, 3)


def test_adapt_along_copies_rows_and_divides_split_columns_exactly():
    w = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    m = unit_map(3, 5, seed=0)
    i, c = m.index.tolist(), m.count.tolist()
    rows = adapt_along(w.t(), 0, m, split=False)
    assert torch.equal(rows, w.t()[i])
    cols = adapt_along(w, 1, m, split=True)
    assert torch.equal(cols, torch.tensor([[w[r, j].item() / k for j, k in zip(i, c)] for r in range(2)]))
    assert torch.equal(adapt_along(w, 1, unit_map(3, 2), split=True), w[:, :2])  # narrowing: no division
    assert torch.equal(adapt_along(torch.tensor([7, 8, 9]), 0, m, split=True), torch.tensor([7, 8, 9])[i])


class MLP(nn.Module):
    """ReLU MLP 5 -> h1 -> h2 -> 3: two width groups."""

    def __init__(self, h1: int, h2: int):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(5, h1), nn.Linear(h1, h2), nn.Linear(h2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


MLP_SPACE = SearchSpace([Variable("layers", ("mlp",), owns=("fc1", "fc2", "fc3")),
                         Variable("h1", (3, 8)), Variable("h2", (4, 6))])
MLP_AXES = {"h1": UnitAxis("h1", copy=("fc1.weight", "fc1.bias"), split=("fc2.weight",)),
            "h2": UnitAxis("h2", copy=("fc2.weight", "fc2.bias"), split=("fc3.weight",))}


def test_widening_an_mlp_keeps_the_donors_function_exactly():
    torch.manual_seed(0)
    donor, base, fresh = MLP(3, 4), MLP(8, 6), MLP(8, 6)  # the child: the donor's layers at the base's widths
    child = inherit_model(base.state_dict(), donor.state_dict(), fresh.state_dict(), MLP_SPACE, taken=[0],
                          shrink_perturb_coefs=(1.0, 0.0), axes=MLP_AXES, seed=5)
    net = MLP(8, 6)
    net.load_state_dict(child)
    x = torch.randn(64, 5)
    assert (outputs(net, x) - outputs(donor, x)).abs().max() < 1e-5
    m1, m2 = group_map(5, "h1", 3, 8), group_map(5, "h2", 4, 6)
    d = donor.state_dict()
    assert torch.equal(child["fc1.weight"], d["fc1.weight"][m1.index])
    assert torch.equal(child["fc2.weight"], d["fc2.weight"][m2.index][:, m1.index] / m1.count.float())
    assert torch.equal(child["fc3.weight"], d["fc3.weight"][:, m2.index] / m2.count.float())
    assert torch.equal(child["fc3.bias"], d["fc3.bias"])


def test_adapted_tensors_are_shrink_perturbed_or_fresh():
    torch.manual_seed(1)
    parent, fresh = MLP(3, 4), MLP(8, 4)
    p, f = parent.state_dict(), fresh.state_dict()
    m = group_map(2, "h1", 3, 8)
    child = inherit_model(p, None, f, MLP_SPACE, axes=MLP_AXES, seed=2)  # nothing taken: a resampled width
    assert torch.equal(child["fc1.weight"], 0.4 * p["fc1.weight"][m.index] + 0.1 * f["fc1.weight"])
    assert torch.equal(child["fc2.weight"], 0.4 * (p["fc2.weight"][:, m.index] / m.count.float()) + 0.1 * f["fc2.weight"])
    for key in ("fc2.bias", "fc3.weight", "fc3.bias"):  # not adapted: the parent's, bit for bit
        assert torch.equal(child[key], p[key])
    fresh_child = inherit_model(p, None, f, MLP_SPACE, axes=MLP_AXES, width_policy="fresh", seed=2)
    for key in ("fc1.weight", "fc1.bias", "fc2.weight"):
        assert torch.equal(fresh_child[key], f[key])
    assert torch.equal(fresh_child["fc3.weight"], p["fc3.weight"])
    with pytest.raises(ValueError, match="width_policy 'copy': allowed values are adapt, fresh"):
        inherit_model(p, None, f, MLP_SPACE, axes=MLP_AXES, width_policy="copy")


# -- MNIST-1D: a 1-D CNN with BatchNorm ----------------------------------------------------------
@pytest.mark.parametrize("options, before, after", [
    ((4, 8, 16), (4, 8, 4, 8), (16, 16, 8, 16)),  # multiples: every unit four / two times
    ((3, 5, 8), (3, 5, 3, 5), (8, 8, 5, 8)),      # not: some units get one copy more than others
])
def test_widening_a_cnn_with_batchnorm_keeps_its_function_in_eval_mode(options, before, after):
    task = MNIST1DWidthsTask(widths=options)
    ops = ("resblock3", "sepconv5", "conv3", "resblock3")
    parent = trained(task, genome_of(task, ops, before))
    assert parent.model.cells[0].op.body[1].running_var.std() > 0  # trained statistics, not the initial ones
    widths = [task.space.index(f"width{i}") for i in range(4)]
    child = resampled(capture(parent), widths, shrink_perturb=(1.0, 0.0)).materialise(task, genome_of(task, ops, after))
    assert child.model.cells[0].op.body[1].running_mean.shape == (after[0],)
    assert child.model.cells[3].proj.weight.shape == (after[3], after[2], 1)
    assert child.model.head.in_features == after[3]
    x = task.data["val"][0][:200]
    assert (outputs(child.model, x) - outputs(parent.model, x)).abs().max() < 1e-5


def test_narrowing_keeps_exactly_the_first_units_and_their_running_statistics(task):
    parent_genome = genome_of(task, ("conv5", "resblock3", "sepconv5", "identity"), (8, 16, 16, 8))
    parent = trained(task, parent_genome, seed=3)
    child_genome = genome_of(task, ("conv5", "resblock3", "sepconv5", "identity"), (8, 8, 4, 8))
    child = resampled(capture(parent), [task.space.index("width1"), task.space.index("width2")],
                      shrink_perturb=(1.0, 0.0)).materialise(task, child_genome)
    p, c = parent.model.state_dict(), child.model.state_dict()
    for k in ("weight", "bias", "running_mean", "running_var"):
        assert torch.equal(c[f"cells.1.op.body.1.{k}"], p[f"cells.1.op.body.1.{k}"][:8])
    assert torch.equal(c["cells.1.op.body.1.num_batches_tracked"], p["cells.1.op.body.1.num_batches_tracked"])
    assert torch.equal(c["cells.1.op.body.0.weight"], p["cells.1.op.body.0.weight"][:8, :8])
    assert torch.equal(c["cells.1.proj.weight"], p["cells.1.proj.weight"][:8])
    assert torch.equal(c["cells.2.proj.weight"], p["cells.2.proj.weight"][:4, :8])
    assert torch.equal(c["cells.2.op.0.weight"], p["cells.2.op.0.weight"][:4])  # depthwise: rows only
    assert torch.equal(c["cells.2.op.1.weight"], p["cells.2.op.1.weight"][:4, :4])
    assert torch.equal(c["cells.3.proj.weight"], p["cells.3.proj.weight"][:, :4])
    for key in ("stem.0.weight", "cells.0.op.weight", "head.weight", "head.bias"):
        assert torch.equal(c[key], p[key])


def test_optimizer_moments_of_adapted_tensors_follow_the_map_or_reset(task):
    parent_genome = genome_of(task, ("conv3", "conv3", "identity", "identity"), (4, 8, 8, 8))
    parent = trained(task, parent_genome, seed=5)
    child_genome = genome_of(task, ("conv3", "conv3", "identity", "identity"), (8, 8, 8, 8))
    state = capture(parent)
    saved = state["optim"]["adam"]["state"]
    m = group_map(11, "width0", 4, 8)
    for policy in ("donor", "reset"):
        child = resampled(state, [task.space.index("width0")], optimizer_policy=policy).materialise(task, child_genome)
        opt = child.optimizers["adam"]
        params = dict(child.model.named_parameters())
        adapted = opt.state.get(params["cells.0.op.weight"], {})
        if policy == "donor":  # copied per unit along both dims of the group, never divided
            want = torch.as_tensor(saved["cells.0.op.weight"]["exp_avg_sq"])[m.index][:, m.index]
            assert torch.equal(adapted["exp_avg_sq"], want)
            assert torch.equal(opt.state[params["cells.1.proj.weight"]]["exp_avg"],
                               torch.as_tensor(saved["cells.1.proj.weight"]["exp_avg"])[:, m.index])
        else:
            assert adapted == {} and params["cells.1.proj.weight"] not in opt.state
        kept = opt.state[params["cells.1.op.weight"]]  # width1 did not change: the parent's moments
        assert torch.equal(kept["exp_avg"], torch.as_tensor(saved["cells.1.op.weight"]["exp_avg"]))


def test_random_pairs_of_the_width_space_build_the_child_and_train_a_step(task):
    rng = random.Random(0)
    x, y = task.data["train"][0][:32], task.data["train"][1][:32]
    for trial in range(16):
        a, b = task.space.sample(rng), task.space.sample(rng)
        states = []
        for g in (a, b):
            seed_everything(trial)
            states.append(capture(task.build(g)))
        taken = tuple(i for i in range(len(a)) if rng.random() < 0.5)
        child_genome = [b[i] if i in taken else a[i] for i in range(len(a))]
        step = Inherit(StoredState(states[1]), taken, optimizer_policy=("reset", "donor")[trial % 3 == 0])
        recipe = MixedState(StoredState(states[0]), (step,), seed=trial, width_policy=("adapt", "fresh")[trial % 2])
        child = recipe.materialise(task, child_genome)
        want = {k: v.shape for k, v in task.build_model(child_genome).state_dict().items()}
        assert {k: v.shape for k, v in child.model.state_dict().items()} == want
        before = {k: v.clone() for k, v in child.model.state_dict().items()}
        child.model.train()
        loss = nn.functional.cross_entropy(child.model(x), y)
        child.optimizers["adam"].zero_grad()
        loss.backward()
        child.optimizers["adam"].step()
        assert torch.isfinite(loss)
        assert all(torch.isfinite(p).all() for p in child.model.parameters())
        assert not torch.equal(before["head.weight"], child.model.state_dict()["head.weight"])


def test_mut_resample_of_a_width_variable_builds_the_new_width(task):
    genome = genome_of(task, ("conv3", "resblock3", "conv3", "conv3"), (8, 8, 8, 8))
    ind = Individual(genome, id=0, handle=StoredState(capture(trained(task, genome, seed=2))))
    widths_only = SearchSpace([Variable(v.name, v.options if v.name.startswith("width") else v.options[:1])
                               for v in task.space])  # only a width variable can be resampled in it
    random.seed(3)
    child, = mut_resample(ind, widths_only, width_policy="adapt")
    i, = child.handle.steps[0].variables
    assert task.space[i].name.startswith("width") and child[i] != genome[i]
    member = child.handle.materialise(task, list(child))
    want = {k: v.shape for k, v in task.build_model(list(child)).state_dict().items()}
    assert {k: v.shape for k, v in member.model.state_dict().items()} == want


# -- declarations ---------------------------------------------------------------------------------
def test_the_tasks_declarations_pass_the_check(task):
    check_task_widths(task)
    from tasks.rl import RLTask

    check_task_widths(RLTask(obs="states", hidden_dims=[16, 32], encoder_dim=8))


def test_the_readme_declaration_passes_the_check_and_a_wrong_one_does_not():
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "docs" / "TASKS.md").read_text()
    namespace: dict = {}
    exec(re.search(r"<!-- example: widths -->\n```python\n(.*?)```", readme, re.S).group(1), namespace)
    task = namespace["MyTask"]()
    check_task_widths(task)
    task.unit_axes = lambda genome: {"hidden": UnitAxis("hidden", copy=("0.weight", "0.bias"))}
    with pytest.raises(UnitAxisError, match="key '2.weight' dim 1 changes with width variable 'hidden'"):
        check_task_widths(task)


def mlp_shapes(genome):
    h1, h2 = MLP_SPACE.decode(genome)["h1"], MLP_SPACE.decode(genome)["h2"]
    return {k: tuple(v.shape) for k, v in MLP(h1, h2).state_dict().items()}


@pytest.mark.parametrize("axes, message", [
    ({**MLP_AXES, "h1": UnitAxis("h1", copy=("fc1.weight", "fc1.bais"), split=("fc2.weight",))},
     "unit axis 'h1' (h1=3, 3 units): key 'fc1.bais' (dim 0) is not in the model"),
    ({**MLP_AXES, "h1": UnitAxis("h1", copy=("fc1.weight", ("fc1.bias", 1)), split=("fc2.weight",))},
     "unit axis 'h1' (h1=3, 3 units): key 'fc1.bias' has no dim 1 (shape (3,))"),
    ({**MLP_AXES, "h1": UnitAxis("h1", copy=("fc1.weight", "fc1.bias"), split=(("fc2.weight", 0),))},
     "unit axis 'h1' (h1=3, 3 units): key 'fc2.weight' dim 0 has 4 entries, not 3"),
    ({**MLP_AXES, "h1": UnitAxis("h1", copy=("fc1.weight", "fc1.bias"))},
     "key 'fc2.weight' dim 1 changes with width variable 'h1' (3 -> 8 units) but is in no unit axis of it"),
    ({**MLP_AXES, "x": UnitAxis("h2", copy=("fc2.bias",))},
     "key 'fc2.bias' dim 0 is declared twice (unit axes 'h2' and 'x')"),
    ({**MLP_AXES, "x": UnitAxis("h2", copy=("fc3.weight",), scale=0.75)},
     "unit axis 'x' (h2=6, 4 units): key 'fc3.weight' dim 0 has 3 entries, not 4"),
    ({"h1": UnitAxis("layers", copy=("fc1.weight",))},
     "width variable 'layers': options must be unit counts (integers >= 1), got 'mlp'"),
    ({"h1": UnitAxis("width", copy=("fc1.weight",))}, "unit axis 'h1': 'width' is not a variable of the space"),
])
def test_a_wrong_declaration_names_the_key_and_dim(axes, message):
    with pytest.raises(UnitAxisError) as err:
        check_unit_axes(MLP_SPACE, [0, 0, 0], lambda g: axes, mlp_shapes)
    assert message in str(err.value)


class BrokenWidthsTask(MNIST1DWidthsTask):
    """The MNIST-1D width task with the head left out of the last cell's unit axis."""

    def unit_axes(self, genome):
        axes = dict(super().unit_axes(genome))
        last = axes["width3"]
        axes["width3"] = UnitAxis("width3", copy=last.copy, split=last.split[:-1])
        return axes


def test_cli_stops_on_a_wrong_declaration_with_one_line(tmp_path, capsys):
    config = {"task": {"target": f"{__name__}:BrokenWidthsTask", "args": {"widths": [4, 8]}},
              "algorithm": {"population": 6, "e_total": 2, "e_step": 1}, "parallel": {"backend": "serial"}}
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main([str(path), "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"error: task {__name__}:BrokenWidthsTask: key 'head.weight'"
                                                         " dim 1 changes with width variable 'width3'"), err
    assert not (tmp_path / "runs").exists()


def test_width_policy_in_configs_and_sweep_labels(tmp_path, capsys):
    assert algorithm_overrides("pbt_nas_wfresh") == ["algorithm.name=pbt_nas", "algorithm.width_policy=fresh"]
    assert algorithm_label({"algorithm": {"name": "pbt_nas", "init": "balanced", "width_policy": "fresh"}}) \
        == "pbt_nas_wfresh"
    assert algorithm_label({"algorithm": {"name": "pbt_nas", "init": "balanced", "width_policy": "adapt"}}) == "pbt_nas"
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"task": {"target": "tasks.digits:DigitsTask"},
                                    "algorithm": {"population": 6, "e_total": 2, "e_step": 1, "width_policy": "copy"}}))
    assert main([str(path)]) == 2
    assert "'algorithm.width_policy' is 'copy'; expected one of adapt, fresh" in capsys.readouterr().err


# -- RL: the critic target follows the critic ----------------------------------------------------
@pytest.fixture(scope="module")
def rl_task():
    from tasks.rl import RLTask

    np.random.seed(0)
    return RLTask("cartpole", "swingup", obs="states", hidden_dims=[16, 32, 48], encoder_dim=8, batch_size=4,
                  num_seed_frames=20, num_expl_steps=10, eval_episodes=1, frames_per_epoch=200, buffer_size=1000,
                  torch_threads=1)


def rl_genome(task, rng, **widths):
    g = task.space.sample(rng)
    for name in task.space.names:
        if name.endswith("spectral_norm"):  # spectral norm is not kept by a widening (other singular values)
            g[task.space.index(name)] = 0
    for name, value in widths.items():
        g[task.space.index(name)] = task.space[name].options.index(value)
    return g


def test_the_critic_target_follows_the_critic(rl_task):
    rng = random.Random(4)
    ia, ic = rl_task.space.index("actor.hidden_dim"), rl_task.space.index("critic.hidden_dim")
    for trial, (before, after) in enumerate([(16, 32), (32, 48), (16, 48), (48, 16)]):
        g = rl_genome(rl_task, rng, **{"actor.hidden_dim": before, "critic.hidden_dim": before})
        seed_everything(trial)
        parent = rl_task.build(g)
        child_genome = list(g)
        child_genome[ia] = child_genome[ic] = rl_task.space["critic.hidden_dim"].options.index(after)
        # a fresh parent's target equals its critic: the child's target equals the child's critic, perturbed alike
        child = resampled(capture(parent), [ia, ic], seed=trial).materialise(rl_task, child_genome).model
        for key, value in child.critic.state_dict().items():
            assert torch.equal(child.critic_target.state_dict()[key], value), key
        assert child.critic.Q1_head.in_features == after
        # a trained-looking parent (target != critic), copied exactly: every network computes what it did
        with torch.no_grad():
            for p in parent.model.critic_target.parameters():
                p.add_(0.05 * torch.randn_like(p))
        exact = resampled(capture(parent), [ia, ic], seed=trial, shrink_perturb=(1.0, 0.0))
        child = exact.materialise(rl_task, child_genome).model
        h, a = torch.randn(32, parent.model.encoder.repr_dim), torch.rand(32, 1) * 2 - 1
        if after % before == 0:  # equal copy counts: LayerNorm in residual blocks is kept as well
            with torch.no_grad():
                assert (child.actor(h) - parent.model.actor(h)).abs().max() < 1e-5
                for net in ("critic", "critic_target"):
                    for q, q_parent in zip(getattr(child, net)(h, a), getattr(parent.model, net)(h, a)):
                        assert (q - q_parent).abs().max() < 1e-5, net
        diff = {k: v - parent.model.critic.state_dict()[k] for k, v in parent.model.critic_target.state_dict().items()}
        # target - critic is adapted like both: the same unit map for a Q network and its target
        child_diff = {k: v - child.critic.state_dict()[k] for k, v in child.critic_target.state_dict().items()}
        groups = rl_task.unit_axes(child_genome)
        from pbt_evo.widths import adapt_tensor, axes_by_key

        units = axes_by_key(groups)
        for key, d in diff.items():
            want = adapt_tensor(d, child_diff[key].shape, units.get(f"critic_target.{key}", []), trial)
            assert torch.allclose(child_diff[key], want, atol=1e-6), key
