"""Issue 18, reproducing the paper as it was run: random search with shrink-perturb (Table 3), BOHB
(Table 6), the research code's choices behind ``algorithm.research_code_compat``, the RL schedule,
compare's ddof and Bonferroni family."""

import json

import pytest
import torch

from pbt_evo.algorithms import ea_pbt, vary
from pbt_evo.handles import FreshState, MixedState, MutateWeights, PerturbAll, StoredState, capture
from pbt_evo.parallel import SerialMap
from pbt_evo.variants import make_toolbox


# -- random_sp ------------------------------------------------------------------------------------------
def test_random_sp_shrink_perturbs_every_tensor_exactly(digits_task):
    genome = [1, 2, 0, 1, 0, 1, 1, 0]
    member = FreshState(1).materialise(digits_task, genome)
    member.train(1)  # trained weights and Adam moments, unlike the fresh initialisation
    state = capture(member)
    child = MixedState(StoredState(state), (PerturbAll((0.4, 0.1)),), seed=7)
    got = child.materialise(digits_task, genome)
    fresh = FreshState(7).materialise(digits_task, genome).model.state_dict()
    trained = member.model.state_dict()
    assert set(got.model.state_dict()) == set(trained)
    for key, value in got.model.state_dict().items():
        if value.is_floating_point():
            assert torch.equal(value, 0.4 * trained[key] + 0.1 * fresh[key]), key
        else:
            assert torch.equal(value, trained[key]), key
    assert all(not opt.state for opt in got.optimizers.values())  # optimizer_policy reset: Adam restarts


def test_random_sp_in_the_loop_perturbs_every_member_at_each_boundary_but_the_last():
    from tasks.digits import DigitsTask

    task = DigitsTask(channels=4)
    tb = make_toolbox("random_sp", task.space, 4)
    tb.map = SerialMap(task, num_threads=1)
    seen = []
    pop = tb.population()
    genomes = [list(ind) for ind in pop]
    ea_pbt(pop, tb, e_total=3, e_step=1, hook=lambda g: seen.append(
        [(ind.id, type(ind.handle).__name__, ind.handle.steps if isinstance(ind.handle, MixedState) else None)
         for ind in g.population]))
    assert seen[0] == seen[1] == [(i, "MixedState", (PerturbAll((0.4, 0.1)),)) for i in range(4)]
    assert seen[2] == [(i, "StoredState", None) for i in range(4)]
    assert [list(ind) for ind in pop] == genomes  # architectures never change


# -- BOHB -----------------------------------------------------------------------------------------------
def _bohb_run(tmp_path, config, name, sets):
    from pbt_evo.run import main

    code = main([config, "--out", str(tmp_path), "--name", name, "--quiet", "--set", "algorithm.name=bohb",
                 "--set", "parallel.backend=serial"] + [a for s in sets for a in ("--set", s)])
    assert code == 0
    return tmp_path / name


def _check_bohb_folder(run, population, e_total):
    from pbt_evo.export import load_best
    from pbt_evo.task import TaskSpec

    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    trials = [json.loads(line) for line in (run / "trials.jsonl").read_text().splitlines()]
    assert [r["epochs"] for r in rows] == list(range(1, e_total + 1))  # on PBT-NAS's axis
    assert sum(t["epochs"] for t in trials) == population * e_total  # the paper's budget rule, exactly
    assert len(trials) > population  # successive halving: more architectures, most of them stopped early
    best, info = json.loads((run / "best" / "genome.json").read_text()), None
    incumbent = max((t for t in trials if t["epochs"] == best["epochs"]), key=lambda t: t["fitness"][-1])
    assert best["genome"] == incumbent["genome"] and best["fitness"] == incumbent["fitness"][-1]
    model, info = load_best(run)  # the exported network is the trained one: it scores its fitness again
    member = TaskSpec(info["task"]["target"], info["task"]["args"]).build().build(info["genome"])
    member.model.load_state_dict(model.state_dict())
    assert member.evaluate() == best["fitness"]
    return rows


