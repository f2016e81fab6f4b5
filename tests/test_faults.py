"""Issue 27, end to end with real processes, Ray and files: run folders from elsewhere run no code, every
wait has a bound and a line, nothing is silently lost (torn appends, an edited config, a run in which
nothing trained), wrong output paths and stop signals while Ray starts are one line, one-shot runs
resume, and a bad config fails before the heavy imports. One section per item of the issue."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

import pbt_evo
from pbt_evo.cli.config import load
from pbt_evo.parallel.connect import session_processes
from pbt_evo.run import main
from pbt_evo.trusted import GROUP, UntrustedTask, registered, trusted_record
from tasks.digits import DigitsTask

from test_robust import CONFIG, final_population, one_line, reference, write_config  # noqa: F401 (a fixture)

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
EVIL = "subprocess:getoutput"  # what a crafted folder names: a callable that runs a shell command


def env():
    """The environment of a command: this tree and the tests' own tasks (test_faults:...) importable."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(ROOT), os.environ.get("PYTHONPATH", "")])}


def command(*args, module="pbt_evo.run", timeout=600):
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=ROOT, env=env(), capture_output=True,
                          text=True, timeout=timeout)


def copy_run(reference, tmp_path, name="r"):
    return Path(shutil.copytree(reference[1], tmp_path / "runs" / name))


def interrupted(reference, tmp_path):
    """A copy of the reference run (3 generations) as it was after generation 2 (generation 3 to train again)."""
    run = copy_run(reference, tmp_path)
    shutil.rmtree(run / "checkpoints" / "gen_00003")
    shutil.rmtree(run / "best")
    return run


# -- 1: a run folder names data, never code ------------------------------------------------------------
def plant(run, marker, nested=False):
    """Make ``run`` name a callable that would create ``marker``, in best/genome.json (and a front member's)
    and config.yaml, as a crafted folder would."""
    task = {"target": EVIL, "args": {"cmd": f"touch {marker}"}}
    if nested:  # hidden inside the hyperparameter wrapper, which is registered
        task = {"target": "pbt_evo.hyper:HyperparameterTask", "args": {**task, "hyperparameters": {}}}
    info = json.loads((run / "best" / "genome.json").read_text())
    info["task"] = task
    info.pop("test_score")  # so that compare --report test has to build the task
    (run / "best" / "genome.json").write_text(json.dumps(info))
    shutil.copytree(run / "best", run / "best" / "front" / "00", ignore=shutil.ignore_patterns("front"))
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["task"] = {"target": EVIL, "args": {"cmd": f"touch {marker}"}, "hyperparameters": {}}
    cfg["algorithm"]["research_code_compat"] = True  # which imports the target's module to read its class
    (run / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))


@pytest.mark.parametrize("nested", [False, True])
def test_no_reader_of_a_crafted_run_folder_runs_the_code_it_names(reference, tmp_path, nested):
    run = copy_run(reference, tmp_path)
    marker = tmp_path / "marker"
    plant(run, marker, nested)
    known = ", ".join(f"{n} = {t}" for n, t in sorted(registered().items()))
    refusal = (f"names the task {EVIL!r}, which no installed package registers (registered: {known}); a run folder may"
               " only name registered tasks: if you trust where this folder comes from, ")

    with pytest.raises(UntrustedTask) as err:
        pbt_evo.load_best(run)
    assert str(err.value) == (f"{run}/best/genome.json {refusal}pass trust=['{EVIL}'] to load_best, or the task itself:"
                              f" load_best('{run}', task=MyTask(...))")
    with pytest.raises(UntrustedTask):
        pbt_evo.load_front(run)
    proc = command(run, "--resume")
    assert proc.returncode == 2
    assert one_line(proc.stderr) == f"error: {run}/config.yaml {refusal}run it with --trust-task {EVIL}"
    proc = command(reference[0], "--out", run.parent)  # the same command as the folder's: it differs in its task
    assert proc.returncode == 2 and one_line(proc.stderr).startswith(
        f"error: {run} holds a run with a different config (differs in: task.target)")
    proc = command(run, module="pbt_evo.soup")
    assert proc.returncode == 2
    assert one_line(proc.stderr) == f"error: {run}/config.yaml {refusal}run it with --trust-task {EVIL}"
    proc = command(run, module="pbt_evo.replay")
    assert proc.returncode == 2
    assert one_line(proc.stderr) == f"error: {run}/config.yaml {refusal}run it with --trust-task {EVIL}"
    other = copy_run(reference, tmp_path, "r2")  # compare needs two algorithms: this one is genuine
    cfg = yaml.safe_load((other / "config.yaml").read_text())
    cfg["algorithm"]["name"] = "random"
    (other / "config.yaml").write_text(yaml.safe_dump(cfg))
    proc = command(run, other, "--report", "test", "--out", tmp_path / "cmp", module="pbt_evo.compare")
    assert proc.returncode == 2
    assert one_line(proc.stderr) == f"error: {run}/best/genome.json {refusal}run compare with --trust-task {EVIL}"
    assert command(run, module="pbt_evo.plot").returncode == 0  # draws from logs: builds no task
    assert command(run, module="pbt_evo.convert").returncode == 0  # nothing to convert: builds no task
    assert not marker.exists()
    # trusted explicitly: the caller's own task builds the network, the folder's record is not used
    model, info = pbt_evo.load_best(run, task=DigitsTask(channels=4))
    assert EVIL in json.dumps(info["task"]) and not marker.exists()
    genuine, _ = pbt_evo.load_best(reference[1])
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), genuine.state_dict().values()))


