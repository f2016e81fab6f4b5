"""Multi-objective PBT-NAS (issue 22): NSGA-II's order through DEAP's tools, sure survivors, the Pareto
front of trained states, exact costs of a known network, one objective as before, the run folder."""

from __future__ import annotations

import copy
import json
import math
import pickle
import random
import shutil
from functools import partial
from pathlib import Path

import pytest
import scipy.stats
import torch
import yaml
from deap import tools

import pbt_evo
from pbt_evo.cli.compare import compare, main as compare_main
from pbt_evo.parallel.generation import record
from pbt_evo.handles import StoredState, TrainResult
from pbt_evo.individual import Individual
from pbt_evo.objectives import Objectives, count_flops, count_params, genome_cost
from pbt_evo.pareto import (TrainedFront, hypervolume, nsga2_fronts, nsga2_order, points, sel_nsga2,
                            sure_survivors_nsga2)
from pbt_evo.run import main
from pbt_evo.variants import make_toolbox
from tasks.digits import DigitsTask, accuracy, load_splits
from tasks.mnist1d import MNIST1DNet, MNIST1DTask, make_space

W2 = (1.0, -1.0)  # accuracy (max), parameters (min)
INF = math.inf


def population(values, weights=W2):
    pop = []
    for i, v in enumerate(values):
        ind = Individual([0], id=i, weights=weights, handle=StoredState({}))
        ind.fitness.values = v
        pop.append(ind)
    return pop


# A hand-made population: front 0 = {0, 1, 2, 3}; 4 is dominated by 0 and 5 by 1 and 3 (front 1);
# 6 by 0, 1, 3, 4, 5 (front 2); 7 failed: the worst in both objectives (front 3).
HAND = [(0.90, 500), (0.80, 200), (0.95, 900), (0.70, 100), (0.85, 600), (0.60, 300), (0.50, 700), (-INF, INF)]
HAND_RANK = {0: 0, 1: 0, 2: 0, 3: 0, 4: 1, 5: 1, 6: 2, 7: 3}
# crowding in front 0, by hand: accuracy spans 0.25 (norm 2 x 0.25), parameters 800 (norm 2 x 800)
HAND_CROWDING = {0: (0.95 - 0.80) / 0.5 + (900 - 200) / 1600, 1: (0.90 - 0.70) / 0.5 + (500 - 100) / 1600,
                 2: INF, 3: INF, 4: INF, 5: INF, 6: INF, 7: INF}


def test_ranks_and_crowding_on_a_hand_made_population_equal_deaps():
    pop = population(HAND)
    fronts = nsga2_fronts(pop)
    rank = {ind.id: r for r, front in enumerate(fronts) for ind in front}
    crowding = {ind.id: ind.fitness.crowding_dist for ind in pop}
    assert rank == HAND_RANK
    assert crowding == pytest.approx(HAND_CROWDING, rel=1e-12)
    # DEAP's own, on a copy: the same fronts and distances
    theirs = copy.deepcopy(pop)
    deap_fronts = tools.sortNondominated(theirs, len(theirs))
    for front in deap_fronts:
        tools.emo.assignCrowdingDist(front)
    assert [sorted(i.id for i in f) for f in deap_fronts] == [sorted(i.id for i in f) for f in fronts]
    assert {i.id: i.fitness.crowding_dist for i in theirs} == crowding
    # NSGA-II's order: front first, larger crowding first (ties keep DEAP's order)
    assert [ind.id for ind in nsga2_order(pop)] == [2, 3, 0, 1, 4, 5, 6, 7]
    best, worst = sel_nsga2(pop, tau=0.25)
    assert [b.id for b in best] == [2, 3] and [w.id for w in worst] == [6, 7]
    # exactly DEAP's selNSGA2: the best k, and the members that keeping N - k leaves out
    assert {i.id for i in tools.selNSGA2(copy.deepcopy(pop), 2)} == {2, 3}
    assert {i.id for i in pop} - {i.id for i in tools.selNSGA2(copy.deepcopy(pop), 6)} == {6, 7}


