"""The GPU check (issue 31): one prepared script for a lent GPU machine, one ``name=value`` line per figure.

    bash benchmarks/gpu_check.sh                     # there: install the carried wheels, run every step
    python benchmarks/gpu_check.py --dry-run          # here, on a CPU: what it would run; is it ready?
    python benchmarks/gpu_check.py --build-wheels     # here (pip, network): the wheel folder .whl/

The device machine (the tool library's ``device`` entry, KINDS.md) has Python 3.12, torch with CUDA, scipy,
scikit-learn, safetensors, pytest, ... but no network and none of deap, mnist1d, pytorch-fid, ray, dm_control
or mujoco. The first three travel as wheels (``benchmarks/gpu_wheels.txt``, built into the ignored folder
``.whl/``; the call names it in ``carry``). Ray (75.6 MiB) and dm_control with mujoco (79.3 MiB) are larger
than the 64 MiB a call carries: the Ray map and the RL environments are not checked there (lines
``ray_map=not_checked`` and ``rl_env=not_checked`` say so). Steps, in order: the tests marked ``gpu``
(``tests/test_gpu.py``), members sharing the GPU (``gpu_share.py``), DrQ-v2 updates on CUDA against the CPU,
two GAN generations (``gpu_steps.py``). A step that fails prints ``<step>=failed: ...`` and the others run.
Logs go to ``$OUT`` (or ``--out``) when set: gpu_check.log, pytest_gpu.log.

``--dry-run`` exits 0 when the script is ready: the wheel list parses; the wheel folder holds exactly the
listed wheels, installable for CPython 3.12 on x86-64 -- or is absent, reported as ``wheels=to_build`` with
the command that builds it (not a failure: CI has no folder; ``--require-wheels`` makes it one); what
travels fits 64 MiB; the device command fits 2,000 characters; the ``gpu`` tests collect; each step's code
runs at a tiny size on the CPU.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(1, str(ROOT))  # this checkout's pbt_evo and tasks, after benchmarks/ (the script's folder)
WHEELS = ROOT / ".whl"
PINS = ROOT / "benchmarks" / "gpu_wheels.txt"
GPU_TESTS = ["tests/test_gpu.py", "-m", "gpu", "-p", "no:cacheprovider"]
DEVICE_COMMAND = "bash benchmarks/gpu_check.sh"
DEVICE_CALL = f'run(command="{DEVICE_COMMAND}", carry=[".whl"], timeout_s=540)'
COMMAND_LIMIT, TRAVEL_LIMIT_MIB, BUDGET_S = 2000, 64, 480
# pip's tags for the device machine (device README): CPython 3.12 on x86-64 Linux
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64")
TARGET = ["--python-version", "3.12", "--implementation", "cp", *[a for p in PLATFORMS for a in ("--platform", p)]]
BUILD_COMMAND = "python benchmarks/gpu_check.py --build-wheels"
ABSENT = ("ray", "dm_control", "mujoco")  # too large to carry (NOT_CHECKED)
NOT_CHECKED = {
    "ray_map": "not_checked: ray's wheel (ray 2.60.0, cp312 x86-64: 75.6 MiB) is larger than the 64 MiB a device"
               " call carries, and the machine has no network; the serial map runs the same members",
    "rl_env": "not_checked: dm_control 1.0.50 + mujoco 3.17.0 wheels are 79.3 MiB (> 64 MiB); agent updates need no"
              " environment",
    "fid_inception": "not_checked: the Inception weights cannot be fetched there; the GAN is scored by the"
                     " digits-classifier distance",
}


class Report:
    """``name=value`` lines on stdout, copied to ``<out>/gpu_check.log`` when there is an output folder."""

    def __init__(self, out: Path | None):
        self.out = out
        self.log = (out / "gpu_check.log").open("w") if out else None

    def line(self, text: str) -> None:
        print(text, flush=True)
        if self.log:
            self.log.write(text + "\n")
            self.log.flush()

    def figures(self, figures: dict[str, Any]) -> None:
        for name, value in figures.items():
            self.line(f"{name}={value:.4g}" if isinstance(value, float) else f"{name}={value}")


# -- wheels ------------------------------------------------------------------------------------------------
def read_pins(path: Path = PINS) -> dict[str, str]:
    """``{normalised name: version}`` from the wheel list (``NAME==VERSION`` a line, ``#`` comments)."""
    pins = {}
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#")[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)", line)
        if not m:
            raise ValueError(f"{path}:{n}: {raw.strip()!r} is not NAME==VERSION")
        pins[normalise(m.group(1))] = m.group(2)
    return pins


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def check_wheel_folder(pins: dict[str, str], folder: Path = WHEELS) -> list[str]:
    """What is wrong with the wheel folder (empty: it holds exactly the pinned wheels, one each, and pip installs
    them for CPython 3.12 on x86-64 into a scratch folder, without the network)."""
    found: dict[str, list[str]] = {}
    for wheel in sorted(folder.glob("*.whl")):
        name, version = wheel.name.split("-")[:2]
        found.setdefault(normalise(name), []).append(version)
    problems = [f"{name}: no wheel of {version}" for name, version in pins.items() if found.get(name) != [version]]
    problems += [f"{name} {versions}: not in {PINS.name}" for name, versions in found.items() if name not in pins]
    if problems:
        return problems
    with tempfile.TemporaryDirectory() as target:
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
               "--only-binary=:all:", "--target", target, *TARGET, *map(str, sorted(folder.glob("*.whl")))]
        done = subprocess.run(cmd, capture_output=True, text=True)
    return [] if done.returncode == 0 else [f"pip cannot install them for Python 3.12: {done.stderr.strip()[-300:]}"]


