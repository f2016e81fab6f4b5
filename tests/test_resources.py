"""Ray workers' resources against the cluster's: impossible requests fail at once with what to set
(pbt_evo.parallel.resources, no Ray), and on a real Ray instance within seconds; busy resources are
waited for with a line saying what is pending, until parallel.wait_timeout."""

import logging
import threading
import time

import pytest

from pbt_evo import RayMap, TaskSpec
from pbt_evo.parallel.resources import ResourceError, WorkerRequest, capacity, check

SPEC = TaskSpec("tasks.digits:DigitsTask", {"channels": 4})


def refusal(request, nodes, advice=""):
    with pytest.raises(ResourceError) as err:
        check(request, nodes, advice)
    return str(err.value)


def test_what_fits_is_counted_node_by_node():
    two_servers = [{"CPU": 16.0, "GPU": 1.0}, {"CPU": 16.0, "GPU": 1.0}]
    assert capacity(WorkerRequest(8, cpus=2, gpus=0.25), two_servers) == 8
    assert capacity(WorkerRequest(3, cpus=0.3), [{"CPU": 0.9}]) == 3  # fractions that fit exactly
    assert capacity(WorkerRequest(3, cpus=3), [{"CPU": 4.0}, {"CPU": 4.0}]) == 2
    check(WorkerRequest(8, cpus=2, gpus=0.25), two_servers)  # fits: nothing raised


def test_impossible_requests_say_what_is_asked_what_the_cluster_has_and_what_to_set():
    p = "parallel."
    assert refusal(WorkerRequest(2, gpus=0.5, prefix=p), [{"CPU": 2.0}]) == (
        "parallel.gpus_per_worker=0.5 x 2 workers asks for 1 GPU; the Ray cluster has 0 GPUs: set"
        " parallel.gpus_per_worker=0, or run where the cluster has GPUs")
    assert refusal(WorkerRequest(12, cpus=2, gpus=0.25, prefix=p), [{"CPU": 32.0, "GPU": 2.0}]) == (
        "parallel.gpus_per_worker=0.25 x 12 workers asks for 3 GPUs; the Ray cluster has 2 GPUs: set"
        " parallel.workers=8 (or parallel.gpus_per_worker=0.166)")
    assert refusal(WorkerRequest(1, cpus=3, prefix=p), [{"CPU": 2.0}, {"CPU": 2.0}]) == (
        "one worker asks for 3 CPUs; no Ray node has that much (the largest has 2 CPUs): ask for less per worker"
        " (parallel.cpus_per_worker)")
    assert refusal(WorkerRequest(3, cpus=2), [{"CPU": 3.0}, {"CPU": 3.0}]) == (
        "workers=3 of 2 CPUs each: the Ray nodes hold 2 side by side (a worker runs on one node): set workers=2")
    assert refusal(WorkerRequest(2, custom={"tpu": 1.0}), [{"CPU": 4.0}], "; or wait") == (
        "resources.tpu=1 x 2 workers asks for 2 tpu; the Ray cluster has 0 tpu: set resources.tpu=0, or run where"
        " the cluster has tpus; or wait")


def timed_refusal(**kwargs):
    t0 = time.monotonic()
    with pytest.raises(ResourceError) as err:
        RayMap(SPEC, **kwargs)
    return str(err.value), time.monotonic() - t0


AUTOSCALING = "; on a cluster that adds nodes on demand, set wait_timeout to wait for them"


def test_an_impossible_request_fails_within_seconds_on_a_real_cluster(ray_session):
    message, seconds = timed_refusal(workers=4, cpus_per_worker=1)
    assert message == ("workers=4 x cpus_per_worker=1 asks for 4 CPUs; the Ray cluster has 2 CPUs: set workers=2 (or"
                       " cpus_per_worker=0.5)" + AUTOSCALING) and seconds < 5
    message, seconds = timed_refusal(workers=2, gpus_per_worker=0.5)
    assert message == ("gpus_per_worker=0.5 x 2 workers asks for 1 GPU; the Ray cluster has 0 GPUs: set"
                       " gpus_per_worker=0, or run where the cluster has GPUs" + AUTOSCALING) and seconds < 5


@pytest.fixture
def cpus_taken(ray_session):
    """Another job holding both of the session's CPUs."""

    @ray_session.remote(num_cpus=2)
    class Holder:
        def ready(self):
            return True

    holder = Holder.remote()
    ray_session.get(holder.ready.remote())
    yield holder
    ray_session.kill(holder)


def test_busy_resources_are_waited_for_with_a_line_until_the_timeout(ray_session, cpus_taken, caplog):
    caplog.set_level(logging.WARNING, logger="pbt_evo.parallel.raymap")
    message, seconds = timed_refusal(workers=2, wait_timeout=4)
    assert message == ("2 of 2 Ray workers did not start within wait_timeout=4 s (each asks for 1 CPU; free on the"
                       " cluster now: 0 of 2 CPUs): raise wait_timeout, or run when the cluster has room")
    assert 4 <= seconds < 10
    assert [r.getMessage() for r in caplog.records] == [
        "waiting for 2 of 2 Ray workers to start (each asks for 1 CPU; free on the cluster now: 0 of 2 CPUs); they"
        " start when the cluster has room (giving up in 2 s, wait_timeout)"]
    ray_session.kill(cpus_taken)
    deadline = time.monotonic() + 30
    while ray_session.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ray_session.available_resources().get("CPU", 0) == 2  # the waiting workers were stopped, not started


def test_busy_resources_that_free_up_start_the_map(ray_session, cpus_taken):
    threading.Timer(2.0, lambda: ray_session.kill(cpus_taken)).start()
    t0 = time.monotonic()
    rmap = RayMap(SPEC, workers=2)
    try:
        assert time.monotonic() - t0 >= 2 and len(set(rmap.nodes())) == 1 and len(rmap.actors) == 2
    finally:
        rmap.close()