@pytest.mark.slow
def test_bohb_on_digits_end_to_end_and_beside_pbt_nas_in_compare(tmp_path):
    from pbt_evo.cli.compare import main as compare_main
    from pbt_evo.run import main

    sets = ["algorithm.population=6", "algorithm.e_total=4", "output.tensorboard=false"]
    run = _bohb_run(tmp_path, "spaces/digits.yaml", "digits_bohb_s0", sets)
    rows = _check_bohb_folder(run, 6, 4)
    assert main(["spaces/digits.yaml", "--out", str(tmp_path), "--name", "digits_pbt_nas_s0", "--quiet",
                 "--set", "parallel.backend=serial", "--set", "algorithm.e_step=2"]
                + [a for s in sets for a in ("--set", s)]) == 0  # the same budget: 6 x 4 epochs
    assert compare_main([str(run), str(tmp_path / "digits_pbt_nas_s0"), "--out", str(tmp_path / "cmp")]) == 0
    table = (tmp_path / "cmp" / "compare.md").read_text()
    assert f"| bohb | 1 | {max(r['best'] for r in rows):.4f} +- 0.0000 |" in table
    assert "| **pbt_nas** (baseline) | 1 |" in table


@pytest.mark.slow
def test_bohb_on_mnist1d_end_to_end(tmp_path):
    sets = ["algorithm.population=4", "algorithm.e_total=3", "task.args.channels=4"]
    run = _bohb_run(tmp_path, "spaces/mnist1d_study.yaml", "m_bohb_s0", sets)
    _check_bohb_folder(run, 4, 3)


# -- compare: --ddof and --tests -------------------------------------------------------------------------
PAPER_LIKE = {"pbt_nas": {("gan", 0): 13.1, ("gan", 1): 12.2, ("gan", 2): 14.9, ("rl", 0): 801.0},
              "random": {("gan", 0): 16.2, ("gan", 1): 17.9, ("gan", 2): 16.3, ("rl", 0): 616.0}}


def test_ddof_0_matches_numpy_std_and_ddof_1_the_sample_std():
    import numpy as np

    from pbt_evo.stats import compare_table

    for ddof in (0, 1):
        rows = compare_table(PAPER_LIKE, "pbt_nas", ddof=ddof)
        for row in rows:
            values = list(PAPER_LIKE[row.algorithm].values())
            assert row.std == float(np.std(values, ddof=ddof)) and row.mean == float(np.mean(values))


def test_bonferroni_family_spans_several_calls():
    from pbt_evo.stats import CompareError, compare_table

    # the paper's Table 7: 2 tests in the GAN call, 2 in the RL call, one family of 4: threshold 0.0125
    rows = compare_table(PAPER_LIKE, "pbt_nas", tests=4)
    assert rows[1].threshold == 0.0125 and rows[1].p_bonferroni == min(1.0, 4 * rows[1].p)
    assert compare_table(PAPER_LIKE, "pbt_nas")[1].threshold == 0.05
    with pytest.raises(CompareError, match="--tests 0: the family must hold at least the 1 tests"):
        compare_table(PAPER_LIKE, "pbt_nas", tests=0)
    with pytest.raises(CompareError, match="--ddof 2"):
        compare_table(PAPER_LIKE, "pbt_nas", ddof=2)


@pytest.mark.slow
def test_compare_cli_ddof_and_tests_on_real_runs(tmp_path, capsys):
    import numpy as np

    from pbt_evo.cli.compare import main as compare_main
    from pbt_evo.cli.sweep import run_sweep

    run_sweep("spaces/digits.yaml", ["pbt_nas", "random_sp"], [0, 1],
              [f"output.dir={tmp_path}", "parallel.backend=serial", "algorithm.population=6", "algorithm.e_total=2",
               "algorithm.e_step=1", "task.args.channels=4", "output.tensorboard=false"], log=lambda s: None)
    assert compare_main([str(tmp_path), "--ddof", "0", "--tests", "4", "--out", str(tmp_path / "c")]) == 0
    text = (tmp_path / "c" / "compare.md").read_text()
    assert "Std: population (ddof=0, as the paper)" in text
    assert "Bonferroni over 4 tests (this table's 1 and 3 of other comparisons, --tests)" in text
    assert "= 0.05/4." in text
    bests = [max(json.loads(line)["best"] for line in (tmp_path / f"digits_random_sp_s{s}" / "log.jsonl")
                 .read_text().splitlines()) for s in (0, 1)]
    assert f"| random_sp | 2 | {np.mean(bests):.4f} +- {np.std(bests):.4f} |" in text
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        compare_main([str(tmp_path), "--ddof", "2"])
    assert exit_.value.code == 2 and "argument --ddof: invalid choice: 2" in capsys.readouterr().err