def build_wheels(folder: Path = WHEELS) -> int:
    """Download the pinned wheels for the device machine into ``folder``, dropping any other wheel there."""
    pins = read_pins()
    folder.mkdir(exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", *TARGET, "-d", str(folder),
           *[f"{name}=={version}" for name, version in pins.items()]]
    print(" ".join(cmd), flush=True)
    if subprocess.run(cmd).returncode:
        return 1
    for wheel in folder.glob("*.whl"):
        name, version = wheel.name.split("-")[:2]
        if pins.get(normalise(name)) != version:
            wheel.unlink()
    problems = check_wheel_folder(pins, folder)
    print(f"wheels={'ok' if not problems else 'bad: ' + '; '.join(problems)} ({mib(folder_bytes(folder)):.2f} MiB)")
    return 1 if problems else 0


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def mib(n: int) -> float:
    return n / 2**20


def travel_bytes() -> int | None:
    """Bytes that a device call sends: tracked and untracked-not-ignored files, ``shared/``, the wheel folder
    (None: not a git checkout)."""
    done = subprocess.run(["git", "ls-files", "-z", "-c", "-o", "--exclude-standard"], cwd=ROOT, capture_output=True)
    if done.returncode:
        return None
    files = {ROOT / f for f in done.stdout.decode().split("\0") if f}
    total = sum(p.stat().st_size for p in files if p.is_file() and not p.is_symlink())
    return total + sum(folder_bytes(ROOT / d) for d in ("shared", ".whl") if (ROOT / d).is_dir())


