"""The fault and bad-input probes of issue 27, each a real command on a real run folder: one line per case.

Sixteen cases: the seven that held before the issue (stop signals, a killed Ray worker, a full disk, a
damaged checkpoint, two runs into one folder, impossible resource requests, crafted files) and the nine
that did not (a run folder naming code, a wrong cluster address, a torn append, the shipped configs'
checkpoints, unusable output paths, a run in which no member trains, both workers dead at once, an edited
config, SIGTERM while Ray starts). A case holds when the command ends as promised (exit code, one line,
no traceback, nothing lost: a resumed run equals the uninterrupted reference run member for member). The
faults are digits tasks that misbehave on purpose (:mod:`tasks.faulty`). It needs root (it mounts small
tmpfs filesystems) and takes 10-20 minutes on 2 CPU cores.

    python benchmarks/probe_faults.py [--only 1,8]

Each line: ``NN holds|fails  case: what was seen``. Last line: probes_holding=<holding>/<run>
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from pbt_evo.parallel.connect import session_processes

ROOT = Path(__file__).resolve().parents[1]
BASE = {"name": "r", "task": {"target": "tasks.digits:DigitsTask", "args": {"channels": 4}},
        "algorithm": {"population": 6, "e_total": 3, "e_step": 1},
        "parallel": {"backend": "serial"}, "output": {"tensorboard": False}}


# -- helpers ------------------------------------------------------------------------------------------
class Probe:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.env = {**os.environ, "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "disabled"),
                    "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        self.n = 0

    def folder(self) -> Path:
        self.n += 1
        path = self.tmp / f"p{self.n:03d}"
        path.mkdir()
        return path

    def config(self, folder: Path, **changes) -> Path:
        data = json.loads(json.dumps(BASE))
        for dotted, value in changes.items():
            node = data
            *keys, last = dotted.split("__")
            for k in keys:
                node = node.setdefault(k, {})
            node[last] = value
        path = folder / "r.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    def cmd(self, *args, module="pbt_evo.run", timeout=900) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=ROOT, env=self.env, text=True,
                              capture_output=True, timeout=timeout)

    def start(self, *args, group=False) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "pbt_evo.run", *map(str, args)], cwd=ROOT, env=self.env, text=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=group)

    def run(self, folder: Path, **changes) -> tuple[subprocess.CompletedProcess, Path]:
        proc = self.cmd(self.config(folder, **changes), "--out", folder / "runs", "--quiet")
        return proc, folder / "runs" / "r"


def one_line(text: str) -> str | None:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip() and "Ray workers to start" not in ln]
    return lines[0] if len(lines) == 1 and "Traceback" not in text else None


def members(run: Path) -> list:
    return [{k: r[k] for k in ("gen", "id", "genome", "fitness", "epochs", "origin", "parents")}
            for r in map(json.loads, (run / "population.jsonl").read_text().splitlines())]


def wait_for(path: Path, proc: subprocess.Popen, seconds: float = 600) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)


def mount(path: Path, size: str = "8m") -> None:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True, capture_output=True)


# -- the probes: each returns (holds, what was seen) ------------------------------------------------------
def p_signals(p: Probe, ref: list) -> tuple[bool, str]:
    seen, ok = [], True
    for name, sig, group, code in (("SIGINT", signal.SIGINT, False, 130), ("SIGKILL", signal.SIGKILL, False, -9),
                                   ("SIGTERM", signal.SIGTERM, False, 143), ("SIGTERM to the group", signal.SIGTERM, True, 143)):
        folder = p.folder()
        config = p.config(folder)
        proc = p.start(config, "--out", folder / "runs", "--quiet", group=group)
        wait_for(folder / "runs" / "r" / "checkpoints" / "gen_00001", proc)
        os.killpg(proc.pid, sig) if group else proc.send_signal(sig)
        rc = proc.wait(timeout=300)
        again = p.cmd(config, "--out", folder / "runs", "--quiet")
        same = again.returncode == 0 and members(folder / "runs" / "r") == ref
        ok &= rc == code and same
        seen.append(f"{name} {rc}{', resumed = reference' if same else ', resume differs'}")
    return ok, "; ".join(seen)


def p_killed_worker(p: Probe, ref: list) -> tuple[bool, str]:
    folder = p.folder()
    proc, run = p.run(folder, task__target="tasks.faulty:KillsWorkers", task__args={"channels": 4, "marks": str(folder)},
                      parallel__backend="ray")
    failed = [r["failed"] for r in map(json.loads, (run / "log.jsonl").read_text().splitlines())] if proc.returncode == 0 else None
    ok = proc.returncode == 0 and (folder / "killed").exists() and members(run) == ref and failed == [0, 0, 0]
    return ok, f"exit {proc.returncode}, a worker died: {(folder / 'killed').exists()}, result = reference: {ok}"


def p_full_disk(p: Probe, ref: list) -> tuple[bool, str]:
    folder = p.folder()
    disk = folder / "disk"
    mount(disk, "4m")
    try:
        config = p.config(folder, task__target="tasks.faulty:FillsDisk", task__args={"channels": 4, "fill": str(disk)})
        first = p.cmd(config, "--out", disk / "runs", "--quiet")
        line = one_line(first.stderr) or ""
        (disk / "filler").unlink()
        again = p.cmd(config, "--out", disk / "runs", "--quiet")
        ok = (first.returncode == 1 and "No space left on device" in line and again.returncode == 0
              and members(disk / "runs" / "r") == ref)
        return ok, f"exit {first.returncode}: {line[:90]}...; resumed = reference: {ok}"
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def damaged_copy(p: Probe, ref_run: Path) -> Path:
    run = Path(shutil.copytree(ref_run, p.folder() / "runs" / "r"))
    shutil.rmtree(run / "best")
    return run


def p_damaged_checkpoint(p: Probe, ref: list, ref_run: Path) -> tuple[bool, str]:
    seen, ok = [], True
    for damage in ("truncated", "bit-flipped"):
        run = damaged_copy(p, ref_run)
        latest = run / "checkpoints" / "gen_00003"
        if damage == "truncated":
            state = latest / "states" / "00001.safetensors"
            state.write_bytes(state.read_bytes()[:1000])
        else:
            data = bytearray((latest / "loop.json").read_bytes())
            data[len(data) // 2] ^= 1
            (latest / "loop.json").write_bytes(bytes(data))
        proc = p.cmd(run, "--resume", "--quiet")
        line = one_line(proc.stderr) or ""
        good = proc.returncode == 0 and "continuing from gen_00002" in line and members(run) == ref
        ok &= good
        seen.append(f"{damage}: exit {proc.returncode}, falls back, result = reference: {good}")
    return ok, "; ".join(seen)


def p_two_runs(p: Probe) -> tuple[bool, str]:
    folder = p.folder()
    config = p.config(folder, algorithm__e_total=6)
    first = p.start(config, "--out", folder / "runs", "--quiet")
    wait_for(folder / "runs" / "r" / "log.jsonl", first)
    second = p.cmd(config, "--out", folder / "runs", "--quiet")
    line = one_line(second.stderr) or ""
    rc = first.wait(timeout=900)
    ok = second.returncode == 2 and "is in use by another run (pid" in line and rc == 0
    return ok, f"second: exit {second.returncode}, '{line[:70]}...'; first: exit {rc}"


def p_impossible_requests(p: Probe) -> tuple[bool, str]:
    seen, ok = [], True
    for what, changes in (("GPU", {"parallel__gpus_per_worker": 0.5}), ("CPU", {"parallel__workers": 2 * os.cpu_count()})):
        folder = p.folder()
        proc, _ = p.run(folder, parallel__backend="ray", **changes)
        line = one_line(proc.stderr) or ""
        good = proc.returncode == 2 and line.startswith("error: ") and "asks for" in line and not (folder / "runs").exists()
        ok &= good
        seen.append(f"{what}: exit {proc.returncode}, one line: {bool(line)}")
    return ok, "; ".join(seen)


def p_crafted_files(p: Probe, ref_run: Path) -> tuple[bool, str]:
    import hashlib
    import pickle

    marker = p.tmp / "pickle_marker"

    class Payload:
        def __reduce__(self):
            return exec, (f"open({str(marker)!r}, 'w').write('ran')",)

    seen, ok = [], True
    for craft in ("pickled checkpoint", "malformed safetensors header", "path traversal in loop.json"):
        run = damaged_copy(p, ref_run)
        for old in sorted((run / "checkpoints").glob("gen_*"))[:-1]:
            shutil.rmtree(old)  # one checkpoint: nothing to fall back to
        ck = run / "checkpoints" / "gen_00003"
        manifest = json.loads((ck / "MANIFEST.json").read_text())
        if craft == "pickled checkpoint":
            shutil.rmtree(ck)
            (ck / "states").mkdir(parents=True)
            (ck / "loop.pkl").write_bytes(pickle.dumps(Payload()))
        else:
            if craft == "malformed safetensors header":
                name = "states/00000.safetensors"
                (ck / name).write_bytes((10**12).to_bytes(8, "little") + b"{}")
            else:
                name = "loop.json"
                doc = json.loads((ck / name).read_text())
                doc["population"][0]["handle"] = {"handle": "StoredState", "file": "../../../../etc/passwd"}
                (ck / name).write_text(json.dumps(doc))
            data = (ck / name).read_bytes()
            manifest["files"][name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            (ck / "MANIFEST.json").write_text(json.dumps(manifest))
        proc = p.cmd(run, "--resume", "--quiet")
        line = one_line(proc.stderr) or ""
        good = proc.returncode == 2 and line.startswith("error: ") and not marker.exists()
        ok &= good
        seen.append(f"{craft}: exit {proc.returncode}, one line: {bool(line)}")
    return ok and not marker.exists(), "; ".join(seen)


def p_foreign_folder(p: Probe, ref_run: Path) -> tuple[bool, str]:
    marker = p.tmp / "folder_marker"
    run = Path(shutil.copytree(ref_run, p.folder() / "runs" / "r"))
    evil = {"target": "subprocess:getoutput", "args": {"cmd": f"touch {marker}"}}
    info = json.loads((run / "best" / "genome.json").read_text())
    info["task"] = {"target": "pbt_evo.hyper:HyperparameterTask", "args": {**evil, "hyperparameters": {}}}
    info.pop("test_score")
    (run / "best" / "genome.json").write_text(json.dumps(info))
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["task"] = {**evil, "hyperparameters": {}}
    cfg["algorithm"]["research_code_compat"] = True
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    code = f"import pbt_evo\ntry:\n    pbt_evo.load_best({str(run)!r})\nexcept ValueError as e:\n    print(e)"
    refused = [subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=p.env, capture_output=True, text=True)
               .stdout.count("which no installed package registers") == 1]
    for args, module, rc in (((run, "--resume"), "pbt_evo.run", 2), ((run,), "pbt_evo.soup", 2),
                             ((run,), "pbt_evo.replay", 2),
                             ((run, run, "--report", "test"), "pbt_evo.compare", 2), ((run,), "pbt_evo.plot", 0),
                             ((run,), "pbt_evo.convert", 0)):
        proc = p.cmd(*args, module=module)
        refused.append(proc.returncode == rc and (rc == 0 or "which no installed package registers" in proc.stderr))
    ok = all(refused) and not marker.exists()
    return ok, (f"load_best, resume, soup, replay, compare --report test refuse in one line, plot and convert build"
                f" no task: {sum(refused)}/{len(refused)}; the planted command ran: {marker.exists()}")


def p_cluster_address(p: Probe) -> tuple[bool, str]:
    folder = p.folder()
    t0 = time.monotonic()
    proc, _ = p.run(folder, parallel__backend="ray", parallel__address="127.0.0.1:1")
    refused_s = time.monotonic() - t0
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        t0 = time.monotonic()
        other, _ = p.run(p.folder(), parallel__backend="ray", parallel__address=f"127.0.0.1:{listener.getsockname()[1]}")
        silent_s = time.monotonic() - t0
    finally:
        listener.close()
    ok = (proc.returncode == 2 and one_line(proc.stderr) and other.returncode == 2 and one_line(other.stderr)
          and max(refused_s, silent_s) < 60)
    return ok, (f"nothing listening: exit {proc.returncode} after {refused_s:.1f} s; not Ray: exit {other.returncode}"
                f" after {silent_s:.1f} s; one line each")


def p_torn_append(p: Probe, ref: list, ref_run: Path) -> tuple[bool, str]:
    run = damaged_copy(p, ref_run)
    shutil.rmtree(run / "checkpoints" / "gen_00003")
    for name in ("log.jsonl", "population.jsonl"):
        data = (run / name).read_bytes()
        (run / name).write_bytes(data[:len(data) - 40])
    proc = p.cmd(run, "--resume", "--quiet")
    line = one_line(proc.stderr) or ""
    ok = proc.returncode == 0 and "dropped the last line of log.jsonl, population.jsonl" in line and members(run) == ref
    return ok, f"exit {proc.returncode}, '{line[len(str(run)) + 11:][:60]}...', result = reference: {ok}"


def p_shipped_configs(p: Probe) -> tuple[bool, str]:
    code = ("import glob; from pbt_evo.cli.config import load\n"
            "print(sorted({load(f)['output']['keep_checkpoints'] for f in glob.glob('spaces/*.yaml')}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=p.env, capture_output=True, text=True).stdout.strip()
    return out == "[2]", f"keep_checkpoints of every spaces/*.yaml: {out}"


def p_output_paths(p: Probe, ref_run: Path) -> tuple[bool, str]:
    seen = []
    folder = p.folder()
    config = p.config(folder)
    (folder / "file").write_text("")
    (folder / "dir").mkdir()
    (folder / "dir" / "r").write_text("")
    disk = folder / "ro"
    mount(disk)
    try:
        run = Path(shutil.copytree(ref_run, disk / "runs" / "r"))
        shutil.rmtree(run / "best")
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        for what, args in (("--out a file", (config, "--out", folder / "file")),
                           ("--out DIR with DIR/r a file", (config, "--out", folder / "dir")),
                           ("--out on a read-only filesystem", (config, "--out", disk / "new")),
                           ("--resume on a read-only filesystem", (run, "--resume"))):
            proc = p.cmd(*args, "--quiet")
            seen.append((what, proc.returncode == 2 and bool(one_line(proc.stderr))))
    finally:
        subprocess.run(["umount", str(disk)], check=True)
    return all(ok for _, ok in seen), "; ".join(f"{w}: {'one line, exit 2' if ok else 'NOT one line'}" for w, ok in seen)


def p_nothing_trained(p: Probe) -> tuple[bool, str]:
    folder = p.folder()
    proc, run = p.run(folder, task__target="tasks.faulty:Broken", parallel__backend="ray")
    line = one_line(proc.stderr) or ""
    ok = (proc.returncode == 1 and line.startswith("error: no member trained") and not (run / "best").exists()
          and "ZeroDivisionError" in (run / "errors.log").read_text())
    return ok, f"exit {proc.returncode}, one line, nothing exported, tracebacks in errors.log: {ok}"


def p_both_workers(p: Probe, ref: list) -> tuple[bool, str]:
    folder = p.folder()
    proc, run = p.run(folder, task__target="tasks.faulty:KillsWorkers", parallel__backend="ray",
                      task__args={"channels": 4, "marks": str(folder), "both": True})
    failed = [r["failed"] for r in map(json.loads, (run / "log.jsonl").read_text().splitlines())] if proc.returncode == 0 else None
    ok = proc.returncode == 0 and len(list(folder.glob("pid_*"))) >= 4 and failed == [0, 0, 0] and members(run) == ref
    return ok, f"exit {proc.returncode}, both replaced: {len(list(folder.glob('pid_*'))) >= 4}, failed {failed}, result = reference: {ok}"


def p_edited_config(p: Probe, ref_run: Path) -> tuple[bool, str]:
    run = damaged_copy(p, ref_run)
    shutil.rmtree(run / "checkpoints" / "gen_00003")
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["algorithm"].update(population=10, tau=0.5)
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    before = (run / "log.jsonl").read_text()
    proc = p.cmd(run, "--resume", "--quiet")
    line = one_line(proc.stderr) or ""
    ok = proc.returncode == 2 and "algorithm.population 6 -> 10, algorithm.tau 0.25 -> 0.5" in line
    return ok and (run / "log.jsonl").read_text() == before, f"exit {proc.returncode}: refused, naming both keys: {ok}"


def p_sigterm_ray_start(p: Probe) -> tuple[bool, str]:
    seen, ok = [], True
    for when in ("importing torch", "Ray starting"):
        folder = p.folder()
        proc = p.start(p.config(folder, parallel__backend="ray"), "--out", folder / "runs", "--quiet")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if when == "importing torch" and "libtorch" in Path(f"/proc/{proc.pid}/maps").read_text():
                break
            if when == "Ray starting" and session_processes(proc.pid):
                break
            time.sleep(0.005)
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=120)
        line = one_line(proc.stderr.read()) or ""
        time.sleep(10)
        left = session_processes(proc.pid)
        good = rc == 143 and line.startswith("terminated (SIGTERM)") and "is checkpointed in" not in line and not left
        ok &= good
        seen.append(f"{when}: exit {rc}, '{line}', Ray processes left after 10 s: {len(left)}")
    return ok, "; ".join(seen)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="comma-separated case numbers")
    args = ap.parse_args()
    only = {int(x) for x in args.only.split(",")} if args.only else None
    with tempfile.TemporaryDirectory(prefix="probe_faults_") as tmp:
        p = Probe(Path(tmp))
        ref_proc, ref_run = p.run(p.folder())
        assert ref_proc.returncode == 0, ref_proc.stderr
        ref = members(ref_run)
        cases = [
            ("SIGINT, SIGKILL, SIGTERM (and to the process group) mid-run", lambda: p_signals(p, ref)),
            ("a killed Ray worker", lambda: p_killed_worker(p, ref)),
            ("a full disk while checkpointing", lambda: p_full_disk(p, ref)),
            ("a truncated or bit-flipped latest checkpoint (2 kept)", lambda: p_damaged_checkpoint(p, ref, ref_run)),
            ("two runs into one run folder", lambda: p_two_runs(p)),
            ("impossible GPU / CPU requests", lambda: p_impossible_requests(p)),
            ("pickled checkpoint, malformed safetensors header, path traversal", lambda: p_crafted_files(p, ref_run)),
            ("1. a run folder naming code (genome.json, config.yaml)", lambda: p_foreign_folder(p, ref_run)),
            ("2. a wrong cluster address", lambda: p_cluster_address(p)),
            ("3. a torn last line of the logs", lambda: p_torn_append(p, ref, ref_run)),
            ("4. checkpoints kept by the shipped configs", lambda: p_shipped_configs(p)),
            ("5. unwritable or wrong-kind output paths", lambda: p_output_paths(p, ref_run)),
            ("6. every member fails", lambda: p_nothing_trained(p)),
            ("7. both Ray workers killed at once", lambda: p_both_workers(p, ref)),
            ("8. config.yaml edited before --resume", lambda: p_edited_config(p, ref_run)),
            ("9. SIGTERM while torch imports and while Ray starts", lambda: p_sigterm_ray_start(p)),
        ]
        held = ran = 0
        for k, (name, probe) in enumerate(cases, 1):
            if only and k not in only:
                continue
            t0 = time.monotonic()
            try:
                ok, seen = probe()
            except Exception as exc:  # a probe that breaks is a case that does not hold
                ok, seen = False, f"the probe raised {type(exc).__name__}: {exc}"
            ran, held = ran + 1, held + ok
            print(f"{k:2d} {'holds' if ok else 'fails'}  {name}: {seen} ({time.monotonic() - t0:.0f} s)", flush=True)
    print(f"probes_holding={held}/{ran}")
    return 0 if held == ran else 1


if __name__ == "__main__":
    sys.exit(main())
