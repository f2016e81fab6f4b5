import os
import random

import pytest
import torch

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


@pytest.fixture(autouse=True)
def _seeded():
    random.seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray instance (2 CPUs) shared by the tests that need real workers."""
    import ray

    # "local": a Ray instance of the tests' own; without it Ray joins a cluster `ray start` left on the machine
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def one_torch_thread():
    """Tiny networks: one torch thread avoids OpenMP contention on a shared 2-core machine (many times faster).

    Used by test modules with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def digits_task():
    from tasks.digits import DigitsTask

    return DigitsTask()


@pytest.fixture
def killed_after():
    """Start a run's command and SIGKILL it once its folder's checkpoint reaches a generation.

    ``killed_after(cmd, run_folder, "gen_00002", cwd=..., env=...)`` returns the generation the checkpoint
    named when the process died (a kill between generations, as a crash or a pre-empted node leaves it)."""
    import signal
    import subprocess
    import time

    def kill(cmd, run_folder, generation, cwd, env=None, timeout=300):
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        latest = run_folder / "checkpoints" / "LATEST"
        deadline = time.time() + timeout
        while time.time() < deadline and not (latest.exists() and latest.read_text() >= generation):
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        return latest.read_text()

    return kill
