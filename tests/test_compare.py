"""compare over hand-built run folders of 3 tasks (data draws) x 9 seeds: the pooled table pairs by
(task, seed), n = 27, and its Wilcoxon statistics, effect sizes and per-task tables equal direct scipy
computations."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.stats import rankdata, ttest_rel, wilcoxon

from pbt_evo.cli import compare

ALGS = ("pbt_nas", "searl", "random")
DRAWS = (1, 2, 42)
SEEDS = range(9)
TARGET = "tasks.mnist1d:MNIST1DTask"


def task_name(draw: int) -> str:
    return f"{TARGET}(dataset_seed={draw})"  # pbt_evo.stats.task_label of the configs below


def make_values() -> dict[str, dict[tuple[int, int], tuple[float, float]]]:
    """(best, test) per algorithm and (draw, seed): multiples of 1/1000 like accuracies (so some ties),
    pbt_nas ahead on draw 1 only."""
    rng = np.random.default_rng(5)
    out = {}
    for alg in ALGS:
        out[alg] = {}
        for d in DRAWS:
            for s in SEEDS:
                best = 0.9 + 0.02 * rng.standard_normal() + (0.02 if alg == "pbt_nas" and d == 1 else 0.0)
                out[alg][(d, s)] = (round(best, 3), round(best - 0.015 + 0.01 * rng.standard_normal(), 3))
    return out


def write_run(folder: Path, alg: str, draw: int, seed: int, best: float, test: float) -> None:
    folder.mkdir(parents=True)
    cfg = {"name": f"m_d{draw}_{alg}_s{seed}", "seed": seed,
           "task": {"target": TARGET, "args": {"dataset_seed": draw}},
           "algorithm": {"name": alg, "e_total": 4, "e_step": 2, "shrink_perturb": [0.4, 0.1], "init": "balanced"}}
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg))
    rows = [{"gen": 1, "epochs": 2, "best": round(best - 0.1, 3)}, {"gen": 2, "epochs": 4, "best": best}]
    (folder / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "best").mkdir()
    (folder / "best" / "genome.json").write_text(json.dumps({"id": 9, "fitness": best, "test_score": test}))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("draws")
    values = make_values()
    for alg in ALGS:
        for (d, s), (best, test) in values[alg].items():
            write_run(root / "runs" / f"m_d{d}_{alg}_s{s}", alg, d, s, best, test)
    return root, values


def read_csv(path: Path) -> list[dict]:
    return list(csv.DictReader(path.open()))


def check_row(row: dict, base: list[float], other: list[float]) -> None:
    """One compare.csv row against scipy on the same pairs: W+ (also by hand), p, the t interval."""
    ref = wilcoxon(base, other, alternative="greater")
    d = np.subtract(base, other)
    nonzero = d[d != 0]
    w_plus = rankdata(np.abs(nonzero))[nonzero > 0].sum()  # average ranks for ties, as scipy
    assert float(row["statistic"]) == ref.statistic == w_plus
    assert float(row["p"]) == ref.pvalue
    ci = ttest_rel(base, other).confidence_interval(0.95)
    assert float(row["diff"]) == pytest.approx(d.mean(), rel=1e-12)
    assert float(row["diff_low"]) == pytest.approx(ci.low, rel=1e-12)
    assert float(row["diff_high"]) == pytest.approx(ci.high, rel=1e-12)
    assert int(row["n"]) == len(base)


@pytest.mark.parametrize("report, which", [("best", 0), ("test", 1)])
def test_pooled_over_draws_and_per_draw_tables_equal_scipy(study, tmp_path, report, which):
    root, values = study
    out = tmp_path / "cmp"
    assert compare.main([str(root / "runs"), "--report", report, "--per-task", "--out", str(out)]) == 0

    pooled = read_csv(out / "compare.csv")
    assert [r["algorithm"] for r in pooled] == ["pbt_nas", "random", "searl"]  # labels as found (sorted folders)
    keys = sorted(values["pbt_nas"])  # the same (draw, seed) pairs for every algorithm: 27
    base = [values["pbt_nas"][k][which] for k in keys]
    assert len(base) == 27 and pooled[0]["n"] == "27"
    assert float(pooled[0]["mean"]) == pytest.approx(np.mean(base), rel=1e-12)
    for row in pooled[1:]:
        check_row(row, base, [values[row["algorithm"]][k][which] for k in keys])
        assert float(row["threshold"]) == 0.025  # Bonferroni over the 2 tests

    per_task = read_csv(out / "compare_per_task.csv")
    assert [r["task"] for r in per_task] == [task_name(d) for d in DRAWS for _ in ALGS]
    for row in per_task:
        d = next(d for d in DRAWS if row["task"] == task_name(d))
        base = [values["pbt_nas"][(d, s)][which] for s in SEEDS]
        if row["algorithm"] == "pbt_nas":
            assert float(row["mean"]) == pytest.approx(np.mean(base), rel=1e-12) and row["p"] == ""
        else:
            check_row(row, base, [values[row["algorithm"]][(d, s)][which] for s in SEEDS])

    md = (out / "compare.md").read_text()
    assert md.count("| **pbt_nas** (baseline) |") == 4 and md.count("\n### ") == 3
    assert "| **pbt_nas** (baseline) | 27 |" in md and md.count("| **pbt_nas** (baseline) | 9 |") == 3
    first = next(r for r in pooled if r["algorithm"] == "random")
    cell = f"{float(first['diff']):+.4f} [{float(first['diff_low']):+.4f}, {float(first['diff_high']):+.4f}]"
    assert "| random | 27 | " in md and cell in md
    assert (out / "anytime_pooled.png").stat().st_size > 1000 and (out / "anytime.png").stat().st_size > 1000


def test_without_per_task_one_table(study, tmp_path):
    root, _ = study
    out = tmp_path / "cmp"
    assert compare.main([str(root / "runs"), "--only", "pbt_nas,searl", "--out", str(out)]) == 0
    md = (out / "compare.md").read_text()
    assert md.count("| **pbt_nas** (baseline) |") == 1 and "### " not in md
    assert not (out / "compare_per_task.csv").exists()
    assert [r["algorithm"] for r in read_csv(out / "compare.csv")] == ["pbt_nas", "searl"]
