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