class SmallDigits(DigitsTask):
    """A task that no package registers (defined in this test module)."""


def test_a_folder_naming_an_unregistered_task_resumes_with_trust_task(tmp_path):
    config = write_config(tmp_path, {**CONFIG, "task": {"target": "test_faults:SmallDigits", "args": {"channels": 4}}})
    assert main([str(config), "--out", str(tmp_path / "runs"), "--quiet"]) == 0  # the user's own config: trusted
    run = tmp_path / "runs" / "r"
    shutil.rmtree(run / "checkpoints" / "gen_00003")
    shutil.rmtree(run / "best")
    proc = command(run, "--resume", "--quiet")
    assert proc.returncode == 2 and one_line(proc.stderr).endswith(
        "if you trust where this folder comes from, run it with --trust-task test_faults:SmallDigits")
    proc = command(run, "--resume", "--quiet", "--trust-task", "test_faults:SmallDigits")
    assert proc.returncode == 0, proc.stderr
    assert pbt_evo.load_best(run, trust=["test_faults:SmallDigits"])[1]["epochs"] == 3


def test_the_installed_registry_lists_the_bundled_tasks():
    """What setup.cfg declares is what the installation reads (pip install -e . writes it)."""
    text = (ROOT / "setup.cfg").read_text()
    block = text.split(f"{GROUP} =\n", 1)[1].split("\n\n", 1)[0]
    declared = dict(line.strip().split(" = ") for line in block.splitlines() if line.strip())
    assert "digits" in declared and declared["hyperparameters"] == "pbt_evo.hyper:HyperparameterTask"
    assert registered() == declared, "the installed entry points are stale: run `pip install -e .` again"


def test_an_empty_registry_says_how_to_install():
    with pytest.raises(UntrustedTask) as err:
        trusted_record({"target": "tasks.digits:DigitsTask", "args": {}}, "genome.json", entries={})
    assert "no task is registered at all: pbt_evo's entry points (pbt_evo.tasks) are missing, as when its source is" \
           " used without `pip install -e .`; install it with pip" in str(err.value)
    assert trusted_record({"target": "digits", "args": {"channels": 4}}, "genome.json",
                          entries={"digits": "tasks.digits:DigitsTask"}) == ("tasks.digits:DigitsTask", {"channels": 4})


# -- 2: every wait has a bound and a line --------------------------------------------------------------
def test_a_wrong_cluster_address_ends_at_once_with_one_line(tmp_path):
    t0 = time.monotonic()
    proc = command(write_config(tmp_path), "--out", tmp_path / "runs", "--set", "parallel.backend=ray",
                   "--set", "parallel.address=127.0.0.1:1")
    assert proc.returncode == 2 and time.monotonic() - t0 < 60
    assert one_line(proc.stderr) == (
        "error: parallel.address=127.0.0.1:1: nothing answers at 127.0.0.1:1 (Connection refused): start the cluster"
        " there (ray start --head), or set parallel.address to its address (null: a Ray instance of the run's own)")
    assert not (tmp_path / "runs").exists()


