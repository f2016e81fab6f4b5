"""The PBT loop end to end on the digits task: Ray workers, export, lineage, variants, failures."""

import random
import sys
from functools import partial

import numpy as np
import pytest
import ray.cloudpickle
import torch
from deap import base, tools

import pbt_evo
from pbt_evo.handles import StoredState
from pbt_evo.parallel import Call, map_calls
from pbt_evo.parallel.generation import GenerationRunner
from pbt_evo.rng import kept_rng
from tasks.digits import DigitsTask, accuracy

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers get FlakyDigits by value


def make_toolbox(task, n=8, variant="pbt_nas", tau=None):
    """Every entry the loop calls, registered by hand ("nothing" is an operator that does nothing)."""
    tb = base.Toolbox()
    tb.register("population", pbt_evo.init_population, task.space, n)
    tb.register("train", pbt_evo.train_member)
    tb.register("survivors", pbt_evo.no_survivors)
    tb.register("select", pbt_evo.sel_truncation, tau=tau or (0.25 if n >= 8 else 0.5))
    tb.register("pair", pbt_evo.pair_one)
    tb.register("mate", pbt_evo.cx_none)
    tb.register("mutate", pbt_evo.mut_none)
    if variant == "random":
        tb.register("select", pbt_evo.sel_none)
    if variant in ("pbt_nas", "no_mixing"):
        tb.register("pair", pbt_evo.pair_random if variant == "pbt_nas" else pbt_evo.pair_self)
        tb.register("mate", pbt_evo.cx_mix, p=0.25)
    if variant == "searl":
        tb.register("mutate", pbt_evo.mut_searl, space=task.space)
    return tb


def train_all(pmap, individuals, epochs=1):
    """Train each individual ``epochs`` on a map (declared calls), results in order."""
    train = partial(pbt_evo.train_member, epochs=epochs)
    return map_calls(pmap, [Call(train, ind, state=ind.handle, genome=ind) for ind in individuals])


def run(tb, e_total=3, e_step=1, seed=0, hof=None):
    random.seed(seed)
    gens = []
    stats = tools.Statistics(lambda ind: ind.fitness.values[0])
    stats.register("max", np.max)
    pop, log = pbt_evo.ea_pbt(tb.population(), tb, e_total, e_step, stats=stats, halloffame=hof, hook=gens.append)
    return pop, log, gens


def check_lineage(gens):
    for g in gens:
        ids = {ind.id for ind in g.trained}
        for _, child in g.replaced:
            assert set(child.parents) <= ids
            assert child.id not in ids


def test_ray_loop_best_member_reproduces_fitness(ray_session, digits_task):
    tb = make_toolbox(digits_task)
    tb.map = pbt_evo.RayMap(pbt_evo.TaskSpec("tasks.digits:DigitsTask"), workers=2)
    hof = tools.HallOfFame(1)
    pop, log, gens = run(tb, hof=hof)
    tb.map.close()
    assert [r["epochs"] for r in log] == [1, 2, 3] and [len(g.replaced) for g in gens] == [2, 2, 0]
    assert all(isinstance(ind.handle, StoredState) and isinstance(ind.handle.ref, ray.ObjectRef) for ind in pop)
    check_lineage(gens)
    best = hof[0]
    model = pbt_evo.export_module(digits_task, best)
    assert accuracy(model, *digits_task.data["val"]) == best.fitness.values[0]
    assert best.fitness.values[0] == max(r["max"] for r in log) > 0.5


def test_serial_map_gives_the_ray_result(ray_session, digits_task):
    results = []
    spec = pbt_evo.TaskSpec("tasks.digits:DigitsTask")
    for make_map in (lambda: pbt_evo.SerialMap(digits_task, num_threads=1),
                     lambda: pbt_evo.RayMap(spec, workers=2)):
        tb = make_toolbox(digits_task, n=4)
        tb.map = make_map()
        pop, _, _ = run(tb, e_total=3, seed=7)
        results.append([(ind.id, list(ind), ind.fitness.values) for ind in pop])
        tb.map.close()
    assert results[0] == results[1]


