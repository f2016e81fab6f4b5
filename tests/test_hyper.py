"""Hyperparameters in the genome (issue 16): explore, optimizer parameter groups after build / restore /
mixing, Adam's moments across a learning-rate change, bad grids, the variants, lineage and plots."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
import yaml

from pbt_evo.cli import launch as run_cli
from pbt_evo.handles import FreshState, MixedState, StoredState, capture
from pbt_evo.hyper import HyperparameterError, HyperparameterTask
from pbt_evo.individual import Individual
from pbt_evo.operators import cx_mix, cx_none, mut_explore
from pbt_evo.space import SearchSpace, SpaceError, Variable, linear_grid, log_grid
from pbt_evo.variants import make_toolbox
from pbt_evo.weights import optimizer_state_by_name
from tasks.digits import DigitsTask
from tasks.mnist1d import MNIST1DTask

LR = log_grid(1e-4, 1e-1, 7)
HYPER = {"adam": {"lr": {"log": [1e-4, 1e-1, 7]}, "weight_decay": [0.0, 1e-4, 1e-3], "beta1": {"linear": [0.8, 0.9, 2]}}}


@pytest.fixture(scope="module")
def task() -> HyperparameterTask:
    return HyperparameterTask(MNIST1DTask(channels=4, batch_sizes=[50, 100, 200]), hyperparameters=HYPER)


def genome(task: HyperparameterTask, **options: int) -> list[int]:
    g = [1, 2, 3, 0, 1, 2, 0, 1, 0] + [0] * (len(task.space) - 9)
    for name, k in options.items():
        g[task.space.index(name.replace("__", "."))] = k
    return g


def groups(member) -> list[dict]:
    return [{k: v for k, v in g.items() if k in ("lr", "weight_decay", "betas")}
            for g in member.optimizers["adam"].param_groups]


# -- grids and variables --------------------------------------------------------------------------------
def test_grids_are_exact():
    assert LR == (0.0001, 0.000316227766, 0.001, 0.00316227766, 0.01, 0.0316227766, 0.1)
    assert linear_grid(0.8, 0.9, 2) == (0.8, 0.9)
    assert linear_grid(50, 200, 4) == (50.0, 100.0, 150.0, 200.0)


@pytest.mark.parametrize("options, message", [
    ((0.01, 0.001), "must be in increasing order"),
    ((0.1, 0.1, 0.2), "options repeat"),
    ((), "needs at least one option"),
])
def test_bad_hyperparameter_variables(options, message):
    with pytest.raises(SpaceError, match=message):
        Variable("lr", options, hyper=True)


def test_hyperparameter_owns_no_weights():
    with pytest.raises(SpaceError, match="owns no weights"):
        Variable("lr", (0.1, 0.2), owns=("head",), hyper=True)


def test_task_space_appends_optimizer_variables(task):
    space = task.space
    assert space.names[9:] == ["batch_size", "adam.lr", "adam.weight_decay", "adam.beta1"]
    assert space.hyperparameters == [9, 10, 11, 12]
    assert space.layer_variables == [0, 1, 2, 3]
    assert space.to_dict()["adam.lr"] == {"options": list(LR), "owns": [], "hyper": True}


# -- explore -----------------------------------------------------------------------------------------------
def explore_moves(resample_probability: float, start: int, trials: int, seed: int = 0) -> list[int]:
    space = SearchSpace([Variable("act", ("relu", "tanh")), Variable("lr", LR, hyper=True)])
    random.seed(seed)
    out = []
    for _ in range(trials):
        ind, = mut_explore(Individual([1, start], id=0, handle=StoredState({})), space, resample_probability)
        assert ind[0] == 1  # architecture genes are never explored
        out.append(ind[1])
    return out


def test_explore_moves_to_neighbours_within_bounds():
    for start in (0, 3, 6):
        moves = explore_moves(0.0, start, 400)
        assert set(moves) <= {max(start - 1, 0), start, min(start + 1, 6)}
        assert all(0 <= m <= 6 for m in moves)
    # seeded counts: down / up equally likely, clamped at the ends (a move below option 0 stays at 0)
    middle = explore_moves(0.0, 3, 400)
    assert (middle.count(2), middle.count(4)) == (215, 185)
    low = explore_moves(0.0, 0, 400)
    assert (low.count(0), low.count(1)) == (215, 185)


def test_explore_resamples_at_the_configured_rate():
    moves = explore_moves(0.25, 3, 2000)
    far = sum(abs(m - 3) >= 2 for m in moves)  # only a resample jumps two options or more
    # resampled 0.25 of the time, and 4 of the 7 options are >= 2 away: expected 2000 * 0.25 * 4/7 = 285.7
    assert far == 293
    assert explore_moves(0.0, 3, 2000).count(3) == 0
    assert sum(abs(m - 3) >= 2 for m in explore_moves(1.0, 3, 2000)) == 1160  # expected 2000 * 4/7 = 1142.9


def test_explore_is_ray_tunes_rule_draw_for_draw():
    """The same random stream gives the same moves as Ray Tune's PBT explore of a list (its own function)."""
    from ray.tune.schedulers.pbt import _explore

    random.seed(5)
    tune = []
    value = LR[3]
    for _ in range(300):
        value = _explore({"lr": value}, {"lr": list(LR)}, 0.25, (1.2, 0.8), None)[0]["lr"]
        tune.append(value)
    space = SearchSpace([Variable("lr", LR, hyper=True)])
    random.seed(5)
    ours, ind = [], Individual([3], id=0, handle=StoredState({}))
    for _ in range(300):
        ind, = mut_explore(ind, space, resample_probability=0.25)
        ours.append(LR[ind[0]])
    assert ours == tune
    assert len(set(ours)) == 7