def test_an_address_where_no_ray_cluster_answers_ends_after_the_connect_timeout():
    listener = socket.create_server(("127.0.0.1", 0))  # something answers, but not Ray
    port = listener.getsockname()[1]
    code = ("import sys, time; from pbt_evo.parallel.connect import init_ray, ClusterUnreachable\nt0 = time.monotonic()\n"
            f"try:\n    init_ray('127.0.0.1:{port}', timeout=5)\nexcept ClusterUnreachable as exc:\n"
            "    print(round(time.monotonic() - t0), exc)")
    try:
        proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env(), capture_output=True, text=True,
                              timeout=120)
    finally:
        listener.close()
    seconds, line = proc.stdout.strip().split(" ", 1)
    assert line == (f"address=127.0.0.1:{port}: no Ray cluster answered there within 5 s: start the cluster there (ray"
                    " start --head), or set address to its address (null: a Ray instance of the run's own)")
    assert 5 <= int(seconds) <= 15


def test_both_workers_dying_at_once_wait_for_their_replacements(ray_session, digits_task, tmp_path, caplog):
    """The retry of a call whose worker died goes to that worker's replacement, not to the other worker,
    which may be dead too (here it is, idle, its death unseen): nothing fails and the run is the serial map's,
    member for member."""
    from test_loop import make_toolbox, run

    runs = []
    for make_map in (lambda: pbt_evo.SerialMap(digits_task, num_threads=1),
                     lambda: pbt_evo.RayMap(pbt_evo.TaskSpec("tasks.faulty:KillsWorkers",
                                                             {"marks": str(tmp_path), "both": True}), workers=2)):
        tb = make_toolbox(digits_task, n=8)
        tb.map = make_map()
        pop, log, _ = run(tb, e_total=2, seed=3)
        runs.append(([(ind.id, list(ind), ind.fitness.values, ind.epochs) for ind in pop], log.select("failed")))
        tb.map.close()
    assert (tmp_path / "killed").exists() and len(list(tmp_path.glob("pid_*"))) >= 4, sorted(os.listdir(tmp_path))
    assert runs[1] == runs[0] and runs[0][1] == [0, 0]
    said = [r.getMessage() for r in caplog.records if "which died" in r.getMessage()]
    assert said and all(re.fullmatch(r"member \d+ was on worker (\d), which died: it is retried on the new worker \1"
                                     r" once that has started", s) for s in said), said


# -- 3: appends a crash tore, a config edited since the checkpoint ------------------------------------------
def tear(path, keep=None, extra=b""):
    """Cut a file's last line in its middle (or append ``extra``, a line cut short)."""
    data = path.read_bytes()
    if keep is None:
        last = data.rstrip(b"\n").rfind(b"\n") + 1
        keep = last + (len(data) - last) // 2
    path.write_bytes(data[:keep] + extra)


def test_a_torn_last_line_is_dropped_on_resume_with_one_line(reference, tmp_path, capsys):
    run = interrupted(reference, tmp_path)
    tear(run / "log.jsonl")  # generation 3's rows, cut while written
    tear(run / "population.jsonl")
    tear(run / "lineage.jsonl", keep=len((run / "lineage.jsonl").read_bytes()), extra=b'{"gen": 3, "chi')
    assert main([str(run), "--resume", "--quiet"]) == 0
    assert one_line(capsys.readouterr().err) == (
        f"warning: {run}: dropped the last line of log.jsonl, population.jsonl, lineage.jsonl, torn by a crash while"
        " it was written (after the checkpoint: it is written again)")
    assert final_population(run) == final_population(reference[1])
    assert (run / "log.jsonl").read_text().count("\n") == 3 and (run / "log.csv").read_text().count("\n") == 4


