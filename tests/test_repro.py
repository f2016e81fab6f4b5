"""Issue 18, reproducing the paper as it was run: random search with shrink-perturb (Table 3), BOHB
(Table 6), the research code's choices behind ``algorithm.research_code_compat``, the RL schedule,
compare's ddof and Bonferroni family."""

import json

import pytest
import torch

from pbt_evo.algorithms import ea_pbt
from pbt_evo.handles import FreshState, MixedState, StoredState, capture
from pbt_evo.parallel import SerialMap
from pbt_evo.variants import make_toolbox


# -- random_sp ------------------------------------------------------------------------------------------
def test_random_sp_shrink_perturbs_every_tensor_exactly(digits_task):
    genome = [1, 2, 0, 1, 0, 1, 1, 0]
    member = FreshState(1).materialise(digits_task, genome)
    member.train(1)  # trained weights and Adam moments, unlike the fresh initialisation
    state = capture(member)
    child = MixedState(base=StoredState(state), perturb_all=True, shrink_perturb=(0.4, 0.1), seed=7)
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


def test_random_sp_in_the_loop_perturbs_every_member_at_each_boundary_but_the_last(digits_task):
    tb = make_toolbox("random_sp", digits_task.space, 4)
    tb.map = SerialMap(digits_task)
    seen = []
    pop = tb.population()
    genomes = [list(ind) for ind in pop]
    ea_pbt(pop, tb, e_total=3, e_step=1, hook=lambda g: seen.append(
        [(ind.id, type(ind.handle).__name__, getattr(ind.handle, "perturb_all", None),
          getattr(ind.handle, "shrink_perturb", None)) for ind in g.population]))
    assert seen[0] == seen[1] == [(i, "MixedState", True, (0.4, 0.1)) for i in range(4)]
    assert seen[2] == [(i, "StoredState", None, None) for i in range(4)]
    assert [list(ind) for ind in pop] == genomes  # architectures never change


# -- BOHB -----------------------------------------------------------------------------------------------
def _bohb_run(tmp_path, config, name, sets):
    from pbt_evo.cli.run import main

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
    from pbt_evo.cli.run import main

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
