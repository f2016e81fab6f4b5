"""Golden run: a seeded serial digits search whose every member's fitness, genome and lineage were stored
before the core was redesigned (``tests/golden/digits_serial.json``). Any change to the loop, the
operators, the maps or weight inheritance that changes behaviour changes these numbers.

Fitness is validation accuracy on 270 images (a multiple of 1/270), compared exactly; the weights are
compared through a checksum per member (sum of absolute values of the model's state), to 1e-5 relative.

Regenerate only for an intended change of behaviour, and say why in the commit:
``python tests/test_golden.py --write``.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest
import torch
from deap import tools

GOLDEN = Path(__file__).parent / "golden" / "digits_serial.json"
VARIANTS = ("pbt_nas", "searl", "random", "no_mixing")


def golden_run(variant: str) -> dict:
    """N=8, 3 generations of 1 epoch, 8-channel digits, one torch thread, driver seed 0."""
    import pbt_evo
    from pbt_evo.variants import make_toolbox
    from tasks.digits import DigitsTask

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    task = DigitsTask(channels=8)
    tb = make_toolbox(variant, task.space, population=8)
    tb.map = pbt_evo.SerialMap(task, num_threads=1)
    hof = tools.HallOfFame(1)
    generations = []

    def hook(g) -> None:
        generations.append({
            "generation": g.generation, "epochs": g.epochs,
            "trained": [{"id": ind.id, "genome": list(ind), "fitness": ind.fitness.values[0], "epochs": ind.epochs,
                         "parents": list(ind.parents), "origin": list(ind.origin),
                         "checksum": checksum(ind.handle.load()["model"])} for ind in g.trained],
            "replaced": [{"slot": j, "id": c.id, "genome": list(c), "parents": list(c.parents),
                          "taken": list(c.taken), "origin": list(c.origin)} for j, c in g.replaced]})

    random.seed(0)
    try:
        pop, log = pbt_evo.ea_pbt(tb.population(), tb, e_total=3, e_step=1, halloffame=hof, hook=hook)
    finally:
        tb.map.close()
        torch.set_num_threads(threads)
    return {"generations": generations, "final": [{"id": ind.id, "genome": list(ind)} for ind in pop],
            "halloffame": [hof[0].id, hof[0].epochs, hof[0].fitness.values[0]],
            "logbook": [[r["gen"], r["epochs"], r["nevals"], r["failed"]] for r in log]}


def checksum(model_state: dict) -> float:
    return float(sum(torch.as_tensor(v).double().abs().sum() for v in model_state.values()))


def assert_same(run: dict, want: dict, where: str) -> None:
    assert run["logbook"] == want["logbook"], where
    assert run["final"] == want["final"], where
    assert run["halloffame"] == want["halloffame"], where
    for g, h in zip(run["generations"], want["generations"], strict=True):
        assert g["replaced"] == h["replaced"], f"{where}, generation {g['generation']}"
        for a, b in zip(g["trained"], h["trained"], strict=True):
            assert {k: v for k, v in a.items() if k != "checksum"} == {k: v for k, v in b.items() if k != "checksum"}
            assert a["checksum"] == pytest.approx(b["checksum"], rel=1e-5), f"{where}, member {a['id']}"


@pytest.mark.parametrize("variant", VARIANTS)
def test_golden_serial_digits_run(variant):
    want = json.loads(GOLDEN.read_text())[variant]
    assert_same(golden_run(variant), want, variant)


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/test_golden.py --write   (regenerates the golden file)")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    GOLDEN.write_text(json.dumps({v: golden_run(v) for v in VARIANTS}, indent=1) + "\n")
    print(f"written: {GOLDEN}")