def test_sel_nsga2_is_deaps_selnsga2_on_random_populations():
    rng = random.Random(5)
    for _ in range(200):
        n = rng.choice([4, 6, 8, 12])
        values = [(rng.choice([0.5, 0.6, 0.7, 0.8, 0.9]), rng.choice([100, 200, 300, 400])) for _ in range(n)]
        pop = population(values)
        best, worst = sel_nsga2(pop, 0.25)
        k = pbt_evo.n_selected(n, 0.25)
        assert {i.id for i in best} == {i.id for i in tools.selNSGA2(copy.deepcopy(pop), k)}
        assert {i.id for i in worst} == set(range(n)) - {i.id for i in tools.selNSGA2(copy.deepcopy(pop), n - k)}


def test_nan_in_any_objective_ranks_last_and_is_never_a_parent():
    pop = [Individual([0], id=i, weights=W2, handle=StoredState({})) for i in range(4)]
    results = [TrainResult(0.9, values=(0.9, 300.0)), TrainResult(0.5, values=(0.5, float("nan"))),
               TrainResult(float("nan"), values=(float("nan"), 100.0)), TrainResult(0.1, values=(0.1, 900.0))]
    failed = [record(ind, res, step=2) for ind, res in zip(pop, results)]
    assert failed == [0, 0, 0, 0]
    assert [ind.fitness.values for ind in pop] == [(0.9, 300.0), (-INF, INF), (-INF, INF), (0.1, 900.0)]
    more = population([(-INF, INF)] * 2)
    for i, ind in enumerate(more):
        ind.id = 4 + i
    best, worst = sel_nsga2(pop + more, tau=0.5)  # 3 parents of 6, but only 0 and 3 are finite
    assert [b.id for b in best] == [0, 3] and {w.id for w in worst} < {1, 2, 4, 5} and len(worst) == 3
    # a call that failed keeps its state and age; its objectives are the worst
    ind = Individual([0], id=9, weights=W2, handle=StoredState({"model": {}}))
    before = ind.handle
    assert record(ind, TrainResult(float("nan"), failed=True), step=2) == 1
    assert ind.handle is before and ind.epochs == 0 and ind.fitness.values == (-INF, INF)
    with pytest.raises(ValueError, match="1 objective values for a fitness of 2 weights"):
        record(ind, TrainResult(0.5, values=(0.5,)), step=2)


def test_sure_survivors_nsga2_are_never_among_the_worst_whatever_the_rest_scores():
    rng = random.Random(0)
    sure_total = 0
    for _ in range(300):
        n = rng.choice([6, 8, 12])
        values = [(rng.choice([0.5, 0.6, 0.7, 0.8, -INF]), rng.choice([100, 200, 300, 400])) for _ in range(n)]
        values = [(a, INF if a == -INF else b) for a, b in values]
        pop = population(values)
        finished = rng.sample(pop, rng.randrange(1, n))
        sure = sure_survivors_nsga2(finished, n, tau=0.25)
        sure_total += len(sure)
        for _ in range(20):  # the unfinished members score anything
            for ind in pop:
                if ind not in finished:
                    ind.fitness.values = (rng.choice([0.4, 0.6, 0.75, 0.85, 0.95, -INF]), rng.choice([50, 150, 250, 450]))
            _, worst = sel_nsga2(pop, tau=0.25)
            assert not {id(w) for w in worst} & {id(s) for s in sure}
    assert sure_total == 555  # the rule lets members start early (its count on these seeded draws)
    # one objective: the same members as the single-objective rule
    for _ in range(50):
        pop = population([(rng.choice([0.1, 0.2, 0.3, -INF]),) for _ in range(8)], weights=(1.0,))
        assert [i.id for i in sure_survivors_nsga2(pop[:5], 8)] == [i.id for i in pbt_evo.sure_survivors(pop[:5], 8)]


