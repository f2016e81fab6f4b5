"""No hang, no silent corruption, no traceback (issue 19), end to end through the commands: impossible
resource requests, a second run into a locked run folder, damaged checkpoints, a full disk, SIGTERM,
and run folders crafted to execute code. Each test checks the exit code, the one line said, and that
nothing already checkpointed is lost (a resumed run equals the uninterrupted reference run)."""

import hashlib
import json
import os
import pickle
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
from pbt_evo.cli import checkpoint, convert, soup, sweep
from pbt_evo.cli.runlock import RunLock
from pbt_evo.run import main
from tasks.digits import DigitsTask

ROOT = Path(__file__).resolve().parents[1]
CONFIG = {"name": "r", "task": {"target": "tasks.digits:DigitsTask", "args": {"channels": 4}},
          "algorithm": {"population": 6, "e_total": 3, "e_step": 1},
          "parallel": {"backend": "serial"}, "output": {"tensorboard": False}}


def write_config(folder, data=None, name="r.yaml"):
    path = Path(folder) / name
    path.write_text(yaml.safe_dump(data or CONFIG))
    return path


def final_population(run):
    keys = ("gen", "id", "genome", "fitness", "epochs", "origin", "parents")
    return [{k: json.loads(line)[k] for k in keys} for line in (run / "population.jsonl").read_text().splitlines()]


def snapshot(run):
    """Every file of a run folder (but its lock) and its sha256."""
    return {str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run.rglob("*")) if p.is_file() and p.name != "run.lock"}


def one_line(text):
    """The one line a failure prints; the progress line of workers slow to start (a busy machine) aside."""
    lines = [ln for ln in text.strip().splitlines() if ln and "Ray workers to start" not in ln]
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