# -- the RL paper configs' schedule -----------------------------------------------------------------------
@pytest.mark.parametrize("config", ["spaces/rl_quadruped_run.yaml", "spaces/rl_walker_run.yaml"])
def test_rl_paper_schedule_mixes_at_the_research_codes_22_epochs(config):
    from pbt_evo.algorithms import steps
    from pbt_evo.cli.config import load

    alg = load(config)["algorithm"]
    epochs, mixed = 0, []
    while epochs < alg["e_total"]:  # the loop's own arithmetic: a generation, then mixing unless it was the last
        epochs += steps(alg["e_step"], epochs, alg["e_total"])
        if epochs < alg["e_total"]:
            mixed.append(epochs)
    assert mixed == [20, 40, 60, 80, 100, 120, 140] + list(range(150, 300, 10))
    assert len(mixed) == 22


# -- algorithm.research_code_compat -----------------------------------------------------------------------
def gan_task():
    from tasks.gan import GanTask

    return GanTask(space="gan_hard", dataset="synthetic", n_synthetic=8, img_size=16, bottom_width=2, gf_dim=8,
                   df_dim=8, latent_dim=6, batch_size=4, steps_per_epoch=1, fitness="fd_digits_classifier")


def trained_parents(task, genomes, fitness=(0.9, 0.5)):
    from pbt_evo.individual import Individual

    out = []
    for i, (g, f) in enumerate(zip(genomes, fitness)):
        member = FreshState(i + 1).materialise(task, g)
        member.train(1)
        ind = Individual(g, id=i, handle=StoredState(capture(member)))
        ind.fitness.values = (f,)
        out.append(ind)
    return out


@pytest.mark.parametrize("compat", [True, False])
def test_compat_mixing_copies_the_donors_ema_generator_bit_for_bit(compat):
    task = gan_task()
    a, b = trained_parents(task, [[0] * len(task.space), [1] * len(task.space)])
    tb = make_toolbox("pbt_nas", task.space, 8, p=1.0, task=task, research_code_compat=compat)
    child, = tb.mate(a.spawn(9), b)  # p=1: every variable from the donor, b
    got = child.handle.materialise(task, child).model.state_dict()
    donor = b.handle.load()["model"]
    fresh = FreshState(child.handle.seed).materialise(task, child).model.state_dict()
    owned = [k for k in got if task.space.owner(k) is not None and got[k].is_floating_point()]
    ema = [k for k in owned if k.startswith("G_ema.")]
    assert ema and len(ema) < len(owned)
    for k in owned:
        perturbed = 0.4 * torch.as_tensor(donor[k]) + 0.1 * fresh[k]
        want = torch.as_tensor(donor[k]) if compat and k.startswith("G_ema.") else perturbed
        assert torch.equal(got[k], want), k


def test_compat_mixing_copies_the_donors_critic_target_bit_for_bit():
    from tasks.rl import RLTask

    task = RLTask("cartpole", "swingup", obs="states", hidden_dim=32, encoder_dim=16, batch_size=4,
                  num_seed_frames=20, num_expl_steps=10, eval_episodes=1, frames_per_epoch=200, buffer_size=1000)
    genomes = [task.space.sample() for _ in range(2)]
    parents = []
    for i, g in enumerate(genomes):
        from pbt_evo.individual import Individual

        member = FreshState(i + 1).materialise(task, g)
        ind = Individual(g, id=i, handle=StoredState(capture(member)))
        ind.fitness.values = ((0.9, 0.5)[i],)
        parents.append(ind)
    tb = make_toolbox("pbt_nas", task.space, 8, p=1.0, task=task, research_code_compat=True)
    child, = tb.mate(parents[0].spawn(9), parents[1])
    got = child.handle.materialise(task, child).model.state_dict()
    donor = parents[1].handle.load()["model"]
    fresh = FreshState(child.handle.seed).materialise(task, child).model.state_dict()
    target = [k for k in got if k.startswith("critic_target.") and task.space.owner(k) is not None]
    critic = [k for k in got if k.startswith("critic.") and task.space.owner(k) is not None]
    assert target and critic
    assert all(torch.equal(got[k], torch.as_tensor(donor[k])) for k in target)
    assert all(torch.equal(got[k], 0.4 * torch.as_tensor(donor[k]) + 0.1 * fresh[k]) for k in critic
               if got[k].is_floating_point())
    task.close()


