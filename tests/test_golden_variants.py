"""Golden runs of every toolbox variant the paper and its extensions define, written before the core's
contracts were made explicit (issue 26: variant registry, spawned children, recipes as steps): random search
with shrink-perturb, the research-code compatibility choices, classic PBT and the hyperparameter variants,
multi-objective selection, NASWOT initialisation, the shrink-perturb and optimizer-policy ablations and
width variables. ``tests/test_golden.py`` covers the four variants of the paper's main table.

Each run is seeded and serial; every member's fitness, genome, lineage (parents, taken, changed genes),
a checksum of its model and one of its optimizer state (moments and learning rate) are compared.

Regenerate only for an intended change of behaviour, and say why in the commit:
``python tests/test_golden_variants.py --write``.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from deap import tools

GOLDEN = Path(__file__).parent / "golden" / "variants_serial.json"
HP = {"adam": {"lr": {"log": [1e-3, 1e-1, 5]}}}
CASES = {
    "random_sp": dict(algorithm="random_sp"),
    "random_sp_rc": dict(algorithm="random_sp", research_code_compat=True),
    "searl_rc": dict(algorithm="searl", research_code_compat=True),
    "pbt_nas_sp10": dict(algorithm="pbt_nas", shrink_perturb=(1.0, 0.0)),
    "pbt_nas_sp01": dict(algorithm="pbt_nas", shrink_perturb=(0.0, 1.0)),
    "pbt_nas_donor": dict(algorithm="pbt_nas", optimizer_policy="donor", p=0.5),
    "pbt_nas_naswot": dict(algorithm="pbt_nas", init="naswot"),
    "pbt_nas_multiobj": dict(algorithm="pbt_nas", objectives=(("fitness", "params"), (1.0, -1.0))),
    "pbt": dict(algorithm="pbt", hyper=True),
    "pbt_nas_hp": dict(algorithm="pbt_nas_hp", hyper=True),
    "random_hp": dict(algorithm="random_hp", hyper=True),
    "widths_pbt_nas": dict(algorithm="pbt_nas", widths=True, p=0.5),
    "widths_searl": dict(algorithm="searl", widths=True),
    "widths_fresh": dict(algorithm="pbt_nas", widths=True, p=0.5, width_policy="fresh", optimizer_policy="donor"),
}


def make_task(case: dict):
    from pbt_evo.hyper import HyperparameterTask
    from tasks.digits import DigitsTask
    from tasks.mnist1d_widths import MNIST1DWidthsTask

    if case.get("widths"):
        return MNIST1DWidthsTask(widths=(4, 8), num_samples=1000)
    task = DigitsTask(channels=8)
    return HyperparameterTask(task, hyperparameters=HP) if case.get("hyper") else task


def golden_run(name: str) -> dict:
    """N=8, 3 generations of 1 epoch, one torch thread, driver seed 0."""
    import pbt_evo
    from pbt_evo.objectives import Objectives

    case = dict(CASES[name])
    task = make_task(case)
    for key in ("hyper", "widths"):
        case.pop(key, None)
    multi = "objectives" in case
    if multi:
        case["objectives"] = Objectives(*case["objectives"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    tb = pbt_evo.make_toolbox(case.pop("algorithm"), task.space, population=8, task=task, **case)
    tb.map = pbt_evo.SerialMap(task, num_threads=1)
    hof = pbt_evo.TrainedFront() if multi else tools.HallOfFame(1)
    generations = []

    def hook(g) -> None:
        generations.append({
            "generation": g.generation, "epochs": g.epochs,
            "trained": [{"id": ind.id, "genome": list(ind), "fitness": list(ind.fitness.values), "epochs": ind.epochs,
                         "parents": list(ind.parents), "origin": list(ind.origin), "seed": ind.seed,
                         **checksums(ind.handle.load())} for ind in g.trained],
            "replaced": [{"slot": j, "id": c.id, "seed": c.seed, "genome": list(c), "parents": list(c.parents),
                          "taken": list(c.taken), "changed": [list(x) for x in c.changed], "origin": list(c.origin)}
                         for j, c in g.replaced],
            "population": [[ind.id, ind.seed, list(ind)] for ind in g.population]})

    random.seed(0)
    np.random.seed(0)
    with tb.map:  # closed on the way out
        pop, log = pbt_evo.ea_pbt(tb.population(), tb, e_total=3, e_step=1, halloffame=hof, hook=hook)
        torch.set_num_threads(threads)
    final = [{"id": ind.id, "genome": list(ind)} for ind in pop]
    fame = sorted([ind.id, ind.epochs, list(ind.fitness.values)] for ind in hof)
    return {"generations": generations, "final": final, "halloffame": fame,
            "logbook": [[r["gen"], r["epochs"], r["nevals"], r["failed"]] for r in log]}


def checksums(state: dict) -> dict:
    """Sum of absolute values of the model's tensors and of the optimizers' moments; every group's lr."""
    model = float(sum(torch.as_tensor(v).double().abs().sum() for v in state["model"].values()))
    moments, lrs = 0.0, []
    for name in sorted(state.get("optim", {})):
        named = state["optim"][name]
        for key in sorted(named.get("state", {})):
            moments += float(sum(torch.as_tensor(v).double().abs().sum() for k, v in named["state"][key].items()
                                 if k != "step"))
        lrs += [float(g["lr"]) for g in named.get("groups", [])]
    return {"model": model, "moments": moments, "lr": lrs}


def assert_same(run: dict, want: dict, where: str) -> None:
    assert run["logbook"] == want["logbook"], where
    assert run["final"] == want["final"], where
    assert run["halloffame"] == want["halloffame"], where
    for g, h in zip(run["generations"], want["generations"], strict=True):
        at = f"{where}, generation {g['generation']}"
        assert g["replaced"] == h["replaced"], at
        assert g["population"] == h["population"], at
        for a, b in zip(g["trained"], h["trained"], strict=True):
            exact = ("model", "moments")
            assert {k: v for k, v in a.items() if k not in exact} == {k: v for k, v in b.items() if k not in exact}, at
            for k in exact:
                assert a[k] == pytest.approx(b[k], rel=1e-5), f"{at}, member {a['id']}, {k}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_variant_run(name):
    assert_same(golden_run(name), json.loads(GOLDEN.read_text())[name], name)


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:  # regenerate (say why in the commit)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    GOLDEN.write_text(json.dumps({name: golden_run(name) for name in CASES}, indent=1) + "\n")