def test_pareto_front_keeps_exactly_the_non_dominated_trained_states():
    rng = random.Random(2)
    front, seen = TrainedFront(), []
    pop = population([(0.0, 0.0)] * 6)
    for generation in range(1, 9):
        for ind in pop:
            ind.epochs = 2 * generation
            ind.handle = StoredState({"gen": generation})
            params = rng.choice([100.0, 200.0, 300.0])  # larger networks are more accurate, or fail
            acc = rng.choice({100.0: [0.3, 0.4, 0.5], 200.0: [0.45, 0.55, 0.65], 300.0: [0.6, 0.7, 0.8]}[params]
                             + [float("nan")])
            record(ind, TrainResult(acc, values=(acc, params), state=ind.handle), step=0)
            seen.append((ind.id, ind.epochs, ind.fitness.values, ind.handle))
        front.update(pop)
        finite = [s for s in seen if math.isfinite(s[2][0])]
        first = {}  # the first state seen at each non-dominated point: later ones with equal values are twins
        for i, e, v, _ in finite:
            if not any(w[0] >= v[0] and w[1] <= v[1] and w != v for _, _, w, _ in finite):
                first.setdefault(v, (i, e))
        assert sorted((ind.id, ind.epochs) for ind in front) == sorted(first.values())
    assert len(front) == 3 and sum(v == (0.8, 300.0) for _, _, v, _ in seen) == 5  # one entry for 5 equal states
    handles = {(i, e): h for i, e, _, h in seen}
    assert all(ind.handle is handles[(ind.id, ind.epochs)] for ind in front)  # each exportable: its own state


def test_pair_ranked_and_the_donor_is_the_parent_that_ranks_lower():
    best = population([(0.7, 100), (0.9, 500), (0.8, 300)])  # in rank order, though 1 has the highest accuracy
    random.seed(1)
    pairs = [tuple(ind.id for ind in pbt_evo.pair_ranked(best)) for _ in range(30)]
    assert set(pairs) == {(0, 1), (0, 2), (1, 2)}
    a, b = best[0], best[1]
    child, = pbt_evo.cx_mix(a.spawn(9), b, p=1.0)  # the pairing's order: base parent, then donor
    assert child.parents == (0, 1) and child.handle.base is a.handle and child.handle.steps[0].donor is b.handle
    assert [ind.id for ind in pbt_evo.pair_random([a, b])] in ([1, 0],)  # by score: the base is the fitter


def test_params_and_flops_of_a_known_network_are_exact():
    task = MNIST1DTask(channels=8)
    op = {name: i for i, name in enumerate(make_space()["op0"].options)}
    identity = [0] * 9
    # stem conv 1 -> 8, k=5: 8 x 5 + 8 = 48 parameters, 2 x 40 positions x 8 x 5 = 3,200 FLOPs;
    # head linear 8 -> 10: 90 parameters, 2 x 8 x 10 = 160 FLOPs (biases are not counted as FLOPs)
    assert genome_cost(task, identity, "params") == 138 and genome_cost(task, identity, "flops") == 3360
    # a conv3 cell adds 8 x 8 x 3 + 8 = 200 parameters and 2 x 40 x 8 x 8 x 3 = 15,360 FLOPs
    conv3 = [op["conv3"]] + identity[1:]
    assert genome_cost(task, conv3, "params") == 338 and genome_cost(task, conv3, "flops") == 18720
    # sepconv5: depthwise 8 x 5 + 8 and pointwise 8 x 8 + 8 = 120; 2 x 40 x 8 x 5 + 2 x 40 x 8 x 8 = 8,320 FLOPs
    sep = [op["sepconv5"]] + identity[1:]
    assert genome_cost(task, sep, "params") == 258 and genome_cost(task, sep, "flops") == 11680
    # a pooling cell has no parameters, and flop_counter counts no FLOPs for it
    pool = [op["maxpool3"]] * 4 + identity[4:]
    assert genome_cost(task, pool, "params") == 138 and genome_cost(task, pool, "flops") == 3360
    net = MNIST1DNet(task.space.decode(conv3), channels=8)
    assert count_params(net) == 338 and count_flops(net, torch.zeros(1, 1, 40)) == 18720