def test_explore_probability_skips_genes():
    space = SearchSpace([Variable("lr", LR, hyper=True), Variable("wd", (0.0, 0.1, 0.2), hyper=True)])
    random.seed(1)
    unchanged = 0
    for _ in range(1000):
        ind, = mut_explore(Individual([3, 1], id=0, handle=StoredState({})), space, 0.0, explore_probability=0.5)
        unchanged += ind[0] == 3
    assert unchanged == 504  # expected 500


# -- optimizer parameter groups after build, restore and mixing ----------------------------------------------
def test_param_groups_after_build_restore_and_mixing(task):
    g_a = genome(task, adam__lr=2, adam__weight_decay=1, adam__beta1=0, batch_size=0)
    member = FreshState(7).materialise(task, g_a)
    assert groups(member) == [{"lr": 0.001, "weight_decay": 0.0001, "betas": (0.8, 0.999)}]
    assert member.batch_size == 50  # the task's own hyperparameter, read in build
    member.train(1)
    state = capture(member)
    assert state["optim"]["adam"]["groups"][0]["lr"] == 0.001

    # restore: the saved groups say lr 0.001; the genome says 0.0316
    g_b = genome(task, adam__lr=5, adam__weight_decay=2, adam__beta1=1, batch_size=2)
    restored = StoredState(state).materialise(task, g_b)
    assert groups(restored) == [{"lr": 0.0316227766, "weight_decay": 0.001, "betas": (0.9, 0.999)}]
    assert restored.batch_size == 200

    # mixing: the child's genome takes the donor's genes (p=1), its state the base parent's groups
    base = Individual(g_a, id=1, handle=StoredState(state))
    donor = Individual(g_b, id=2, handle=StoredState(state))
    base.fitness.values, donor.fitness.values = (0.9,), (0.5,)
    random.seed(0)
    child, = cx_mix(base.spawn(3), donor, p=1.0)
    mixed = child.handle.materialise(task, list(child))
    assert list(child) == g_b
    assert groups(mixed) == [{"lr": 0.0316227766, "weight_decay": 0.001, "betas": (0.9, 0.999)}]


def test_adam_moments_bit_identical_across_a_learning_rate_change(task):
    parent_genome = genome(task, adam__lr=2)
    member = FreshState(3).materialise(task, parent_genome)
    member.train(1)
    before = optimizer_state_by_name(member.optimizers["adam"], member.model)
    parent = Individual(parent_genome, id=4, handle=StoredState(capture(member)))
    parent.fitness.values = (0.5,)
    random.seed(2)
    child, = mut_explore(parent.spawn(5), task.space, resample_probability=0.0)
    assert child[task.space.index("adam.lr")] != 2  # the learning rate moved
    assert isinstance(child.handle, MixedState) and child.handle.steps == ()  # no weight changes
    made = child.handle.materialise(task, list(child))
    after = optimizer_state_by_name(made.optimizers["adam"], made.model)
    assert sorted(after["state"]) == sorted(before["state"])
    assert len(before["state"]) == 10  # stem, three convolutions, head: weight and bias each
    for name, saved in before["state"].items():
        for key in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(torch.as_tensor(after["state"][name][key]), torch.as_tensor(saved[key])), (name, key)
    assert made.optimizers["adam"].param_groups[0]["lr"] == LR[child[task.space.index("adam.lr")]]
    for key, value in member.model.state_dict().items():  # weights copied exactly too
        assert torch.equal(made.model.state_dict()[key], value)


def test_unknown_optimizer_or_parameter():
    with pytest.raises(HyperparameterError, match=r"^'task.hyperparameters.sgd': the member has no optimizer 'sgd';"
                                                  r" it has: adam$"):
        HyperparameterTask(MNIST1DTask(channels=4), hyperparameters={"sgd": {"lr": [0.1]}})
    with pytest.raises(HyperparameterError, match=r"^'task.hyperparameters.adam.momentum': optimizer 'adam' \(Adam\)"
                                                  r" has no hyperparameter 'momentum'; allowed: lr, eps, weight_decay"):
        HyperparameterTask(MNIST1DTask(channels=4), hyperparameters={"adam": {"momentum": [0.9]}})