def test_a_damaged_line_before_the_last_is_one_line(reference, tmp_path, capsys):
    run = interrupted(reference, tmp_path)
    lines = (run / "population.jsonl").read_bytes().split(b"\n")
    lines[0] = lines[0][:10]
    (run / "population.jsonl").write_bytes(b"\n".join(lines))
    assert main([str(run), "--resume", "--quiet"]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"error: {run}/population.jsonl line 1 is not a JSON record: ")
    assert line.endswith("the file is damaged (only its last line may be torn): restore the file, or start the run"
                         " over with --overwrite")


def test_a_config_edited_since_the_checkpoint_is_refused_on_resume(reference, tmp_path, capsys):
    run = interrupted(reference, tmp_path)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    edited = json.loads(json.dumps(cfg))
    edited["algorithm"].update(population=10, tau=0.5)
    (run / "config.yaml").write_text(yaml.safe_dump(edited, sort_keys=False))
    before = (run / "log.jsonl").read_text()
    assert main([str(run), "--resume", "--quiet"]) == 2
    assert one_line(capsys.readouterr().err) == (
        f"error: {run}/config.yaml differs from the config its checkpoint gen_00002 was written with (algorithm.population"
        " 6 -> 10, algorithm.tau 0.25 -> 0.5): a run continues with the config it started with; undo the edit, or"
        " start a new run from the edited config with --name NEW")
    assert (run / "log.jsonl").read_text() == before  # nothing written
    cfg["output"]["keep_checkpoints"] = 3  # how the run executes may change
    (run / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert main([str(run), "--resume", "--quiet"]) == 0
    assert final_population(run) == final_population(reference[1])


# -- 4: shipped configs, output paths, a run in which nothing trained, NaN fitness -------------------------
def test_every_shipped_config_keeps_two_checkpoints():
    for path in sorted((ROOT / "spaces").glob("*.yaml")):
        assert load(path)["output"]["keep_checkpoints"] == 2, path


@pytest.mark.parametrize("where", ["out", "run"])
def test_an_output_path_that_is_a_file_is_one_line(tmp_path, capsys, where):
    config = write_config(tmp_path)
    out = tmp_path / "runs"
    if where == "out":
        out.write_text("")
        expected = (f"error: {out} is a file, not a folder, so the run folder {out}/r cannot be made in it: give --out"
                    " a folder (output.dir)")
    else:
        out.mkdir()
        (out / "r").write_text("")
        expected = (f"error: {out}/r is a file, not a run folder: move it away, or start the run elsewhere (--name NEW"
                    " or --out DIR)")
    assert main([str(config), "--out", str(out), "--quiet"]) == 2
    assert one_line(capsys.readouterr().err) == expected


def test_a_read_only_filesystem_is_one_line_for_a_new_run_and_for_resume(reference, tmp_path, capsys):
    disk = tmp_path / "ro"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)], capture_output=True, text=True)
    assert mounted.returncode == 0, f"this test mounts a tmpfs (as root): {mounted.stderr}"
    try:
        run = Path(shutil.copytree(reference[1], disk / "runs" / "r"))
        (run / "run.lock").unlink()
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        assert main([str(reference[0]), "--out", str(disk / "new"), "--quiet"]) == 2
        assert one_line(capsys.readouterr().err) == (
            f"error: cannot write the run folder {disk}/new/r (Read-only file system: {disk}/new): run it where you"
            " can write (--out DIR; a run folder to resume can be copied there)")
        assert main([str(run), "--resume", "--quiet"]) == 2
        assert one_line(capsys.readouterr().err) == (
            f"error: cannot write the run folder {run} (Read-only file system: {run}/run.lock): run it where you can"
            " write (--out DIR; a run folder to resume can be copied there)")
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_a_run_in_which_no_member_trains_exits_1_exports_nothing_and_says_why_once(tmp_path):
    config = write_config(tmp_path, {**CONFIG, "task": {"target": "tasks.faulty:Broken", "args": {"channels": 4}},
                                     "parallel": {"backend": "ray", "workers": 2}})
    proc = command(config, "--out", tmp_path / "runs", "--quiet")
    run = tmp_path / "runs" / "r"
    assert proc.returncode == 1
    assert one_line(proc.stderr) == (
        f"error: no member trained: all 6 of generation 1 failed (first error: ZeroDivisionError: division by zero);"
        f" the tracebacks are in {run}/errors.log; nothing was exported")
    errors = (run / "errors.log").read_text()
    assert errors.count("failed every attempt:") == 6 and errors.count("retrying elsewhere") == 6
    assert errors.count('raise ZeroDivisionError("division by zero")') == 12  # each attempt's traceback
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "errors.log", "run.lock", "space.json"]


