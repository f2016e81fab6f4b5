"""The GPU check's set-up, on the CPU (issue 31): its dry run is ready, the tests marked gpu are deselected by
default and fail (never skip) without CUDA, and the pieces the GPU run relies on work without a GPU."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import gpu_check  # noqa: E402

NO_GPU = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": os.pathsep.join(
    filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def lines(text):
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and " " not in line.split("=")[0])


def test_the_dry_run_lists_the_steps_checks_the_set_up_and_is_ready():
    done = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--dry-run"], cwd=ROOT, capture_output=True, text=True,
                          env={**NO_GPU, "PYTHON": sys.executable}, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    got = lines(done.stdout)
    assert got["dry_run"] == "ready"
    assert got["device_call"] == 'run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=540)'
    assert [x.split(":")[0] for x in done.stdout.splitlines() if x.startswith("would_run=")][2:] == \
        ["would_run=share", "would_run=rl_updates", "would_run=gan"]
    if gpu_check.WHEELS.is_dir():  # built here: it must hold exactly the listed wheels
        assert got["wheels"].startswith("ok ("), got["wheels"]
    else:  # CI: the folder is absent, which the dry run reports with the command that builds it
        assert got["wheels"] == ("to_build: .whl/ is absent; build it with:"
                                 " python benchmarks/gpu_check.py --build-wheels")
    assert float(got["travel_mib"].split()[0]) < 64 and int(got["device_command_chars"].split()[0]) <= 2000
    assert int(got["gpu_tests_collected"]) == 8
    assert float(got["tiny_share_k2_members_per_s"]) > 0 and float(got["tiny_rl_updates_per_s_cpu"]) > 0
    assert float(got["tiny_gan_best_neg_fd"]) < 0 and float(got["tiny_gan_gen2_s"]) > 0
    assert got["ray_map"].startswith("not_checked: ray's wheel")
    assert got["blocked_imports"] == "ray,dm_control,mujoco (absent on the device machine)"


def test_the_wheel_list_and_folder_checks_name_what_is_wrong(tmp_path):
    pins = gpu_check.read_pins()
    assert pins["deap"] == "1.4.4" and pins["pytorch_fid"] == "0.3.0" and len(pins) == 7
    (tmp_path / "deap-1.4.3-py3-none-any.whl").write_bytes(b"")
    (tmp_path / "ray-2.60.0-cp312-cp312-manylinux2014_x86_64.whl").write_bytes(b"")
    problems = gpu_check.check_wheel_folder({"deap": "1.4.4"}, tmp_path)
    assert problems == ["deap: no wheel of 1.4.4", "ray ['2.60.0']: not in gpu_wheels.txt"]
    bad = tmp_path / "list.txt"
    bad.write_text("deap==1.4.4\nmnist1d>=0.0.2  # a range\n")
    with pytest.raises(ValueError, match=r"list.txt:2: 'mnist1d>=0.0.2  # a range' is not NAME==VERSION"):
        gpu_check.read_pins(bad)


def test_tests_marked_gpu_are_deselected_by_default_and_fail_without_cuda_saying_so():
    default = subprocess.run([sys.executable, "-m", "pytest", "tests/test_gpu.py", "--collect-only", "-q",
                              "-p", "no:cacheprovider"], cwd=ROOT, capture_output=True, text=True, env=NO_GPU)
    assert "8 deselected" in default.stdout, default.stdout
    run = subprocess.run([sys.executable, "-m", "pytest", "tests/test_gpu.py", "-m", "gpu", "-q", "-p",
                          "no:cacheprovider", "-k", "mixed_on_cuda"], cwd=ROOT, capture_output=True, text=True,
                         env=NO_GPU)
    assert run.returncode == 1 and "1 error" in run.stdout and "skipped" not in run.stdout, run.stdout
    assert "this test needs a CUDA GPU, and torch sees none here" in run.stdout


def test_a_config_that_names_cuda_where_there_is_none_is_one_clear_line(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({
        "name": "t", "task": {"target": "tasks.digits:DigitsTask", "args": {"channels": 4, "device": "cuda"}},
        "algorithm": {"population": 8, "e_total": 1, "e_step": 1}, "parallel": {"backend": "serial"}}))
    done = subprocess.run([sys.executable, "-m", "pbt_evo.run", str(config), "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, env=NO_GPU)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].endswith(
        "task.args.device: 'cuda', but torch sees no CUDA device in this process: use 'cpu' or 'auto', or run where a"
        " GPU is visible (Ray workers need parallel.gpus_per_worker > 0)")


def test_device_cpu_is_the_default_and_builds_the_same_member():
    from pbt_evo import FreshState
    from tasks.digits import DigitsTask

    default, cpu = DigitsTask(channels=4), DigitsTask(channels=4, device="cpu")
    genome = default.space.sample()
    a, b = FreshState(3).materialise(default, genome), FreshState(3).materialise(cpu, genome)
    assert default.device == cpu.device == torch.device("cpu")
    pairs = zip(a.model.state_dict().values(), b.model.state_dict().values(), strict=True)
    assert all(torch.equal(x, y) for x, y in pairs)
    with pytest.raises(ValueError, match=r"task.args.device: 'cuda:x' is not a device; expected 'cpu', 'cuda'"):
        DigitsTask(device="cuda:x")


def test_without_dm_control_the_rl_environment_says_what_to_install(monkeypatch):
    from tasks.rl.env import DMCEnv

    monkeypatch.setitem(sys.modules, "dm_control", None)  # as on the GPU machine (the dry run's tiny steps, too)
    with pytest.raises(ImportError, match=r"^tasks.rl's environments need dm_control with mujoco<4 .*: pip install"):
        DMCEnv("cartpole", "swingup")