def cli(*args):
    return [sys.executable, "-m", "pbt_evo.run", *map(str, args), "--quiet"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted serial run (3 generations; checkpoints of generations 2 and 3 kept)."""
    tmp = tmp_path_factory.mktemp("reference")
    config = write_config(tmp)
    assert main([str(config), "--out", str(tmp / "runs"), "--quiet"]) == 0
    return config, tmp / "runs" / "r"


def copy_run(reference, tmp_path):
    """A copy of the reference run folder at ``tmp_path/runs/r`` (it resumes with ``resume(run)``)."""
    shutil.copytree(reference[1], tmp_path / "runs" / "r")
    return tmp_path / "runs" / "r"


def resume(run):
    return main([str(run), "--resume", "--quiet"])


# -- 1, 2: resources (that they fail within seconds of Ray's start: test_resources.py) ------------------
def test_an_impossible_gpu_request_is_one_line_and_leaves_the_run_folder_as_it_was(reference, tmp_path):
    run = copy_run(reference, tmp_path)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["parallel"].update(backend="ray", gpus_per_worker=0.5)
    (run / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    before = snapshot(run)
    proc = subprocess.run(cli(run, "--resume"), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert one_line(proc.stderr) == ("error: parallel.gpus_per_worker=0.5 x 2 workers asks for 1 GPU; the Ray cluster"
                                     " has 0 GPUs: set parallel.gpus_per_worker=0, or run where the cluster has GPUs")
    assert snapshot(run) == before


def test_an_impossible_worker_count_is_one_line_and_writes_nothing(tmp_path):
    n = os.cpu_count()
    config = write_config(tmp_path, {**CONFIG, "parallel": {"backend": "ray", "workers": 2 * n}})
    proc = subprocess.run(cli(config, "--out", tmp_path / "runs"), cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2
    assert one_line(proc.stderr) == (f"error: parallel.workers={2 * n} x parallel.cpus_per_worker=1 asks for {2 * n}"
                                     f" CPUs; the Ray cluster has {n} CPUs: set parallel.workers={n} (or"
                                     " parallel.cpus_per_worker=0.5)")
    assert not (tmp_path / "runs").exists()  # nothing written: not even the folder its lock made


# -- 3: one run per run folder -----------------------------------------------------------------------
def test_a_second_run_into_a_locked_folder_is_refused_and_the_first_finishes_untouched(tmp_path, capsys):
    config = write_config(tmp_path, {**CONFIG, "algorithm": {**CONFIG["algorithm"], "e_total": 6}})
    run = tmp_path / "runs" / "r"
    first = subprocess.Popen(cli(config, "--out", tmp_path / "runs"), cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and not (run / "log.jsonl").is_file():
        time.sleep(0.05)
    holder = json.loads((run / "run.lock").read_text())
    assert holder["pid"] == first.pid and holder["host"] == socket.gethostname()
    for extra in ([], ["--overwrite"]):
        assert main([str(config), "--out", str(tmp_path / "runs"), "--quiet", *extra]) == 2
        assert one_line(capsys.readouterr().err) == (
            f"error: {run} is in use by another run (pid {first.pid} on {holder['host']}, since {holder['started']}):"
            " wait for it to end, or start this one elsewhere (--name NEW or --out DIR)")
    assert first.poll() is None, "the first run ended before the second was tried"
    assert first.wait(timeout=600) == 0, first.stderr.read()
    rows = (run / "log.csv").read_text().splitlines()
    assert rows[0].startswith("gen,") and [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3", "4", "5", "6"]
    assert [json.loads(x)["gen"] for x in (run / "log.jsonl").read_text().splitlines()] == [1, 2, 3, 4, 5, 6]


def test_the_lock_of_a_dead_holder_is_taken_over(tmp_path):
    code = ("import sys, time; from pbt_evo.cli.runlock import RunLock; RunLock(sys.argv[1]).acquire();"
            " print('held', flush=True); time.sleep(600)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "held\n"
    with pytest.raises(pbt_evo.cli.runlock.RunFolderBusy, match=f"in use by another run \\(pid {holder.pid} on "):
        RunLock(tmp_path).acquire()
    holder.kill()
    holder.wait()
    with RunLock(tmp_path):
        assert json.loads((tmp_path / "run.lock").read_text())["pid"] == os.getpid()


def test_the_sweep_reports_a_locked_run_folder_as_a_failed_run(tmp_path, capsys):
    config = write_config(tmp_path, {**CONFIG, "algorithm": {**CONFIG["algorithm"], "e_total": 1}})
    out = tmp_path / "runs"
    with RunLock(out / "r_pbt_nas_s0") as lock:
        holder = json.loads(lock.path.read_text())
        assert sweep.main([str(config), "--algorithms", "pbt_nas", "--seeds", "0,1", "--out", str(out)]) == 1
        assert [p.name for p in (out / "r_pbt_nas_s0").iterdir()] == ["run.lock"]  # the refused run wrote nothing
    assert not (out / "r_pbt_nas_s0").exists()  # the holder created the folder and wrote nothing: removed
    lines = capsys.readouterr().out.splitlines()
    assert f"[1/2] {out}/r_pbt_nas_s0: failed: {out}/r_pbt_nas_s0 is in use by another run (pid {os.getpid()} on" \
           f" {holder['host']}, since {holder['started']}): wait for it to end, or start this one elsewhere" \
           " (--name NEW or --out DIR)" in lines
    assert lines[-1] == "sweep: 1 run, 0 already finished, 1 failed of 2"


# -- 4: damaged checkpoints --------------------------------------------------------------------------
def flip_a_bit(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["truncated", "bit_flipped"])
def test_a_damaged_latest_checkpoint_resumes_from_the_one_before(reference, tmp_path, capsys, damage):
    run = copy_run(reference, tmp_path)
    latest = run / "checkpoints" / "gen_00003"
    if damage == "truncated":
        state = latest / "states" / "00001.safetensors"
        size = state.stat().st_size
        state.write_bytes(state.read_bytes()[:1000])
        why = f"states/00001.safetensors has 1,000 bytes, MANIFEST.json says {size:,}"
    else:
        flip_a_bit(latest / "loop.json")
        why = "loop.json: its sha256 differs from MANIFEST.json's"
    assert resume(run) == 0
    assert one_line(capsys.readouterr().err) == (f"warning: checkpoint {latest} is damaged ({why}): continuing from"
                                                 " gen_00002")
    assert final_population(run) == final_population(reference[1])
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["LATEST", "gen_00002", "gen_00003"]


def test_every_checkpoint_damaged_is_one_line_and_nothing_is_deleted(reference, tmp_path, capsys):
    run = copy_run(reference, tmp_path)
    flip_a_bit(run / "checkpoints" / "gen_00003" / "states" / "00000.safetensors")
    (run / "checkpoints" / "gen_00002" / "loop.json").write_text("")
    before = snapshot(run)
    assert resume(run) == 2
    assert one_line(capsys.readouterr().err) == (
        f"error: no intact checkpoint in {run}/checkpoints (gen_00003: states/00000.safetensors: its sha256 differs"
        f" from MANIFEST.json's; gen_00002: loop.json has 0 bytes, MANIFEST.json says"
        f" {json.loads((run / 'checkpoints/gen_00002/MANIFEST.json').read_text())['files']['loop.json']['bytes']:,}):"
        " start the run over with --overwrite")
    assert snapshot(run) == before


# -- 5: a full disk ----------------------------------------------------------------------------------
class SmallDisk:
    """A 4 MB tmpfs mounted for the test, filled on demand to leave ``leave`` bytes: a real ENOSPC."""

    def __init__(self, path):
        self.path = path
        path.mkdir()
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(path)], capture_output=True,
                              text=True)
        assert proc.returncode == 0, f"these tests mount a small tmpfs (as root): {proc.stderr.strip()}"
        self.filled = False

    def free(self):
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def fill(self, leave):
        fd = os.open(self.path / "filler", os.O_CREAT | os.O_WRONLY)
        os.posix_fallocate(fd, 0, max(self.free() - leave, 1))
        os.close(fd)
        self.filled = True

    def unfill(self):
        (self.path / "filler").unlink()

    def close(self):
        subprocess.run(["umount", str(self.path)], check=True)


@pytest.fixture
def small_disk(tmp_path):
    global DISK
    DISK = SmallDisk(tmp_path / "disk")
    yield DISK
    DISK.close()


class FillingDigits(DigitsTask):
    """Digits, but the disk fills up while the ``fill_at``-th member trains (once per test)."""

    def __init__(self, fill_at=7, leave=32_000, **kwargs):
        super().__init__(**kwargs)
        self.fill_at, self.leave, self.calls = fill_at, leave, 0

    def build(self, genome):
        member, task = super().build(genome), self
        train = member.train

        def filling_train(epochs):
            task.calls += 1
            if task.calls == task.fill_at and not DISK.filled:
                DISK.fill(task.leave)
            return train(epochs)

        member.train = filling_train
        return member


def test_a_full_disk_while_checkpointing_is_one_line_and_leaves_a_resumable_folder(reference, small_disk, capsys):
    data = json.loads(json.dumps(CONFIG))
    data["task"]["target"] = "test_robust:FillingDigits"
    config = write_config(small_disk.path.parent, data)
    out = small_disk.path / "runs"
    run = out / "r"
    assert main([str(config), "--out", str(out), "--quiet"]) == 1  # the disk fills while generation 2 trains
    line = one_line(capsys.readouterr().err)
    assert re.fullmatch(
        rf"error: checkpoint of generation 2 not written: {run}/checkpoints/\.tmp-gen_00002/\S+: No space left on"
        rf" device \(a checkpoint needs about \d\.\d+ MB, \d\.\d+ MB free there\); generation 1 is checkpointed in"
        rf" {run}/checkpoints/gen_00001: free some space, then run the same command again to continue", line), line
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["LATEST", "gen_00001"]  # no partial one left
    small_disk.unfill()
    assert main([str(config), "--out", str(out), "--quiet"]) == 0
    assert final_population(run) == final_population(reference[1])


def test_too_little_room_for_the_next_checkpoint_stops_before_training(reference, small_disk, capsys):
    run_ref = reference[1]
    run = small_disk.path / "runs" / "r"
    shutil.copytree(run_ref, run)
    shutil.rmtree(run / "checkpoints" / "gen_00003")  # as if stopped after generation 2
    size = json.loads((run / "checkpoints" / "gen_00002" / "MANIFEST.json").read_text())["bytes"]
    small_disk.fill(leave=size // 2)
    assert resume(run) == 1
    assert re.fullmatch(
        rf"error: {run}/checkpoints: \d\.\d+ MB free on the disk, the next checkpoint needs about"
        rf" {checkpoint.mb(size)} \(as much as the last\); generation 2 is checkpointed in {run}/checkpoints/gen_00002:"
        r" free some space, then run the same command again to continue \(stopped before training the next"
        r" generation\)", one_line(capsys.readouterr().err))
    assert [json.loads(x)["gen"] for x in (run / "log.jsonl").read_text().splitlines()] == [1, 2]  # nothing trained
    small_disk.unfill()
    assert resume(run) == 0
    assert final_population(run) == final_population(run_ref)


# -- 6: SIGTERM --------------------------------------------------------------------------------------
def test_sigterm_exits_143_without_a_stack_dump_and_resumes_to_the_uninterrupted_result(reference, tmp_path):
    """On the Ray backend, whose driver otherwise dumps C++ stacks and aborts; Ray's result is the serial one."""
    config = write_config(tmp_path, {**CONFIG, "parallel": {"backend": "ray", "workers": 2}})
    run = tmp_path / "runs" / "r"
    proc = subprocess.Popen(cli(config, "--out", tmp_path / "runs"), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and not (run / "checkpoints" / "LATEST").is_file():
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 143
    latest = (run / "checkpoints" / "LATEST").read_text()
    assert latest < "gen_00003", "the run ended before it was terminated"
    assert one_line(proc.stderr.read()) == (f"terminated (SIGTERM); generation {int(latest[4:])} is checkpointed in"
                                            f" {run}/checkpoints/{latest}: run the same command again to continue")
    resumed = subprocess.run(cli(config, "--out", tmp_path / "runs"), cwd=ROOT, capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert final_population(run) == final_population(reference[1])


def test_a_second_signal_stops_at_once():
    code = ("import os, signal, time\nfrom pbt_evo.cli import signals\nwith signals.handled():\n"
            "    try:\n        os.kill(os.getpid(), signal.SIGTERM); time.sleep(30)\n"
            "    except signals.Terminated:\n        os.kill(os.getpid(), signal.SIGINT); time.sleep(30)\n")
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 143 and time.monotonic() - t0 < 30
    assert one_line(proc.stderr) == ("second signal: stopped at once; a run continues from its last complete"
                                     " checkpoint, if it has one: run the same command again")


# -- 7: no code from a run folder ---------------------------------------------------------------------
class Payload:
    """A pickle that writes a marker file when it is loaded."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('code ran')",)


def test_a_run_folder_crafted_to_execute_code_does_not(reference, tmp_path, capsys):
    run = copy_run(reference, tmp_path)
    marker = tmp_path / "marker"
    evil = pickle.dumps(Payload(marker))
    for folder in checkpoint.folders(run):
        shutil.rmtree(folder)
    old = run / "checkpoints" / "gen_00003"
    (old / "states").mkdir(parents=True)
    (old / "loop.pkl").write_bytes(evil)
    (old / "states" / "00000.pkl").write_bytes(evil)
    (run / "best" / "model.safetensors").unlink()
    (run / "best" / "model.pt").write_bytes(evil)
    (run / "soup").mkdir()
    (run / "soup" / "model.pt").write_bytes(evil)
    refusal = (f"{old} is a checkpoint in the old pickle format, which can execute code when loaded; if you trust"
               f" where this run folder comes from, convert it once with `python -m pbt_evo.convert {run}`, then"
               " resume")

    assert resume(run) == 2
    assert one_line(capsys.readouterr().err) == f"error: {refusal}"
    with pytest.raises(ValueError) as err:
        pbt_evo.load_best(run)
    assert str(err.value) == (f"{run}/best/model.pt is an old pickle file, which can execute code when loaded; if you"
                              f" trust its source, convert its run folder once: python -m pbt_evo.convert {run}")
    assert soup.main([str(run)]) == 2
    assert one_line(capsys.readouterr().err) == f"error: {refusal}"
    swept = tmp_path / "sweep" / "r_pbt_nas_s0"
    shutil.copytree(run, swept)
    cfg = yaml.safe_load((swept / "config.yaml").read_text())
    cfg["name"], cfg["output"]["dir"] = "r_pbt_nas_s0", str(swept.parent)
    (swept / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    (swept / "best" / "genome.json").unlink()  # unfinished, so that the sweep resumes it
    assert sweep.main([str(reference[0]), "--algorithms", "pbt_nas", "--seeds", "0", "--out", str(swept.parent)]) == 1
    assert (f"[1/1] {swept}: failed: {refusal.replace(str(run), str(swept))}"
            in capsys.readouterr().out.splitlines())
    assert not marker.exists()


def test_an_old_pickle_run_folder_converts_once_and_resumes(reference, tmp_path, capsys):
    """Written as pbt_evo 0.2 did (loop.pkl, states/*.pkl, best/model.pt), stopped after generation 2."""
    run = copy_run(reference, tmp_path)
    data = checkpoint.load(run / "checkpoints" / "gen_00002")
    for folder in checkpoint.folders(run):
        shutil.rmtree(folder)
    old = run / "checkpoints" / "gen_00002"
    (old / "states").mkdir(parents=True)
    names, alive = {}, []

    def pickled(state):
        if state is None:
            return None
        if id(state) not in names:
            names[id(state)] = f"states/{len(names):05d}.pkl"
            (old / names[id(state)]).write_bytes(pickle.dumps(state.load()))
            alive.append(state)  # ids stay unique while the names are in use
        return pbt_evo.StoredState(names[id(state)])

    for ind in data["population"] + data["halloffame"]:
        h = ind.handle
        if isinstance(h, pbt_evo.StoredState):
            ind.handle = pickled(h)
        else:  # pbt_evo 0.2's recipes were flat: base, donor, taken, ... (read into steps on conversion)
            inherit = next((s for s in h.steps if isinstance(s, pbt_evo.Inherit)), None)
            ind.handle = object.__new__(pbt_evo.MixedState)
            vars(ind.handle).update(base=pickled(h.base), donor=pickled(inherit.donor) if inherit else None,
                                    taken=inherit.variables if inherit else (), reinit=(), seed=h.seed,
                                    shrink_perturb=inherit.shrink_perturb if inherit else (0.4, 0.1),
                                    optimizer_policy="reset", width_policy=h.width_policy)
    (old / "loop.pkl").write_bytes(pickle.dumps({**data, "version": 1}))
    torch.save(pbt_evo.export.load_weights(run / "best" / "model.safetensors"), run / "best" / "model.pt")
    (run / "best" / "model.safetensors").unlink()

    assert resume(run) == 2
    assert "is a checkpoint in the old pickle format" in one_line(capsys.readouterr().err)
    assert convert.main([str(run)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"converted {old}", f"converted {run}/best/model.pt -> {run}/best/model.safetensors",
        f"{run}: 2 file(s) converted; resume with python -m pbt_evo.run {run} --resume"]
    assert not list(run.rglob("*.pkl")) and not list(run.rglob("*.pt"))
    assert resume(run) == 0
    assert final_population(run) == final_population(reference[1])
