"""A tiny sweep (2 algorithms x 2 seeds, serial, tiny budgets) end to end: run folders, skip and resume,
then compare.py's table and plot, and a model soup of one of the runs."""

import csv
import json
import shutil
from pathlib import Path

import pytest
import yaml

from pbt_evo.cli import compare, sweep
from pbt_evo.cli.soup import soup_run

CONFIG = {
    "name": "tiny",
    "task": {"target": "tasks.digits:DigitsTask", "args": {"channels": 4}},
    "algorithm": {"population": 6, "e_total": 2, "e_step": 1},
    "parallel": {"backend": "serial", "cpus_per_worker": 1},
    "output": {"tensorboard": False},
}


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    out = root / "runs"
    code = sweep.main([str(path), "--algorithms", "pbt_nas,random", "--seeds", "0,1", "--out", str(out)])
    return path, out, code


def test_sweep_makes_one_folder_per_run(swept):
    path, out, code = swept
    assert code == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["tiny_pbt_nas_s0", "tiny_pbt_nas_s1", "tiny_random_s0", "tiny_random_s1"]
    cfg = yaml.safe_load((out / "tiny_random_s1" / "config.yaml").read_text())
    assert cfg["seed"] == 1 and cfg["algorithm"]["name"] == "random" and cfg["name"] == "tiny_random_s1"
    assert all((out / n / "best" / "genome.json").is_file() for n in names)