def test_non_finite_fitness_is_counted_and_reported_once_per_generation(tmp_path, capsys):
    config = write_config(tmp_path, {**CONFIG, "task": {"target": "tasks.faulty:NanFitness", "args": {"channels": 4}}})
    assert main([str(config), "--out", str(tmp_path / "runs"), "--quiet"]) == 0
    run = tmp_path / "runs" / "r"
    pop = [json.loads(x) for x in (run / "population.jsonl").read_text().splitlines()]
    rows = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    expected = []
    for row in rows:
        nan = [m for m in pop if m["gen"] == row["gen"] and m["genome"][0] == 0]
        assert row["nonfinite"] == len(nan) and all(m["fitness"] is None for m in nan)
        if nan:
            n, values = len(nan), ", ".join(f"{m['id']}: nan" for m in nan)
            expected.append(f"warning: generation {row['gen']}: {n} member{'s' * (n > 1)} with a fitness that is not a"
                            f" finite number ({values}): counted as the worst")
    assert expected and capsys.readouterr().err.splitlines() == expected


# -- 5: SIGTERM while Ray starts ---------------------------------------------------------------------
def maps(pid):
    try:
        return Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return ""


@pytest.mark.parametrize("when", ["importing", "ray_starting"])
def test_sigterm_while_ray_starts_is_one_line_and_leaves_no_ray_process(tmp_path, when):
    config = write_config(tmp_path, {**CONFIG, "parallel": {"backend": "ray", "workers": 2}})
    proc = subprocess.Popen([sys.executable, "-m", "pbt_evo.run", str(config), "--out", str(tmp_path / "runs"),
                             "--quiet"], cwd=ROOT, env=env(), stderr=subprocess.PIPE, text=True)
    if when == "importing":  # torch is being loaded
        deadline = time.monotonic() + 120
        while "libtorch" not in maps(proc.pid) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.005)
        expected = "terminated (SIGTERM); nothing was started"
    else:
        deadline = time.monotonic() + 120
        while not session_processes(proc.pid) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert session_processes(proc.pid), "Ray did not start"
        expected = "terminated (SIGTERM); no generation is checkpointed yet: the same command starts the run over"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 143
    assert one_line(proc.stderr.read()) == expected
    deadline = time.monotonic() + 15
    while session_processes(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert session_processes(proc.pid) == []
    assert not (tmp_path / "runs").exists()


# -- 6: one-shot runs checkpoint and resume ---------------------------------------------------------------
ONESHOT = {"name": "tiny", "task": {"target": "tasks.digits:DigitsTask", "args": {"channels": 4}},
           "algorithm": {"name": "bnao", "population": 4, "e_total": 3, "e_step": 1,
                         "oneshot": {"candidates": 6, "seeds": 2, "rounds": 4, "standalone": 2, "controller_epochs": 100}},
           "parallel": {"backend": "serial"}, "output": {"tensorboard": False}}


def without_times(rows):
    """Records without what measures time (wall seconds; a member's metrics are its training's seconds and loss)."""
    return [{k: v for k, v in r.items() if not k.endswith("_s") and k != "metrics"} for r in rows]


def test_an_interrupted_one_shot_run_resumes_to_the_uninterrupted_result(tmp_path):
    config = write_config(tmp_path, ONESHOT)
    assert main([str(config), "--out", str(tmp_path / "whole"), "--quiet"]) == 0
    whole = tmp_path / "whole" / "tiny"
    proc = subprocess.Popen([sys.executable, "-m", "pbt_evo.run", str(config), "--out", str(tmp_path / "runs"),
                             "--quiet"], cwd=ROOT, env=env(), stderr=subprocess.PIPE, text=True)
    run = tmp_path / "runs" / "tiny"
    deadline = time.monotonic() + 300
    while not (run / "checkpoints" / "gen_00001").is_dir() and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 143
    assert (run / "checkpoints" / "LATEST").read_text() < "gen_00006", "the run ended before the signal"
    assert max(p.name for p in (run / "checkpoints").glob("gen_*")) == (run / "checkpoints" / "LATEST").read_text()
    assert not (run / "best").exists()
    proc = command(config, "--out", tmp_path / "runs", "--quiet")
    assert proc.returncode == 0, proc.stderr
    for name in ("log.jsonl", "candidates.jsonl", "population.jsonl"):
        rows = [without_times(map(json.loads, (r / name).read_text().splitlines())) for r in (run, whole)]
        assert rows[0] == rows[1], name
    info = [json.loads((r / "best" / "genome.json").read_text()) for r in (run, whole)]
    assert info[0] == info[1]
    assert (run / "log.csv").read_text().splitlines()[0].endswith("phase,oneshot_pool,oneshot_best,oneshot_median,"
                                                                  "oneshot_score")
    assert len((run / "log.csv").read_text().splitlines()) == 1 + 4 + 2
    assert sorted(p.name for p in (run / "plots").iterdir()) == ["fitness.png"]  # no empty origins plot
    proc = command(whole, module="pbt_evo.plot")
    assert proc.returncode == 0 and proc.stdout.split() == [f"{whole}/plots/fitness.png"]


# -- 7: a bad config fails before the heavy imports; SerialMap's threads; --set typos ----------------------
def test_a_bad_config_fails_before_torch_and_ray_are_imported():
    code = ("import sys, time; t0 = time.perf_counter(); from pbt_evo.run import main\n"
            "rc = main(['spaces/digits.yaml', '--set', 'algorithm.population=-1'])\n"
            "print(rc, 'torch' in sys.modules, 'ray' in sys.modules, round(time.perf_counter() - t0, 2))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env(), capture_output=True, text=True, timeout=120)
    rc, torch_imported, ray_imported, _seconds = proc.stdout.split()
    assert (rc, torch_imported, ray_imported) == ("2", "False", "False")
    assert one_line(proc.stderr) == ("error: --set 'algorithm.population=-1': 'algorithm.population' is -1; it must"
                                     " be >= 2")


def test_a_set_typo_names_the_closest_key_and_not_the_file(capsys):
    assert main(["spaces/digits.yaml", "--set", "algorithm.populaton=8"]) == 2
    assert one_line(capsys.readouterr().err) == ("error: --set 'algorithm.populaton=8': unknown key"
                                                 " 'algorithm.populaton' (did you mean 'algorithm.population'?); see"
                                                 " `python -m pbt_evo.run --keys`")
    assert main(["spaces/digits.yaml", "--set", "task.args.channels=4", "--set", "parallel.worker=3"]) == 2
    assert "unknown key 'parallel.worker' (did you mean 'parallel.workers'?)" in capsys.readouterr().err


def test_serial_map_trains_with_one_torch_thread_and_gives_the_count_back(digits_task):
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        smap = pbt_evo.SerialMap(digits_task)
        assert smap(lambda _: torch.get_num_threads(), [0]) == [1]  # what a member trains with
        assert torch.get_num_threads() == 1  # while the map is open
        smap.close()
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)


# -- 9: the probes, as documented ----------------------------------------------------------------------
def test_robustness_md_states_every_probe_of_the_script_holding():
    """docs/ROBUSTNESS.md holds the probe script's output: its sixteen cases, in order, each holding (the
    script itself runs for 10-20 minutes: ``python benchmarks/probe_faults.py``)."""
    names = re.findall(r'^ +\("(.+?)", lambda', (ROOT / "benchmarks" / "probe_faults.py").read_text(), re.M)
    doc = (ROOT / "docs" / "ROBUSTNESS.md").read_text()
    rows = re.findall(r"^ *(\d+) (holds|fails)  (.+?): ", doc, re.M)
    assert len(names) == 16 and [(int(k), name) for k, _, name in rows] == list(enumerate(names, 1))
    assert {status for _, status, _ in rows} == {"holds"} and "probes_holding=16/16" in doc