class KillWorkerOnce(DigitsTask):
    """Digits whose worker process exits (as ``kill -9`` would end it) in the middle of its third call."""

    def __init__(self, marker_dir):
        super().__init__()
        self.marker_dir, self.calls = marker_dir, 0

    def build(self, genome):
        import os
        from pathlib import Path

        self.calls += 1
        marker = Path(self.marker_dir) / "killed"
        if self.calls == 3 and not marker.exists():
            marker.write_text(str(os.getpid()))
            os._exit(9)
        return super().build(genome)


def test_a_killed_worker_is_replaced_and_the_run_equals_the_serial_one(ray_session, digits_task, tmp_path):
    """Every state lives in the object store, owned by the driver: a worker that dies takes nothing with
    it. Its calls are retried on the other worker, a new worker replaces it, and the run's result is the
    serial map's, member for member."""
    runs = []
    for make_map in (lambda: pbt_evo.SerialMap(digits_task, num_threads=1),
                     lambda: pbt_evo.RayMap(pbt_evo.TaskSpec(KillWorkerOnce, {"marker_dir": str(tmp_path)}),
                                            workers=2, reuse_members=True)):
        tb = make_toolbox(digits_task, n=8)
        tb.register("survivors", pbt_evo.sure_survivors, tau=0.25)
        tb.map = make_map()
        pop, log, _ = run(tb, e_total=3, seed=3)
        runs.append(([(ind.id, list(ind), ind.fitness.values, ind.epochs) for ind in pop], log.select("failed")))
        tb.map.close()
    assert (tmp_path / "killed").exists()  # a worker did die
    assert runs[1] == runs[0] and runs[0][1] == [0, 0, 0]


def test_sure_survivors_start_early_with_the_synchronous_result(ray_session, digits_task):
    """With ``survivors`` in the toolbox, a stream map starts a sure survivor's next generation before
    the slowest member ends; the run equals the synchronous one (DEAP's plain ``map``: one call per
    generation), and hooks see each generation's own states only."""
    runs, threads = [], torch.get_num_threads()
    for make_map, early in ((lambda: pbt_evo.BatchMap(map, digits_task), False),
                            (lambda: pbt_evo.SerialMap(digits_task, num_threads=1), True),
                            (lambda: pbt_evo.RayMap(pbt_evo.TaskSpec("tasks.digits:DigitsTask"), workers=2), True)):
        torch.set_num_threads(1)  # as the other maps' workers: same arithmetic
        tb = make_toolbox(digits_task, n=8)
        if early:
            tb.register("survivors", pbt_evo.sure_survivors, tau=0.25)
        tb.map = make_map()
        seen = []

        def hook(g):
            # the population handed to a hook (and to checkpoints) holds this generation's states
            assert all(ind.epochs == g.epochs for ind in g.trained)
            seen.append((g.outcome.started_early, [ind.handle for ind in g.trained]))

        random.seed(3)
        pop, log = pbt_evo.ea_pbt(tb.population(), tb, 3, 1, hook=hook)
        torch.set_num_threads(threads)
        runs.append(([(ind.id, list(ind), ind.fitness.values, ind.epochs) for ind in pop],
                     [(r["gen"], r["nevals"]) for r in log], [s[0] for s in seen]))
        if isinstance(tb.map, pbt_evo.RayMap):
            live = ray.get([a.live_stats.remote() for a in tb.map.actors])

            def interrupt(g):
                raise KeyboardInterrupt

            # interrupted with early starts in flight: the map forgets them and can be used again
            with pytest.raises(KeyboardInterrupt):
                pbt_evo.ea_pbt(tb.population(), tb, 3, 1, hook=interrupt)
            assert len(train_all(tb.map, pop[:3])) == 3
        tb.map.close()
    (sync, _, sync_early), (serial, _, serial_early), (ray_run, ray_log, ray_early) = runs
    # survivors continued in memory where they trained before; superseded live members are dropped with
    # a worker's next call after the loop's `retain`: at the end, the population's 8 plus at most the 2
    # losers of each of the 2 exploits (a worker that got only early starts after a retain prunes later)
    assert sum(s["continued"] for s in live) >= 4 and sum(s["held"] for s in live) <= 8 + 2 * 2
    assert sync == serial
    assert serial == ray_run and ray_log == [(1, 8), (2, 8), (3, 8)]
    assert sync_early == [0, 0, 0]
    # 6 survivors a generation, at most; none after the last generation
    assert serial_early[-1] == ray_early[-1] == 0 and all(0 < n <= 6 for n in ray_early[:-1])