def _parent_counts(compat, n_children=600):
    import random

    from pbt_evo.individual import Individual
    from pbt_evo.operators import sel_truncation
    from pbt_evo.space import SearchSpace, Variable

    space = SearchSpace([Variable("a", (0, 1, 2))])
    pop = [Individual([i % 3], id=i, handle=StoredState({})) for i in range(12)]
    for i, ind in enumerate(pop):
        ind.fitness.values = (i / 10,)
    tb = make_toolbox("searl", space, 12, research_code_compat=compat)
    best, _ = sel_truncation(pop)  # ids 11, 10, 9: three parents
    random.seed(0)
    counts = {11: 0, 10: 0, 9: 0}
    for _ in range(n_children):
        parents = tb.pair(best, None)
        counts[vary(parents[0].spawn(99), parents, tb).parents[0]] += 1
    return counts


def test_compat_searl_parent_is_the_fitter_of_two_draws():
    import random

    assert _parent_counts(True) == {11: 407, 10: 193, 9: 0}  # ~2/3, ~1/3, never the worst of three
    assert _parent_counts(False) == {11: 198, 10: 212, 9: 190}  # uniform
    from pbt_evo.individual import Individual
    from pbt_evo.operators import pair_fitter_of_two

    pop = [Individual([0], id=i) for i in range(3)]
    for ind, f in zip(pop, [0.5, 0.9, 0.1]):
        ind.fitness.values = (f,)
    random.seed(3)
    draws = [pair_fitter_of_two(pop)[0].id for _ in range(50)]
    random.seed(3)
    want = []
    for _ in range(50):  # the same two draws, then the fitter
        x, y = random.sample(pop, 2)
        want.append(max((x, y), key=lambda ind: ind.fitness.values[0]).id)
    assert draws == want


@pytest.mark.parametrize("compat", [True, False])
def test_compat_searl_weight_mutation_leaves_the_ema_generator_alone(compat):
    task = gan_task()
    base, = trained_parents(task, [[0] * len(task.space)], fitness=(0.5,))
    skip = task.research_code_kept_apart if compat else ()
    recipe = MixedState(base.handle, (MutateWeights(11, tuple(skip)),), seed=5)
    got = recipe.materialise(task, base).model.state_dict()
    before = base.handle.load()["model"]
    changed = {k for k in got if not torch.equal(got[k], torch.as_tensor(before[k]))}
    assert changed  # SEARL changed some tensors
    assert any(k.startswith("G_ema.") for k in changed) is not compat


def test_compat_random_sp_keeps_the_ema_generator_and_the_moments():
    task = gan_task()
    ind, = trained_parents(task, [[0] * len(task.space)], fitness=(0.5,))
    tb = make_toolbox("random_sp", task.space, 4, task=task, research_code_compat=True)
    child, = tb.mutate(tb.clone(ind))
    member = child.handle.materialise(task, child)
    got, before = member.model.state_dict(), ind.handle.load()["model"]
    fresh = FreshState(child.handle.seed).materialise(task, child).model.state_dict()
    for k, v in got.items():
        src = torch.as_tensor(before[k])
        want = src if (k.startswith("G_ema.") or not v.is_floating_point()) else 0.4 * src + 0.1 * fresh[k]
        assert torch.equal(v, want), k
    assert all(opt.state for opt in member.optimizers.values())  # Adam moments kept


def test_compat_sets_the_gan_tasks_research_code_args_unless_the_config_does():
    from pbt_evo.cli.config import load

    on = load("spaces/gan_hard_cifar10.yaml", ["algorithm.research_code_compat=true"])["task"]["args"]
    assert (on["adam_eps"], on["d_branch2"]) == (1e-4, False)
    mine = load("spaces/gan_hard_cifar10.yaml", ["algorithm.research_code_compat=true", "task.args.adam_eps=1.0e-6"])
    assert mine["task"]["args"]["adam_eps"] == 1e-6
    off = load("spaces/gan_hard_cifar10.yaml")["task"]["args"]
    assert "adam_eps" not in off and "d_branch2" not in off
    task = gan_task()
    member = task.build([0] * len(task.space))
    assert [g["eps"] for o in member.optimizers.values() for g in o.param_groups] == [1e-8, 1e-8]