def test_costs_are_cached_per_genome_and_leave_the_callers_streams_alone():
    task = MNIST1DTask(channels=8)
    genome = [1, 2, 3, 4, 0, 1, 2, 3, 1]
    random.seed(4)
    torch.manual_seed(4)
    state = random.getstate(), torch.get_rng_state()
    first = genome_cost(task, genome, "latency")
    assert first > 0 and genome_cost(task, genome, "latency") == first  # measured once, then kept
    assert random.getstate() == state[0] and torch.equal(torch.get_rng_state(), state[1])


def test_objectives_parse_and_check():
    assert Objectives.parse([{"fitness": "max"}]).single
    for entries, message in [([{"params": "min"}], "the first objective must be 'fitness: max'"),
                             ([{"fitness": "min"}], "the first objective must be 'fitness: max'"),
                             ([{"fitness": "max"}, {"params": "low"}], "direction 'low', allowed: max, min"),
                             ([{"fitness": "max"}, {"params": "min"}, {"params": "min"}], "named twice"),
                             ([{"fitness": "max"}, "params"], "each objective is one 'name: max'")]:
        with pytest.raises(ValueError, match=message):
            Objectives.parse(entries)
    with pytest.raises(ValueError, match="objective 'size' is unknown; allowed for DigitsTask: fitness, params,"
                                         " flops, latency"):
        Objectives(("fitness", "size"), W2).check(DigitsTask(channels=4))


def test_a_task_may_return_values_of_its_own():
    class Member(pbt_evo.Member):
        def __init__(self):
            self.model = torch.nn.Linear(2, 1)

        def train(self, epochs):
            return {}

        def evaluate(self):
            return 0.5

        def objective_values(self):
            return {"calibration": 0.125}

    class Task(pbt_evo.Task):
        objective_names = ("calibration",)

        def __init__(self):
            self.space = pbt_evo.SearchSpace([pbt_evo.Variable("a", (0, 1))])

        def build(self, genome):
            return Member()

        def build_model(self, genome):
            return torch.nn.Linear(2, 1)

    task = Task()
    objectives = Objectives(("fitness", "calibration", "params"), (1.0, -1.0, -1.0))
    objectives.check(task)
    assert objectives.evaluate(task, [0], Member(), 0.5) == (0.5, 0.125, 3.0)


GOLDEN = Path(__file__).parent / "golden" / "digits_serial.json"


def test_one_objective_is_the_golden_run(monkeypatch):
    """``objectives: [fitness: max]`` (the config default, which the CLI always passes) is today's run."""
    from test_golden import assert_same, golden_run

    monkeypatch.setattr(pbt_evo.variants, "make_toolbox", partial(make_toolbox, objectives=Objectives()))
    assert_same(golden_run("pbt_nas"), json.loads(GOLDEN.read_text())["pbt_nas"], "pbt_nas, one objective")


def test_early_starts_give_the_synchronous_multi_objective_run():
    digits_task = DigitsTask(channels=4)
    threads = torch.get_num_threads()
    objectives = Objectives(("fitness", "params"), W2)
    runs, early = [], []
    for max_early in (None, 0):
        tb = make_toolbox("pbt_nas", digits_task.space, 8, objectives=objectives)
        tb.map = pbt_evo.SerialMap(digits_task, num_threads=1, max_early=max_early)
        front, started = TrainedFront(), []
        random.seed(3)
        pop, _ = pbt_evo.ea_pbt(tb.population(), tb, 3, 1, halloffame=front,
                                hook=lambda g: started.append(g.outcome.started_early))
        runs.append(([(ind.id, list(ind), ind.fitness.values, ind.epochs) for ind in pop],
                     [(ind.id, ind.epochs, ind.fitness.values) for ind in front]))
        early.append(started)
    torch.set_num_threads(threads)
    assert runs[0] == runs[1]
    assert early[1] == [0, 0, 0] and early[0][-1] == 0 and sum(early[0]) > 0
    assert all(len(v) == 2 for _, _, v, _ in runs[0][0])