# -- config errors: one line, exit code 2 --------------------------------------------------------------------
def write_config(tmp_path: Path, hyperparameters, algorithm: str = "pbt") -> Path:
    cfg = {"name": "hp", "task": {"target": "tasks.mnist1d:MNIST1DTask", "args": {"channels": 4},
                                  "hyperparameters": hyperparameters},
           "algorithm": {"name": algorithm, "population": 8, "e_total": 2, "e_step": 1},
           "parallel": {"backend": "serial"}, "output": {"dir": str(tmp_path / "runs"), "tensorboard": False}}
    path = tmp_path / "hp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("hyperparameters, message", [
    ({"adam": {"lr": []}}, "'task.hyperparameters.adam.lr': must be a non-empty list"),
    ({"adam": {"lr": [0.01, 0.001]}}, ("'task.hyperparameters.adam.lr': a hyperparameter's options must be in"
                                       " increasing order (its neighbours are the next smaller and larger), got"
                                       " [0.01, 0.001]")),
    ({"adam": {"lr": {"log": [0.0, 0.1, 3]}}}, "'task.hyperparameters.adam.lr.log': a log grid needs low > 0, got [0.0"),
    ({"adam": {"lr": {"log": [0.1, 0.01, 3]}}}, "'task.hyperparameters.adam.lr.log': a log grid needs low < high"),
    ({"adam": {"lr": {"linear": [0.1, 0.2]}}}, "'task.hyperparameters.adam.lr.linear': expected [low, high, n]"),
    ({"adam": {"lr": {"options": [0.1], "log": [0.1, 1, 2]}}}, "'task.hyperparameters.adam.lr': give exactly one of"),
    ({"adam": {"lr": ["a", "b"]}}, ("'task.hyperparameters.adam.lr': an optimizer hyperparameter's options must be"
                                    " numbers, got ['a', 'b']")),
    ({"sgd": {"lr": [0.1, 0.2]}}, "'task.hyperparameters.sgd': the member has no optimizer 'sgd'; it has: adam"),
    ({"adam": {"lrr": [0.1, 0.2]}}, ("'task.hyperparameters.adam.lrr': optimizer 'adam' (Adam) has no"
                                     " hyperparameter 'lrr'; allowed: lr")),
])
def test_bad_grid_stops_with_one_line_and_exit_code_2(tmp_path, capsys, hyperparameters, message):
    path = write_config(tmp_path, hyperparameters)
    assert run_cli.main([str(path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert not (tmp_path / "runs").exists()  # stopped before the run started


def test_hyperparameter_variant_without_hyperparameters(tmp_path, capsys):
    path = write_config(tmp_path, {}, algorithm="pbt_nas_hp")
    assert run_cli.main([str(path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: {path}: 'algorithm.name' pbt_nas_hp searches hyperparameters, but the space has none:"
                   " name some in task.hyperparameters, e.g. adam: {lr: {log: [1.0e-4, 1.0e-2, 5]}}\n")


def test_unknown_architecture_variable(tmp_path, capsys):
    path = write_config(tmp_path, {"adam": {"lr": [0.001, 0.01]}})
    assert run_cli.main([str(path), "--quiet", "--set", "algorithm.architecture.op9=conv3"]) == 2
    assert "'algorithm.architecture.op9': not an architecture variable; the space has: op0" in capsys.readouterr().err


# -- variants ---------------------------------------------------------------------------------------------------
def test_pbt_keeps_one_architecture_and_explores(task):
    tb = make_toolbox("pbt", task.space, population=8, task=task)
    random.seed(0)
    pop = tb.population()
    arch = [task.space.index(n) for n in task.space.names[:9]]
    default = [task.space[i].options.index(MNIST1DTask.default_architecture[task.space[i].name]) for i in arch]
    assert all([ind[i] for i in arch] == default for ind in pop)
    assert sorted(ind[task.space.index("adam.lr")] for ind in pop) == [0, 1, 2, 3, 4, 5, 6, 6]
    assert tb.mutate.func is mut_explore and tb.mate.func is cx_none
    tb_named = make_toolbox("pbt", task.space, population=4, task=task, architecture={"op0": "resblock3"})
    assert all(ind[0] == 7 and ind[1] == 2 for ind in tb_named.population())
    for name in ("pbt_nas_hp", "random_hp"):
        assert make_toolbox(name, task.space, population=8, task=task)
    with pytest.raises(ValueError, match="searches hyperparameters, but the space has none"):
        make_toolbox("pbt", MNIST1DTask(channels=4).space, population=8)
    assert make_toolbox("pbt_nas_hp", task.space, 8).mutate.func is mut_explore


def test_classic_pbt_run_lineage_plots_and_best(tmp_path):
    """A whole classic-PBT run on MNIST-1D: one architecture throughout, every child's changes recorded
    old -> new against its parent, the schedule plot and the family tree written, best/ loads again."""
    path = write_config(tmp_path, {"adam": {"lr": {"log": [1e-3, 1e-1, 5]}}})
    assert run_cli.main([str(path), "--quiet", "--set", "algorithm.population=6", "--set", "algorithm.e_total=3",
                         "--set", "output.tensorboard=true"]) == 0
    run = tmp_path / "runs" / "hp"
    pop = [json.loads(line) for line in (run / "population.jsonl").read_text().splitlines()]
    lineage = [json.loads(line) for line in (run / "lineage.jsonl").read_text().splitlines()]
    assert {tuple(r["genome"][:9]) for r in pop} == {(2, 2, 2, 2, 0, 0, 0, 0, 0)}
    assert len(lineage) == 4  # 2 generations of exploit, 2 losers each (N=6, tau 0.25)
    by_gen_id = {(r["gen"], r["id"]): r for r in pop}
    for row in lineage:
        parent = by_gen_id[(row["gen"], row["parents"][0])]
        lr_old, lr_new = parent["arch"]["adam.lr"], log_grid(1e-3, 1e-1, 5)[row["genome"][9]]
        assert row["changes"] == ({"adam.lr": [lr_old, lr_new]} if lr_old != lr_new else {})
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tb"))
    events.Reload()
    best_lr = events.Scalars("hyperparameters/adam.lr/best")
    assert [e.step for e in best_lr] == [1, 2, 3]
    for e, gen in zip(best_lr, (1, 2, 3)):  # the value of the fittest member trained in that generation
        rows = [r for r in pop if r["gen"] == gen]
        assert e.value == pytest.approx(max(rows, key=lambda r: r["fitness"])["arch"]["adam.lr"], rel=1e-6)
    plots = run / "plots"
    assert (plots / "hyperparameters.png").stat().st_size > 0
    tree = json.loads((plots / "family_tree.json").read_text())
    best = json.loads((run / "best" / "genome.json").read_text())
    assert tree["member"] == best["id"]
    assert (plots / "family_tree.txt").read_text().startswith(f"member {best['id']}")
    assert best["task"]["target"] == "pbt_evo.hyper:HyperparameterTask"
    from pbt_evo.export import load_best

    model, info = load_best(run)
    assert info["arch"]["adam.lr"] in log_grid(1e-3, 1e-1, 5)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in MNIST1DTask(channels=4).build_model(
        list(best["genome"][:9])).parameters())


class AveragedDigits(DigitsTask):
    """Digits whose first cell stands in for an averaged copy (an EMA generator, a target critic)."""

    averaged_prefixes = ("cells.0.op",)
    research_code_kept_apart = ("cells.1.op",)


def test_wrapped_task_keeps_its_research_code_declarations():
    """Bug (issue 26): Task's class defaults shadowed the wrapper's forwarding, so with task.hyperparameters the
    EMA generator / target critic were shrink-perturbed under research_code_compat instead of copied."""
    inner = AveragedDigits(channels=4)
    wrapped = HyperparameterTask(inner, hyperparameters={"adam": {"lr": [1e-3, 1e-2]}})
    assert wrapped.averaged_prefixes == ("cells.0.op",)
    assert wrapped.research_code_kept_apart == ("cells.1.op",)


def test_research_code_compat_copies_averaged_layers_through_the_wrapper():
    from pbt_evo import exploit

    task = HyperparameterTask(AveragedDigits(channels=4), hyperparameters={"adam": {"lr": [1e-3, 1e-2]}})
    tb = make_toolbox("pbt_nas", task.space, 8, p=1.0, research_code_compat=True, task=task)
    pop = tb.population()
    for i, ind in enumerate(pop):
        ind[0] = ind[1] = ind[2] = 1  # conv cells: every op variable owns weights
        ind.handle = StoredState(capture(FreshState(ind.seed).materialise(task, ind)))
        ind.fitness.values = (i / 8,)
    (_, child), *_ = exploit(pop, tb, 8)[0]
    donor = next(ind for ind in pop if ind.id == child.parents[1])
    got, theirs = child.handle.materialise(task, child).model.state_dict(), donor.handle.load()["model"]
    for key in [k for k in got if k.startswith("cells.0.op")]:
        assert torch.equal(got[key], torch.as_tensor(theirs[key])), key  # copied, not shrink-perturbed
    key = next(k for k in got if k.startswith("cells.2.op") and k.endswith("weight"))
    assert not torch.equal(got[key], torch.as_tensor(theirs[key]))  # other taken layers are shrink-perturbed