def test_max_early_caps_early_starts_with_the_synchronous_result(digits_task):
    """A map's ``max_early=K`` starts at most K members early a generation (each holds a second state until
    its generation begins); ``0`` is the synchronous loop. The results are the same whatever K."""
    threads = torch.get_num_threads()
    runs, early = [], []
    for max_early in (None, 2, 0):
        tb = make_toolbox(digits_task, n=8)
        tb.register("survivors", pbt_evo.sure_survivors, tau=0.25)
        tb.map = pbt_evo.SerialMap(digits_task, num_threads=1, max_early=max_early)
        started: list[int] = []
        random.seed(3)
        pop, _ = pbt_evo.ea_pbt(tb.population(), tb, 3, 1, hook=lambda g: started.append(g.outcome.started_early))
        runs.append([(ind.id, list(ind), ind.fitness.values, ind.epochs) for ind in pop])
        early.append(started)
    torch.set_num_threads(threads)
    assert early == [[6, 6, 0], [2, 2, 0], [0, 0, 0]]
    assert runs[0] == runs[1] == runs[2]
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="max_early must be an int >= 0"):
            pbt_evo.SerialMap(digits_task, max_early=bad)


@pytest.mark.parametrize("backend", ["serial", "ray"])
def test_early_starts_survive_hooks_that_change_the_population(backend, digits_task, request):
    """A hook that moves members, a hook that maps, and a select replacing more than ``survivors``
    assumed: early starts whose member moved or was replaced are dropped, so the run still equals the
    synchronous loop (DEAP's plain map) with the same hook."""
    def run_with(make_map, early):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        tb = make_toolbox(digits_task, n=8, tau=0.5)        # 4 replaced a generation...
        if early:
            tb.register("survivors", pbt_evo.sure_survivors, tau=0.25)  # ...survivors assumes 2
        tb.map = make_map()
        extra = []

        def hook(g):
            g.population.reverse()
            with kept_rng():  # the builtin map trains in this process
                res = train_all(tb.map, [tb.clone(g.trained[0])])
            extra.append(res[0].fitness)

        random.seed(5)
        pop, _ = pbt_evo.ea_pbt(tb.population(), tb, 3, 1, hook=hook)
        torch.set_num_threads(threads)
        tb.map.close()
        return [(ind.id, list(ind), ind.fitness.values, ind.epochs) for ind in pop], extra

    if backend == "ray":
        request.getfixturevalue("ray_session")
        make = lambda: pbt_evo.RayMap(pbt_evo.TaskSpec("tasks.digits:DigitsTask"), workers=2)  # noqa: E731
    else:
        make = lambda: pbt_evo.SerialMap(digits_task, num_threads=1)  # noqa: E731
    assert run_with(make, True) == run_with(lambda: pbt_evo.BatchMap(map, digits_task), False)


def test_population_with_one_object_twice_is_refused(digits_task):
    tb = make_toolbox(digits_task, n=4)
    tb.map = pbt_evo.SerialMap(digits_task)
    pop = tb.population()
    pop[3] = pop[1]
    with pytest.raises(ValueError, match="positions 1 and 3: put a copy"):
        pbt_evo.ea_pbt(pop, tb, 1, 1)


def test_interrupted_map_call_leaves_the_map_usable(digits_task):
    smap = pbt_evo.SerialMap(digits_task)

    def stop_at_second(i):
        if i == 1:
            raise KeyboardInterrupt
        return i

    with pytest.raises(KeyboardInterrupt):
        smap(stop_at_second, range(4))
    assert smap(lambda i: 10 * i, range(3)) == [0, 10, 20]


@pytest.mark.parametrize("variant", ["pbt_nas", "no_mixing", "searl", "random"])
def test_variants_are_toolbox_configurations(digits_task, variant):
    tb = make_toolbox(digits_task, n=4, variant=variant)
    tb.map = pbt_evo.SerialMap(digits_task)
    pop, log, gens = run(tb, e_total=3)
    check_lineage(gens)
    children = [c for g in gens for _, c in g.replaced]
    if variant == "random":
        assert children == [] and sorted(ind.id for ind in pop) == [0, 1, 2, 3]
    else:
        assert len(children) == 4  # two children after generations 1 and 2, none after the last
    if variant == "no_mixing":
        assert all(len(set(c.parents)) == 1 for c in children)
    if variant == "searl":
        assert all(len(c.parents) == 1 for c in children)


