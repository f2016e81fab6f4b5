"""The runner: config errors, run folder, exact resume after SIGKILL, best export (failures: test_robust.py)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import pbt_evo
from pbt_evo.run import main
from tasks.digits import DigitsTask, accuracy, load_splits

ROOT = Path(__file__).resolve().parents[1]
BASE = {
    "name": "t",
    "task": {"target": "tasks.digits:DigitsTask", "args": {"channels": 8}},
    "algorithm": {"population": 6, "e_total": 6, "e_step": 1},
    "parallel": {"backend": "serial"},
    "output": {"tensorboard": False},
}


def write_config(tmp_path, data=None, name="c.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data or BASE))
    return path


@pytest.mark.parametrize("change, message", [
    ({"algorithm": {"populaton": 6}}, "unknown key 'algorithm.populaton' (did you mean 'algorithm.population'?); allowed here: name, population,"),
    ({"algorithm": {"population": "six"}}, "'algorithm.population' is 'six'; expected an integer"),
    ({"algorithm": {"tau": 0.9}}, "'algorithm.tau' is 0.9; it must be in (0, 0.5]"),
    ({"algorithm": {"max_early": -1}}, "'algorithm.max_early' is -1; it must be >= 0 or null"),
    ({"algorithm": {"max_early": 1.5}}, "'algorithm.max_early' is 1.5; expected an integer or null"),
    ({"algorithm": {"name": "pbt2"}}, ("'algorithm.name' is 'pbt2'; expected one of pbt_nas, searl, random, no_mixing,"
                                       " random_sp, bohb, pbt, pbt_nas_hp, random_hp, bnao, nao")),
    ({"algorithm": {"e_step": {5: 2}}}, "'algorithm.e_step' is {5: 2}; expected a positive integer or a schedule"),
    ({"algorithm": {"shrink_perturb": [0.4]}}, "'algorithm.shrink_perturb' is [0.4]; expected a list of two numbers"),
    ({"algorithm": {"population": 4}}, "gives 1 parent; mixing needs at least 2"),
    ({"parallel": {"backend": "dask"}}, "'parallel.backend' is 'dask'; expected one of ray, serial"),
    ({"parallel": {"wait_timeout": 0}}, "'parallel.wait_timeout' is 0; it must be > 0 or null"),
    ({"parallel": {"wait_timeout": "1h"}}, "'parallel.wait_timeout' is '1h'; expected a number or null"),
    ({"task": {"target": "tasks.nope:Task"}}, "task tasks.nope:Task could not be built: task 'tasks.nope:Task': cannot import"),
    ({"task": {"args": {"width": 3}}}, "task.args do not fit tasks.digits:DigitsTask"),
])
def test_bad_config_is_one_clear_line(tmp_path, capsys, change, message):
    data = json.loads(json.dumps(BASE))
    for section, values in change.items():
        data[section].update(values)
    path = write_config(tmp_path, data)
    assert main([str(path), "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and message in err, err
    assert str(path) in err or "task" in message


def test_missing_required_key_missing_file_and_bad_set(tmp_path, capsys):
    data = json.loads(json.dumps(BASE))
    del data["algorithm"]["e_total"]
    assert main([str(write_config(tmp_path, data))]) == 2
    assert "missing key 'algorithm.e_total'" in capsys.readouterr().err
    assert main([str(tmp_path / "nope.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err
    assert main([str(write_config(tmp_path)), "--set", "algorithm.e_total"]) == 2
    assert "expected key.sub=value" in capsys.readouterr().err


def test_cli_error_has_no_traceback(tmp_path):
    data = json.loads(json.dumps(BASE))
    data["algorithm"]["p"] = 2
    proc = subprocess.run([sys.executable, "-m", "pbt_evo.run", str(write_config(tmp_path, data))],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith("'algorithm.p' is 2; it must be in [0, 1]")
    assert "Traceback" not in proc.stderr


def cli(config, out, *extra):
    return [sys.executable, "-m", "pbt_evo.run", str(config), "--out", str(out), "--quiet", *extra]


def final_population(run_dir):
    rows = [json.loads(line) for line in (run_dir / "population.jsonl").read_text().splitlines()]
    keys = ("gen", "id", "genome", "fitness", "epochs", "origin", "parents")
    return [{k: r[k] for k in keys} for r in rows]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    config = write_config(tmp)
    subprocess.run(cli(config, tmp / "a"), check=True, cwd=ROOT, capture_output=True)
    return tmp, config, tmp / "a" / "t"


def test_resume_after_sigkill_equals_uninterrupted(finished_run, killed_after):
    tmp, config, run_a = finished_run
    out_b = tmp / "b"
    reached = killed_after(cli(config, out_b), out_b / "t", "gen_00003", cwd=ROOT, timeout=120)
    assert reached < "gen_00006", "the run finished before it could be killed"
    resumed = subprocess.run(cli(config, out_b)[:-1], cwd=ROOT, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout
    assert final_population(out_b / "t") == final_population(run_a)
    log_a = [json.loads(x)["best"] for x in (run_a / "log.jsonl").read_text().splitlines()]
    log_b = [json.loads(x)["best"] for x in (out_b / "t" / "log.jsonl").read_text().splitlines()]
    assert log_a == log_b and len(log_a) == 6


def test_run_folder_lineage_and_origins(finished_run):
    _, _, run = finished_run
    for name in ("config.yaml", "log.csv", "log.jsonl", "lineage.jsonl", "population.jsonl", "best/model.safetensors",
                 "best/genome.json", "best/README.md", "plots/fitness.png", "plots/origins.png"):
        assert (run / name).is_file(), name
    pop = final_population(run)
    lineage = [json.loads(x) for x in (run / "lineage.jsonl").read_text().splitlines()]
    assert len(lineage) == 2 * 5  # round(0.25 * 6) = 2 children after each of 5 generations, none after the last
    n_layers = len(pbt_evo.SearchSpace.from_dict(json.loads((run / "space.json").read_text())).layer_variables)
    for gen in range(1, 7):
        members = [r for r in pop if r["gen"] == gen]
        assert len(members) == 6
        origins = [r["origin"][i] for r in members for i in range(n_layers)]
        assert len(origins) == 6 * n_layers  # every layer of the population has exactly one origin
        assert all(o < 6 or o in {r["id"] for r in members} for o in origins)
        for child in (c for c in lineage if c["gen"] == gen):
            assert set(child["parents"]) <= {r["id"] for r in members}
            assert child["child"] in {r["id"] for r in pop if r["gen"] == gen + 1}
    csv_rows = (run / "log.csv").read_text().splitlines()
    assert csv_rows[0].startswith("gen,epochs,best,median,worst") and len(csv_rows) == 7


def test_best_loads_in_two_lines_and_reproduces_fitness(finished_run):
    _, _, run = finished_run
    model, info = pbt_evo.load_best(run)
    assert accuracy(model, *load_splits()["val"]) == info["fitness"]
    assert info["fitness"] == max(json.loads(x)["best"] for x in (run / "log.jsonl").read_text().splitlines())


def test_same_command_resumes_a_finished_run_and_refuses_a_changed_config(finished_run, capsys, caplog):
    tmp, config, run = finished_run
    assert main([str(config), "--out", str(tmp / "a"), "--quiet"]) == 0  # nothing left to train
    # a run folder written before a key existed: the key takes its default, the same command resumes;
    # one written with a key that was removed since: ignored, with a one-line notice
    saved = yaml.safe_load((run / "config.yaml").read_text())
    del saved["algorithm"]["max_early"]
    saved["parallel"]["hold_states"] = False
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    assert main([str(config), "--out", str(tmp / "a"), "--quiet"]) == 0
    notices = [r.getMessage() for r in caplog.records if "hold_states" in r.getMessage()]
    assert notices and all("'parallel.hold_states' is no longer used and is ignored" in n for n in notices)
    assert main([str(config), "--out", str(tmp / "a"), "--set", "algorithm.p=0.5"]) == 2
    err = capsys.readouterr().err
    assert "different config (differs in: algorithm.p)" in err and "--resume" in err


def test_plot_command_redraws(finished_run):
    _, _, run = finished_run
    (run / "plots" / "fitness.png").unlink()
    proc = subprocess.run([sys.executable, "-m", "pbt_evo.plot", str(run)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0 and (run / "plots" / "fitness.png").stat().st_size > 10_000


class FinalDigits(DigitsTask):
    """Digits whose members have a final evaluation (test accuracy), as GAN members have FID/IS."""

    def build(self, genome):
        member = super().build(genome)
        member.final_scores = lambda: {"test_accuracy": member.test_accuracy()}
        return member


def test_final_evaluation_of_the_best_network(tmp_path):
    data = json.loads(json.dumps(BASE))
    data["task"]["target"] = "test_run:FinalDigits"
    data["algorithm"].update(e_total=2)
    data["output"]["final_evaluation"] = True
    assert main([str(write_config(tmp_path, data)), "--out", str(tmp_path), "--quiet"]) == 0
    info = json.loads((tmp_path / "t" / "best" / "genome.json").read_text())
    model, _ = pbt_evo.load_best(tmp_path / "t", trust=["test_run:FinalDigits"])  # not a registered task
    assert info["final_scores"] == {"test_accuracy": accuracy(model, *load_splits()["test"])}