def test_research_code_discriminator_cell_drops_branch_2():
    from tasks.gan.discriminator import DisCell

    ops = {"c0": "conv_3x3", "c1": "conv_1x1", "c2": "conv_3x3", "c3": "skip", "c4": "conv_5x5", "c5": "none",
           "c6": "conv_1x1", "downsample": False, "down0": "avg_pool_start", "down1": "avg_pool_start"}
    fixed = DisCell(4, 4, ops, sn=False, first=False)
    research = DisCell(4, 4, ops, sn=False, first=False, branch2=False)
    research.load_state_dict(fixed.state_dict())
    x = torch.randn(2, 4, 8, 8)
    branch1_only = DisCell(4, 4, ops, sn=False, first=False)
    branch1_only.load_state_dict(fixed.state_dict())
    del branch1_only.c2, branch1_only.c4  # branch 2 has no input: the cell returns branch 1
    assert torch.equal(research(x), branch1_only(x))
    assert not torch.equal(research(x), fixed(x))


# -- task.args.render_quality -----------------------------------------------------------------------------
def test_render_quality_paper_keeps_dm_controls_defaults_and_fast_turns_them_off():
    from pbt_evo.cli.config import load
    from tasks.rl.env import DMCEnv

    paper = DMCEnv("walker", "run", obs="pixels", seed=0, render_quality="paper")._env.physics.model
    fast = DMCEnv("walker", "run", obs="pixels", seed=0)._env.physics.model
    assert (fast.vis.quality.offsamples, fast.vis.quality.shadowsize, float(fast.mat_reflectance.max())) == (0, 0, 0.0)
    assert paper.vis.quality.offsamples > 0 and paper.vis.quality.shadowsize > 0 and paper.mat_reflectance.max() > 0
    for name in ("quadruped", "walker", "humanoid"):
        assert load(f"spaces/rl_{name}_run.yaml")["task"]["args"]["render_quality"] == "paper"
    assert "render_quality" not in load("spaces/rl.yaml")["task"]["args"]  # the CPU default: fast
    with pytest.raises(ValueError, match="render_quality must be one of fast, paper, got 'pretty'"):
        DMCEnv("walker", "run", obs="pixels", render_quality="pretty")


# -- spaces/gan_stl10.yaml --------------------------------------------------------------------------------
def test_gan_stl10_uses_the_research_codes_stl10_projections():
    from pbt_evo.cli.config import load
    from pbt_evo.task import TaskSpec

    cfg = load("spaces/gan_stl10.yaml", ["task.args.dataset=synthetic", "task.args.fitness=fd_digits_classifier",
                                         "task.args.gf_dim=4", "task.args.df_dim=4", "task.args.n_synthetic=4"])
    args = cfg["task"]["args"]
    assert (args["space"], args["projections"], args["img_size"], args["bottom_width"], args["gf_dim"]) == (
        "gan", "stl10", 48, 6, 4)
    task = TaskSpec(cfg["task"]["target"], args).build()
    G = task.build([0] * len(task.space)).model.G
    p0, p1, p2 = G.projections
    # the latent's halves: 60 numbers each, at 6x6 and 12x12 with 4 channels; no third projection
    assert (p0.linear.in_features, p0.in_start, p0.linear.out_features) == (60, 0, 6 * 6 * 4)
    assert (p1.linear.in_features, p1.in_start, p1.linear.out_features) == (60, 60, 12 * 12 * 4)
    assert p2.linear is None and p2(torch.zeros(1, 120)) is None
    assert G(torch.randn(2, 120)).shape == (2, 3, 48, 48)
    with pytest.raises(ValueError, match="projections 'stl10' fixes the projections: use it with space 'gan'"):
        TaskSpec(cfg["task"]["target"], {**args, "space": "gan_hard"}).build().build([0] * 72)


def test_bohb_config_errors_are_one_line(tmp_path, capsys):
    from pbt_evo.run import main

    code = main(["spaces/mnist1d_multiobj.yaml", "--set", "algorithm.name=bohb", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "'algorithm.name' bohb optimises the fitness alone from its own samples" in err
    from pbt_evo.variants import make_toolbox as mk
    from tasks.digits import DigitsTask

    with pytest.raises(ValueError, match="'bohb' is a Ray Tune search, not a toolbox of the loop"):
        mk("bohb", DigitsTask(channels=4).space, 4)