def test_sweep_skips_finished_and_resumes_interrupted(swept, capsys):
    path, out, _ = swept
    shutil.rmtree(out / "tiny_random_s0" / "best")  # as if killed before the export
    assert sweep.main([str(path), "--algorithms", "pbt_nas,random", "--seeds", "0,1", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.count("finished before, skipped") == 3 and "tiny_random_s0: resuming" in text
    assert (out / "tiny_random_s0" / "best" / "genome.json").is_file()


def test_compare_table_has_a_row_per_algorithm(swept, tmp_path):
    _, out, _ = swept
    assert compare.main([str(out), "--out", str(tmp_path / "cmp"), "--baseline", "pbt_nas"]) == 0
    rows = list(csv.DictReader((tmp_path / "cmp" / "compare.csv").open()))
    assert [r["algorithm"] for r in rows] == ["pbt_nas", "random"] and all(r["n"] == "2" for r in rows)
    best = [json.loads((out / f"tiny_pbt_nas_s{s}" / "best" / "genome.json").read_text())["fitness"] for s in (0, 1)]
    assert float(rows[0]["mean"]) == pytest.approx(sum(best) / 2)
    md = (tmp_path / "cmp" / "compare.md").read_text()
    assert "| **pbt_nas** (baseline) | 2 |" in md and "| random | 2 |" in md
    assert (tmp_path / "cmp" / "anytime.png").stat().st_size > 1000


def test_compare_reports_final_and_test_as_computed_by_hand(swept, tmp_path):
    """``--report final``: the best member of the final population (population.jsonl's last generation);
    ``--report test``: the exported best network's accuracy on the held-out test split."""
    import pbt_evo
    from tasks.digits import accuracy, load_splits

    _, out, _ = swept
    x_test, y_test = load_splits()["test"]
    final, test = {}, {}
    for alg in ("pbt_nas", "random"):
        final[alg], test[alg] = [], []
        for s in (0, 1):
            run = out / f"tiny_{alg}_s{s}"
            rows = [json.loads(line) for line in (run / "population.jsonl").read_text().splitlines()]
            last = max(r["gen"] for r in rows)
            final[alg].append(max(r["fitness"] for r in rows if r["gen"] == last))
            model, _ = pbt_evo.load_best(run)
            test[alg].append(accuracy(model, x_test, y_test))
    for report, want in (("final", final), ("test", test)):
        folder = tmp_path / report
        assert compare.main([str(out), "--out", str(folder), "--report", report]) == 0
        rows = list(csv.DictReader((folder / "compare.csv").open()))
        assert {r["algorithm"]: float(r["mean"]) for r in rows} == {
            alg: pytest.approx(sum(v) / 2, abs=1e-12) for alg, v in want.items()}
        head = (folder / "compare.md").read_text().splitlines()[0]
        assert head.startswith(f"Reported: {'final-population fitness' if report == 'final' else 'test score'}")
    # a run folder written before test scores were recorded: computed from best/ instead
    info_path = out / "tiny_random_s1" / "best" / "genome.json"
    info = json.loads(info_path.read_text())
    del info["test_score"]
    info_path.write_text(json.dumps(info))
    assert compare.best_test_score(out / "tiny_random_s1") == test["random"][1]


def test_compare_by_config_name_pairs_searches_of_different_spaces_by_seed(swept, tmp_path):
    path, out, _ = swept
    other = tmp_path / "narrow.yaml"
    other.write_text(yaml.safe_dump({**CONFIG, "name": "narrow", "task": {**CONFIG["task"], "args": {"channels": 2}}}))
    assert sweep.main([str(other), "--algorithms", "pbt_nas", "--seeds", "0,1", "--out", str(tmp_path / "runs")]) == 0
    runs = [str(out / f"tiny_{a}_s{s}") for a in ("pbt_nas", "random") for s in (0, 1)]
    runs += [str(tmp_path / "runs" / f"narrow_pbt_nas_s{s}") for s in (0, 1)]
    assert compare.main(runs + ["--out", str(tmp_path / "by_label")]) == 2  # pbt_nas in two tasks: unpaired
    assert compare.main(runs + ["--out", str(tmp_path / "cmp"), "--group-by", "name", "--baseline", "narrow_pbt_nas"]) == 0
    rows = list(csv.DictReader((tmp_path / "cmp" / "compare.csv").open()))
    want = {name: sum(json.loads((p / "best" / "genome.json").read_text())["fitness"]
                      for p in map(Path, runs) if p.name.startswith(name + "_s")) / 2
            for name in ("narrow_pbt_nas", "tiny_pbt_nas", "tiny_random")}
    assert {r["algorithm"]: float(r["mean"]) for r in rows} == {k: pytest.approx(v, abs=1e-12) for k, v in want.items()}
    assert [r["algorithm"] for r in rows][0] == "narrow_pbt_nas" and all(r["n"] == "2" for r in rows)


@pytest.mark.parametrize("args, message", [
    (["{out}/tiny_pbt_nas_s0", "{out}/tiny_pbt_nas_s1"], "at least 2 algorithms"),
    (["{out}/tiny_pbt_nas_s0", "{out}/tiny_pbt_nas_s1", "{out}/tiny_random_s0"], "not paired"),
    (["{out}/tiny_pbt_nas_s0/best"], "is not a pbt_evo run folder"),
    (["{out}", "--baseline", "searl"], "baseline 'searl' has no runs"),
])
def test_compare_bad_input_is_one_line_exit_2(swept, tmp_path, capsys, args, message):
    _, out, _ = swept
    assert compare.main([a.format(out=out) for a in args] + ["--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and message in err, err


def test_sweep_bad_label_is_one_line_exit_2(swept, capsys):
    path, out, _ = swept
    assert sweep.main([str(path), "--algorithms", "pbt_nas,pbt_nas_sp11", "--seeds", "0", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown suffix '_sp11'" in err


def test_soup_of_a_run(swept):
    _, out, _ = swept
    run = out / "tiny_pbt_nas_s0"
    result, folder = soup_run(run, log=lambda s: None)
    info = json.loads((folder / "soup.json").read_text())
    assert result.fitness >= result.best_single and info["gain"] == result.gain
    assert (folder / "model.safetensors").is_file() and info["ingredients"][0] == info["candidates"][0]["id"]


@pytest.mark.slow
def test_sweep_on_ray_reuses_one_instance(ray_session, tmp_path):
    """Runs one after another on the session's Ray instance, which the sweep must leave running."""
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, "parallel": {"backend": "ray", "workers": 2}}))
    out = tmp_path / "runs"
    assert sweep.main([str(path), "--algorithms", "pbt_nas,searl", "--seeds", "0", "--out", str(out)]) == 0
    assert ray_session.is_initialized()
    assert all((out / n / "best" / "genome.json").is_file() for n in ("tiny_pbt_nas_s0", "tiny_searl_s0"))
