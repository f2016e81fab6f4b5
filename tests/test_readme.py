"""Every block of the README and of its guides (docs/*.md that hold the README's former sections) runs as
written. Each fenced block is marked ``<!-- example: NAME -->`` and run, verbatim, by the test :data:`RUN_BY`
names (bash blocks in a fresh folder that has the repository's ``spaces/``, as from a clone; long runs are
marked slow); CI runs the set-up and test commands."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README] + [ROOT / "docs" / f"{g}.md" for g in ("TASKS", "RUNS", "COMPARING", "HYPERPARAMETERS", "ONESHOT",
                                                       "MULTIOBJECTIVE", "PBT_FAMILY")]
BLOCK = re.compile(r"<!-- example: (\w+) -->\n```(\w+)\n(.*?)```", re.S)
RUN_BY = {"setup": "test_readme_commands_match_ci", "tests": "test_readme_commands_match_ci",
          "toolbox": "test_toolbox_example_runs", "widths": "test_widths_example_declares_what_pbt_evo_checks",
          "load_best": "test_load_best_example_loads_a_trained_network",
          "dashboard": "test_dashboard_command_serves_the_runs",
          "rl_smoke": "test_rl_smoke_run", "gan_smoke": "test_gan_smoke_run", "study": "test_study_commands",
          "bnao": "test_bnao_command", "multiobj_run": "test_multiobjective_command_and_its_front",
          "objectives_yaml": "test_objectives_yaml_is_a_valid_config_fragment",
          "multiobj_python": "test_multiobjective_python_example_runs",
          "hyperparameters_yaml": "test_hyperparameters_yaml_is_a_valid_config_fragment",
          "hyperparameters_runs": "test_hyperparameter_commands",
          "family_yaml": "test_family_yaml_is_a_valid_config_fragment", "family_runs": "test_family_commands"}


def blocks() -> dict[str, tuple[str, str]]:
    """Every marked block of the pages: name -> (language, code)."""
    found = [block for page in PAGES for block in BLOCK.findall(page.read_text())]
    assert len({name for name, _, _ in found}) == len(found), "two blocks with one name"
    return {name: (lang, code) for name, lang, code in found}


def readme_block(marker: str) -> str:
    return blocks()[marker][1]


def run_bash(name: str, folder: Path, timeout: int = 3600) -> subprocess.CompletedProcess:
    """A bash block, verbatim, in ``folder`` (with ``spaces/``), ``python`` being this interpreter."""
    lang, code = blocks()[name]
    assert lang == "bash"
    if not (folder / "spaces").exists():
        (folder / "spaces").symlink_to(ROOT / "spaces")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    proc = subprocess.run(["bash", "-e", "-c", code], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def run_python(name: str, folder: Path | None = None) -> dict:
    lang, code = blocks()[name]
    assert lang == "python"
    namespace: dict = {}
    cwd = os.getcwd()
    os.chdir(folder or cwd)
    try:
        exec(compile(code, f"README or guide block {name}", "exec"), namespace)
    finally:
        os.chdir(cwd)
    return namespace


def test_every_block_is_marked_and_run_by_a_test():
    for page in PAGES:
        text = page.read_text()
        assert text.count("```") == 2 * len(BLOCK.findall(text)), f"a block of {page.name} without its marker"
    assert set(blocks()) == set(RUN_BY)
    assert all(callable(globals().get(test)) for test in RUN_BY.values())


def test_readme_commands_match_ci():
    ci = (README.parent / ".ci" / "run").read_text()
    setup = re.search(r"(python3 -m venv .venv && .*?) && \.venv/bin/python -m pbt_evo.run", readme_block("setup")).group(1)
    assert "torch==2.14.1 torchvision==0.29.1 -e \".[all]\"" in setup and "torch==2.14.1 torchvision==0.29.1 -e \".[all]\"" in ci
    assert readme_block("tests") == ".venv/bin/python -m pytest\n" and ".venv/bin/python -m pytest\n" in ci


def test_toolbox_example_runs(ray_session):
    namespace = run_python("toolbox")
    hof, logbook, model, task = namespace["hof"], namespace["logbook"], namespace["model"], namespace["task"]
    namespace["toolbox"].map.close()
    assert [r["epochs"] for r in logbook] == [2, 4, 6]
    from tasks.digits import accuracy

    assert accuracy(model, *task.data["val"]) == hof[0].fitness.values[0] > 0.8


def test_widths_example_declares_what_pbt_evo_checks():
    from pbt_evo.widths import check_task_widths

    task = run_python("widths")["MyTask"]()
    check_task_widths(task)  # the declaration matches the models: nothing raised
    assert [key for key, _ in task.unit_axes([0, 2])["hidden"].copy] == ["0.weight", "0.bias"]


def test_load_best_example_loads_a_trained_network(tmp_path):
    from pbt_evo.run import main
    from tasks.digits import DigitsTask, accuracy

    args = {"channels": 4}
    assert main([str(ROOT / "spaces" / "digits.yaml"), "--out", str(tmp_path / "runs"), "--quiet",
                 "--set", "algorithm.e_total=1", "--set", "parallel.backend=serial",
                 "--set", f"task.args={json.dumps(args)}"]) == 0
    namespace = run_python("load_best", tmp_path)
    model, info = namespace["model"], namespace["info"]
    assert info["fitness"] == accuracy(model, *DigitsTask(**args).data["val"])


def test_dashboard_command_serves_the_runs(tmp_path):
    """The command as written, in a folder whose runs/ holds a finished run: its page answers, then it is stopped."""
    import signal
    import time
    import urllib.request

    from pbt_evo.run import main

    assert main([str(ROOT / "spaces" / "digits.yaml"), "--out", str(tmp_path / "runs"), "--quiet", "--set",
                 "algorithm.e_total=1", "--set", "parallel.backend=serial", "--set", "task.args={channels: 4}"]) == 0
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    server = subprocess.Popen(["bash", "-c", "exec " + readme_block("dashboard")], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = server.stdout.readline()
        assert "http://127.0.0.1:8050/" in line, line + server.stdout.read()
        deadline, page = time.monotonic() + 60, ""
        while not page and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen("http://127.0.0.1:8050/", timeout=5) as response:
                    page = response.read().decode()
            except OSError:
                time.sleep(0.2)
        assert "<html" in page.lower()
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)


def mnist1d_config_with(block: str) -> dict:
    data = yaml.safe_load((ROOT / "spaces" / "mnist1d.yaml").read_text())
    for section, values in yaml.safe_load(readme_block(block)).items():
        data.setdefault(section, {}).update(values)
    return data


def test_objectives_yaml_is_a_valid_config_fragment():
    from pbt_evo.cli.config import objectives_of, resolve

    cfg = resolve(mnist1d_config_with("objectives_yaml"), "README")
    assert objectives_of(cfg).names == ("fitness", "params") and cfg["algorithm"]["reference_point"] == [0.0, 2000]


def test_hyperparameters_yaml_is_a_valid_config_fragment():
    from pbt_evo.cli.config import build_task, resolve

    task = build_task(resolve(mnist1d_config_with("hyperparameters_yaml"), "README"))
    assert list(task.space.names[-2:]) == ["adam.lr", "adam.weight_decay"] and len(task.space["adam.lr"].options) == 7


def test_family_yaml_is_a_valid_config_fragment():
    from pbt_evo.cli.config import build_task, resolve

    task = build_task(resolve(mnist1d_config_with("family_yaml"), "docs/PBT_FAMILY.md"))
    lr = task.space["adam.lr"]
    assert task.space.names[-1] == "adam.lr" and lr.bounds == (1.0e-4, 1.0e-1) and lr.log


def test_multiobjective_python_example_runs():
    namespace = run_python("multiobj_python")
    front = namespace["front"]
    # the reference point fits the task: every trained network is better in both objectives
    assert len(front) >= 1 and all(v[0] > 0.0 and v[1] < 2000 for v in (ind.fitness.values for ind in front))
    assert all(ind.epochs == 6 for ind in front)


# -- long runs: each command as written, in a fresh folder --------------------------------------------
@pytest.mark.slow
def test_rl_smoke_run(tmp_path):
    run_bash("rl_smoke", tmp_path)
    assert (tmp_path / "runs" / "rl_quadruped_run" / "best" / "genome.json").is_file()


@pytest.mark.slow
def test_gan_smoke_run(tmp_path):
    run_bash("gan_smoke", tmp_path)
    assert (tmp_path / "runs" / "gan_cifar10" / "best" / "genome.json").is_file()


@pytest.mark.slow
def test_study_commands(tmp_path):
    run_bash("study", tmp_path)
    study = tmp_path / "runs" / "study"
    assert len(list(study.glob("digits_*_s*"))) == 9 and (study / "compare" / "compare.md").is_file()
    assert json.loads((study / "digits_pbt_nas_s0" / "soup" / "soup.json").read_text())["ingredients"]


@pytest.mark.slow
def test_bnao_command(tmp_path):
    run_bash("bnao", tmp_path)
    assert 0 < json.loads((tmp_path / "runs" / "mnist1d_bnao" / "best" / "genome.json").read_text())["test_score"] <= 1


@pytest.mark.slow
def test_multiobjective_command_and_its_front(tmp_path):
    import pbt_evo

    run_bash("multiobj_run", tmp_path)
    run = tmp_path / "runs" / "mnist1d_multiobj"
    table = (run / "best" / "front.md").read_text()
    first = re.search(r"^\| (front/\d+) \| (\d+) \|", table, re.M)
    model, info = pbt_evo.load_best(run / "best" / first.group(1))  # as the README names it
    assert info["id"] == int(first.group(2)) and len(pbt_evo.load_front(run)) == table.count("\n| front/")


@pytest.mark.slow
def test_hyperparameter_commands(tmp_path):
    run_bash("hyperparameters_runs", tmp_path)
    runs = tmp_path / "runs"
    assert all((runs / name / "best" / "genome.json").is_file() for name in ("mnist1d_hp", "mnist1d_hp_nas", "mnist1d_co"))


@pytest.mark.slow
def test_family_commands(tmp_path):
    run_bash("family_runs", tmp_path)
    runs = tmp_path / "runs"
    names = ("mnist1d_family", "family_pb2_mix", "family_fire", "family_bg", "family_pb2_nas")
    algorithms = [yaml.safe_load((runs / n / "config.yaml").read_text())["algorithm"]["name"] for n in names]
    assert algorithms == ["pb2", "pb2_mix", "fire_pbt", "bg_pbt", "pb2"]
    assert all((runs / n / "best" / "genome.json").is_file() for n in names)
    record = json.loads((runs / "mnist1d_family" / "replay.json").read_text())
    assert len(record["replayed"]) == 1 and 0 < record["replayed"][0]["fitness"] <= 1


def test_every_relative_link_of_the_readme_and_docs_resolves():
    """Images, guides, study scripts: a moved or renamed file breaks the page that links it."""
    pages = [README, *sorted((ROOT / "docs").glob("*.md"))]
    broken = [(page.name, target) for page in pages
              for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text())
              if not target.startswith(("http://", "https://")) and not (page.parent / target).exists()]
    assert broken == []
    assert len(list((ROOT / "docs" / "img").glob("*.png"))) == 24 and not list((ROOT / "docs").glob("*.png"))