def test_e_step_schedule_and_final_generation(digits_task):
    tb = make_toolbox(digits_task, n=4)
    tb.map = pbt_evo.SerialMap(digits_task)
    pop, log, gens = run(tb, e_total=5, e_step={0: 2, 4: 1})
    assert [r["epochs"] for r in log] == [2, 4, 5]
    assert gens[-1].done and gens[-1].replaced == []
    assert all(ind.epochs == 5 for ind in pop if ind.id < 4)


class FlakyDigits(DigitsTask):
    """Digits whose members fail: ``always`` genomes on every attempt, others once per marker file."""

    def __init__(self, marker_dir, always_op0=None):
        super().__init__()
        self.marker_dir, self.always_op0 = marker_dir, always_op0

    def build(self, genome):
        member = super().build(genome)
        train, task = member.train, self

        def flaky_train(epochs):
            import os
            from pathlib import Path

            if genome[0] == task.always_op0:
                raise RuntimeError("diverged")
            marker = Path(task.marker_dir) / "-".join(map(str, genome))
            if not marker.exists():
                marker.write_text(str(os.getpid()))
                raise RuntimeError("first attempt fails")
            return {**train(epochs), "pid": float(os.getpid())}

        member.train = flaky_train
        return member


def test_ray_retries_on_another_worker(ray_session, digits_task, tmp_path):
    spec = pbt_evo.TaskSpec(FlakyDigits, {"marker_dir": str(tmp_path)})
    rmap = pbt_evo.RayMap(spec, workers=2, max_retries=1)
    pop = pbt_evo.init_population(digits_task.space, 3)
    results = train_all(rmap, pop)
    rmap.close()
    for ind, res in zip(pop, results):
        assert not res.failed and 0 < res.fitness <= 1
        first_pid = int((tmp_path / "-".join(map(str, ind))).read_text())
        assert res.metrics["pid"] != first_pid  # the retry ran on the other worker


def test_failed_member_is_worst_and_run_continues(digits_task, tmp_path):
    task = FlakyDigits(str(tmp_path), always_op0=0)
    for g in task.space.sample_balanced(8, random.Random(0)):  # pre-create markers: only op0=0 fails
        (tmp_path / "-".join(map(str, g))).write_text("0")
    tb = make_toolbox(task, n=8)
    tb.map = pbt_evo.SerialMap(task, max_retries=1)
    random.seed(0)
    pop0 = tb.population()
    failing = [ind.id for ind in pop0 if ind[0] == 0]
    assert failing
    gens = []
    pbt_evo.ea_pbt(pop0, tb, e_total=1, e_step=1, hook=gens.append)
    g = gens[0]
    assert g.failed == len(failing)
    for ind in g.trained:
        if ind.id in failing:
            assert ind.fitness.values == (-float("inf"),) and ind.epochs == 0
            assert isinstance(ind.handle, pbt_evo.FreshState)  # previous state kept, nothing lost
        else:
            assert 0 < ind.fitness.values[0] <= 1


@pytest.mark.parametrize("backend", ["serial", "ray"])
def test_each_member_gets_its_new_state_as_it_arrives(backend, digits_task, request):
    """So the previous state is freed during the generation (about one state per member in the store,
    not two). The map writes nothing into items: the generation runner records each result."""
    if backend == "ray":
        request.getfixturevalue("ray_session")
        tmap = pbt_evo.RayMap(pbt_evo.TaskSpec("tasks.digits:DigitsTask"), workers=2)
    else:
        tmap = pbt_evo.SerialMap(digits_task)
    pop = pbt_evo.init_population(digits_task.space, 4)
    seen = []
    tmap.progress = lambda i, res: seen.append((i, pop[i].handle is res.state))
    outcome = GenerationRunner(tmap, pbt_evo.train_member, pbt_evo.no_survivors).run(pop, 1, 0, 0)
    items = pop + [pop[3]]
    before = [ind.handle for ind in items]
    results = train_all(tmap, items)
    tmap.close()
    assert sorted(seen) == [(0, True), (1, True), (2, True), (3, True)] and outcome.failed == 0
    assert [ind.handle for ind in items] == before  # declared calls: the items are not written to
    assert all(not r.failed for r in results) and results[3].state is not results[4].state