def digits_config(tmp_path, **algorithm):
    cfg = {"name": "mo", "task": {"target": "tasks.digits:DigitsTask", "args": {"channels": 4}},
           "algorithm": {"population": 6, "e_total": 3, "e_step": 1,
                         "objectives": [{"fitness": "max"}, {"params": "min"}], "reference_point": [0.0, 3000],
                         **algorithm},
           "parallel": {"backend": "serial"}, "output": {"tensorboard": False}}
    path = tmp_path / "mo.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("change, message", [
    ({"objectives": [{"fitness": "max"}, {"params": "smaller"}]},
     "'algorithm.objectives' is [{'fitness': 'max'}, {'params': 'smaller'}]: objective 'params': direction"),
    ({"objectives": "fitness"}, "'algorithm.objectives' is 'fitness'; expected a list such as"),
    ({"reference_point": None}, "'algorithm.reference_point' is None; with objectives fitness: max, params: min"
                                " it must be a list of 2 numbers"),
    ({"reference_point": [0, "x"]}, "'algorithm.reference_point' is [0, 'x']; expected a list of numbers or null"),
    ({"objectives": [{"fitness": "max"}, {"size": "min"}]},
     "'algorithm.objectives': objective 'size' is unknown; allowed for DigitsTask: fitness, params, flops, latency"),
])
def test_bad_objectives_are_one_line_naming_file_and_key(tmp_path, capsys, change, message):
    path = digits_config(tmp_path, **change)
    assert main([str(path), "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"error: {path}: ") and message in err, err


@pytest.fixture(scope="module")
def mo_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mo")
    config = digits_config(tmp)
    cfg = yaml.safe_load(config.read_text())
    cfg["output"]["keep_checkpoints"] = 3  # to resume from an earlier generation below
    config.write_text(yaml.safe_dump(cfg))
    assert main([str(config), "--out", str(tmp / "runs"), "--quiet"]) == 0
    return tmp / "runs" / "mo"


def test_individuals_keep_their_weights_through_pickle_and_copies():
    ind = population([(0.75, 120.0)])[0]
    for other in (pickle.loads(pickle.dumps(ind)), copy.deepcopy(ind)):
        assert other.fitness.weights == W2 and other.fitness.values == (0.75, 120.0)
        assert other.fitness.dominates(population([(0.5, 130.0)])[0].fitness)


def test_a_resumed_multi_objective_run_equals_the_uninterrupted_one(mo_run, tmp_path):
    """Resuming from generation 2 of 3 (the same command) gives the same front, log and best/front/."""
    run = tmp_path / "mo"
    shutil.copytree(mo_run, run)
    (run / "checkpoints" / "LATEST").write_text("gen_00002")
    assert main([str(run), "--resume", "--quiet"]) == 0
    for name in ("front.jsonl", "best/front.md"):
        assert (run / name).read_text().replace(str(run), "RUN") == (mo_run / name).read_text().replace(str(mo_run), "RUN")
    members = [[{k: v for k, v in json.loads(x).items() if k != "metrics"} for x in (r / "population.jsonl").read_text().splitlines()]
               for r in (run, mo_run)]
    assert members[0] == members[1] and len(members[0]) == 3 * 6
    hv = [[json.loads(x)["hypervolume"] for x in (r / "log.jsonl").read_text().splitlines()] for r in (run, mo_run)]
    assert hv[0] == hv[1] and len(hv[0]) == 3


def test_run_folder_has_the_front_per_generation_and_its_hypervolume(mo_run):
    fronts = [json.loads(x) for x in (mo_run / "front.jsonl").read_text().splitlines()]
    log = [json.loads(x) for x in (mo_run / "log.jsonl").read_text().splitlines()]
    assert [f["gen"] for f in fronts] == [1, 2, 3] and all(f["reference"] == [0.0, 3000] for f in fronts)
    for f, row in zip(fronts, log):
        values = [m["values"] for m in f["members"]]
        # the front: no member dominates another; its hypervolume, by hand (accuracy x parameter span)
        assert not any(a[0] >= b[0] and a[1] <= b[1] and a != b for a in values for b in values)
        steps = sorted(values, key=lambda v: v[1])
        by_hand = sum(v[0] * ((steps[i + 1][1] if i + 1 < len(steps) else 3000) - v[1]) for i, v in enumerate(steps))
        assert f["hypervolume"] == pytest.approx(by_hand, rel=1e-12) == row["hypervolume"]
        assert row["front_size"] == len(values)
    assert [r["hypervolume"] for r in log] == sorted(r["hypervolume"] for r in log)  # the front only improves
    assert (mo_run / "log.csv").read_text().splitlines()[0].endswith(",hypervolume,front_size")
    assert (mo_run / "plots" / "front.png").stat().st_size > 10_000
    # every trained member's values are in population.jsonl; the final front is their non-dominated set
    rows = map(json.loads, (mo_run / "population.jsonl").read_text().splitlines())
    seen = {(r["id"], r["epochs"]): r["values"] for r in rows if None not in r["values"]}
    nd = {tuple(v) for v in seen.values() if not any(w[0] >= v[0] and w[1] <= v[1] and w != v for w in seen.values())}
    assert sorted(tuple(m["values"]) for m in fronts[-1]["members"]) == sorted(nd)  # each point once
    assert all(seen[(m["id"], m["epochs"])] == m["values"] for m in fronts[-1]["members"])


def test_best_holds_the_front_each_member_loads_trained(mo_run):
    front = pbt_evo.load_front(mo_run)
    last = [json.loads(x) for x in (mo_run / "front.jsonl").read_text().splitlines()][-1]["members"]
    assert [info["id"] for _, info in front] == [m["id"] for m in last]  # highest fitness first
    val = load_splits()["val"]
    for model, info in front:
        assert accuracy(model, *val) == info["objectives"]["fitness"] == info["fitness"]
        assert count_params(model) == info["objectives"]["params"]
    table = (mo_run / "best" / "front.md").read_text()
    assert "| folder | member | fitness (max) | params (min) | test score | epochs | architecture |" in table
    # the table names each member by its folder, and the line above it loads one
    folders = [line.split(" | ")[0][2:] for line in table.splitlines() if line.startswith("| front/")]
    assert folders == [f"front/{k:02d}" for k in range(len(front))]
    assert f'`pbt_evo.load_best("{mo_run}/best/front/00")`' in table
    assert sorted(p.name for p in (mo_run / "best" / "front").iterdir()) == [f[6:] for f in folders]
    with pytest.raises(FileNotFoundError) as err:
        pbt_evo.load_best(mo_run / "best" / "front" / "0")
    assert str(err.value) == (f"{mo_run}/best/front/0 does not exist; the front's members are"
                              f" {', '.join(f[6:] for f in folders)} (in {mo_run}/best/front)")
    model, info = pbt_evo.load_best(mo_run)
    assert info["id"] == last[0]["id"]


def fake_run(root, name, algorithm, seed, fronts, reference=(0.0, 1000)):
    """A finished multi-objective run folder with the given fronts (one per generation)."""
    run = root / name
    run.mkdir(parents=True)
    cfg = {"name": name, "seed": seed, "task": {"target": "tasks.digits:DigitsTask", "args": {}},
           "algorithm": {"name": algorithm, "e_total": len(fronts), "shrink_perturb": [0.4, 0.1], "init": "balanced",
                         "objectives": [{"fitness": "max"}, {"params": "min"}], "reference_point": list(reference)}}
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run / "log.jsonl").write_text("".join(json.dumps({"gen": g, "epochs": g, "best": max(v[0] for v in f)}) + "\n"
                                           for g, f in enumerate(fronts, 1)))
    (run / "front.jsonl").write_text("".join(json.dumps({"gen": g, "members": [{"values": list(v)} for v in f]}) + "\n"
                                             for g, f in enumerate(fronts, 1)))
    return run


def test_compare_reports_the_final_hypervolume_against_one_stated_reference(tmp_path, capsys):
    for seed in range(3):
        fake_run(tmp_path / "s", f"p{seed}", "pbt_nas", seed, [[(0.5, 500)], [(0.5, 500), (0.8, 800 - 100 * seed)]])
        fake_run(tmp_path / "s", f"r{seed}", "random", seed, [[(0.5, 500)], [(0.6, 600)]])
    files = compare([tmp_path / "s"], tmp_path / "cmp", baseline="pbt_nas", report="hypervolume")
    text = files["markdown"].read_text()
    # pbt_nas, seed s: 0.5 x (1000 - 500) + (0.8 - 0.5) x (1000 - (800 - 100 s)) = 310, 340, 370
    by_hand = [0.5 * (1000 - 500) + (0.8 - 0.5) * (1000 - (800 - 100 * s)) for s in range(3)]
    assert "reference point [0.0, 1000.0], the same for every run" in text
    assert f"| **pbt_nas** (baseline) | 3 | {sum(by_hand) / 3:.4f} +- 30.0000 |" in text
    # random: 0.6 x 400 = 240; the baseline's lead 70, 100, 130: mean 100, paired t 95% interval
    # 100 -+ t(0.975, 2) x 30 / sqrt(3); 3 pairs favour pbt_nas: exact signed-rank p 1/8
    half = scipy.stats.t.ppf(0.975, 2) * 30 / math.sqrt(3)
    assert (f"| random | 3 | 240.0000 +- 0.0000 | +100.0000 [{100 - half:+.4f}, {100 + half:+.4f}] | 0.125 |"
            in text)
    files = compare([tmp_path / "s"], tmp_path / "cmp2", report="hypervolume", reference=(0.5, 1000))
    assert "| random | 3 | 40.0000 +- 0.0000 |" in files["markdown"].read_text()  # (0.6 - 0.5) x 400
    fake_run(tmp_path / "s", "p9", "pbt_nas", 9, [[(0.5, 500)]], reference=(0.0, 2000))
    fake_run(tmp_path / "s", "r9", "random", 9, [[(0.5, 500)]], reference=(0.0, 2000))
    assert compare_main([str(tmp_path / "s"), "--report", "hypervolume"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "runs state different reference points" in err and "--reference" in err
    assert compare_main([str(tmp_path / "s"), "--report", "hypervolume", "--reference", "0,1000",
                         "--out", str(tmp_path / "cmp3")]) == 0


def test_hypervolume_is_deaps_on_points():
    pts = points([(0.9, 500), (0.8, 200), (0.95, 900), (0.7, 100)], W2)
    from deap.benchmarks.tools import hypervolume as deap_hv
    # DEAP minimises -wvalues: the reference (0 accuracy, 1000 parameters) is (0, 1000) there
    assert hypervolume(pts, (0.0, 1000)) == deap_hv(pts, ref=[0.0, 1000.0])
    assert hypervolume(pts, (0.0, 1000)) == pytest.approx(0.7 * 100 + 0.8 * 300 + 0.9 * 400 + 0.95 * 100, rel=1e-12)
    assert hypervolume(pts + population([(-INF, INF)]), (0.0, 1000)) == hypervolume(pts, (0.0, 1000))