# -- the run -------------------------------------------------------------------------------------------------
def gpu_tests(report: Report) -> dict[str, Any]:
    """The tests marked gpu, in a subprocess (they start CUDA themselves); counts from their JUnit XML."""
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        start = time.perf_counter()
        try:
            done = subprocess.run([sys.executable, "-m", "pytest", *GPU_TESTS, "-q", f"--junitxml={junit}"],
                                  cwd=ROOT, capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired as exc:  # keep what it printed: the call is costly
            if report.out:
                out = exc.stdout or ""
                text = out if isinstance(out, str) else out.decode(errors="replace")
                (report.out / "pytest_gpu.log").write_text(text)
            raise
        if report.out:
            (report.out / "pytest_gpu.log").write_text(done.stdout + done.stderr)
        if not junit.is_file():
            raise RuntimeError(f"pytest wrote no results (exit {done.returncode}): {done.stdout[-500:]}")
        cases = ET.parse(junit).getroot().iter("testcase")
        failed = [c.get("name") for c in cases if c.find("failure") is not None or c.find("error") is not None]
        suite = next(ET.parse(junit).getroot().iter("testsuite"))
    total = int(suite.get("tests", 0))
    if failed:
        report.line(done.stdout[-3000:])
    return {"gpu_tests_passed": total - len(failed) - int(suite.get("skipped", 0)), "gpu_tests_failed": len(failed),
            "gpu_tests_skipped": int(suite.get("skipped", 0)), "gpu_tests_failed_names": ",".join(failed) or "none",
            "gpu_tests_s": time.perf_counter() - start}


def run_step(report: Report, name: str, step: Callable[[], dict[str, Any]]) -> bool:
    start = time.perf_counter()
    try:
        figures = step()
    except Exception as exc:  # one failing step must not hide the others' figures: the call is costly
        last = str(exc).strip().splitlines()[-1:] or [""]
        report.line(f"{name}=failed: {type(exc).__name__}: {last[0]}")
        if report.log:
            report.log.write(traceback.format_exc())
        return False
    report.figures(figures)
    report.line(f"{name}_step_s={time.perf_counter() - start:.1f}")
    return not figures.get("gpu_tests_failed")


def run_all(report: Report, only: list[str] | None) -> int:
    import torch

    import gpu_steps

    if not torch.cuda.is_available():
        report.line("gpu_check=failed: torch sees no CUDA device (this runs on a lent GPU machine; --dry-run here)")
        return 1
    props = torch.cuda.get_device_properties(0)
    report.figures({"device": props.name, "gpu_mib": props.total_memory // 2**20, "torch": torch.__version__,
                    "cuda": torch.version.cuda, "python": sys.version.split()[0],
                    "cpu_threads": torch.get_num_threads()})
    steps: dict[str, Callable[[], dict[str, Any]]] = {"gpu_tests": lambda: gpu_tests(report)}
    steps.update({name: (lambda f=f: f("cuda")) for name, f in gpu_steps.STEPS.items()})
    start, failed = time.perf_counter(), []
    for name, step in steps.items():
        if only and name not in only:
            continue
        if time.perf_counter() - start > BUDGET_S - 60:
            report.line(f"{name}=skipped: {BUDGET_S - 60} s spent; rerun it alone with --only {name}")
            failed.append(name)
        elif not run_step(report, name, step):
            failed.append(name)
    report.figures(NOT_CHECKED)
    report.line(f"gpu_check_s={time.perf_counter() - start:.0f}")
    report.line(f"gpu_check={'failed: ' + ','.join(failed) if failed else 'ok'}")
    return 1 if failed else 0


# -- the dry run ---------------------------------------------------------------------------------------------
def dry_run(report: Report, require_wheels: bool) -> int:
    import torch

    import gpu_steps

    torch.set_num_threads(1)  # tiny steps: one thread is fastest, and CI machines are shared
    for name in ABSENT:  # as on the device machine: the steps must not need them
        sys.modules[name] = None  # type: ignore[assignment]
    report.line(f"blocked_imports={','.join(ABSENT)} (absent on the device machine)")

    problems = []
    report.line(f"device_call={DEVICE_CALL}")
    report.line("would_run=python3 -m pip install --no-index --no-deps --target /tmp/site .whl/*.whl")
    report.line(f"would_run=python3 -m pytest {' '.join(GPU_TESTS)}")
    for name, step in gpu_steps.STEPS.items():
        report.line(f"would_run={name}: {gpu_steps.WHAT[name]}")
    report.line(f"device_command_chars={len(DEVICE_COMMAND)} (limit {COMMAND_LIMIT})")
    if len(DEVICE_COMMAND) > COMMAND_LIMIT:
        problems.append("device command too long")
    try:
        pins = read_pins()
        report.line(f"wheel_list={','.join(f'{n}=={v}' for n, v in pins.items())}")
        if not WHEELS.is_dir():
            report.line(f"wheels=to_build: {WHEELS.name}/ is absent; build it with: {BUILD_COMMAND}")
            if require_wheels:
                problems.append("wheel folder absent")
        else:
            bad = check_wheel_folder(pins)
            report.line(f"wheels={'ok' if not bad else 'bad: ' + '; '.join(bad)} ({mib(folder_bytes(WHEELS)):.2f} MiB)")
            if bad:
                problems.append(f"wheel folder (rebuild: {BUILD_COMMAND})")
    except ValueError as exc:
        report.line(f"wheel_list=bad: {exc}")
        problems.append("wheel list")
    travel = travel_bytes()
    if travel is None:
        report.line("travel_mib=unknown: not a git checkout")
    else:
        report.line(f"travel_mib={mib(travel):.2f} (limit {TRAVEL_LIMIT_MIB}; wheels included when built)")
        if mib(travel) > TRAVEL_LIMIT_MIB:
            problems.append("working tree too large to travel")
    collect = subprocess.run([sys.executable, "-m", "pytest", *GPU_TESTS, "--collect-only", "-q"], cwd=ROOT,
                             capture_output=True, text=True, timeout=300)
    collected = [line for line in collect.stdout.splitlines() if "::" in line]
    report.line(f"gpu_tests_collected={len(collected)}")
    if collect.returncode or not collected:
        problems.append(f"gpu tests do not collect: {collect.stdout[-300:]}")
    for name, step in gpu_steps.STEPS.items():
        tiny = (lambda s=step: {f"tiny_{k}": v for k, v in s("cpu", tiny=True).items()})
        if not run_step(report, f"tiny_{name}", tiny):
            problems.append(f"step {name}")
    report.figures(NOT_CHECKED)
    report.line(f"dry_run={'ready' if not problems else 'not_ready: ' + '; '.join(problems)}")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dry-run", action="store_true", help="on a CPU: list the steps and check the set-up")
    p.add_argument("--require-wheels", action="store_true", help="with --dry-run: an absent wheel folder fails")
    p.add_argument("--build-wheels", action="store_true", help=f"download the wheels into {WHEELS.name}/ and stop")
    p.add_argument("--only", nargs="+", choices=["gpu_tests", "share", "rl_updates", "gan"],
                   help="run only these steps")
    p.add_argument("--out", type=Path, default=os.environ.get("OUT") or None, help="folder for logs (default $OUT)")
    args = p.parse_args(argv)
    if args.build_wheels:
        return build_wheels()
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
    report = Report(args.out)
    return dry_run(report, args.require_wheels) if args.dry_run else run_all(report, args.only)


if __name__ == "__main__":
    sys.exit(main())
