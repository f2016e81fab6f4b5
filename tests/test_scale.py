"""Scale (issue 20): a 64-member run on a simulated 4-node cluster, and a population whose states are
several times Ray's object-store memory; each finishes with the serial map's results, member for member.

Both runs are W1 (``tasks/w1.py``: children are exact copies of the best, each member's training a
function of its state, seed, age and slot only) and run in a subprocess with a Ray instance of their
own (a ``Cluster`` head, or an 80 MB object store), which must not meet the test session's ``ray.init``.
The serial run is made in the same subprocess, one torch thread like the workers.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARK = "SCALE "
# 0.3 MB states: above Ray's 100 KB inlining threshold, so they live in the object store of the node that
# trained them and children's parents are pulled across nodes
CLUSTER_TASK = {"hidden": 128, "depth": 2, "steps": 2}
# 24.6 MB states (model + Adam), 12 members: 296 MB of states against an 80 MB object store (Ray's minimum
# is 75 MiB), about 3.7 times
PRESSURE_TASK = {"hidden": 1400, "depth": 2, "steps": 1}
STORE_BYTES = 80 * 2**20


def search(pmap, n: int, generations: int) -> dict:
    from tasks.w1 import outcome, run_w1

    return outcome(*run_w1(pmap, n, generations))


def serial(task_args: dict, n: int, generations: int) -> dict:
    import torch

    import pbt_evo
    from tasks.w1 import W1Task

    torch.set_num_threads(1)  # as each worker: the same arithmetic
    smap = pbt_evo.SerialMap(W1Task(**task_args))
    try:
        return search(smap, n, generations)
    finally:
        smap.close()


def private_temp_dir() -> str:
    """A temp dir for one Ray instance: short (Ray's socket paths live under it) and private (a head
    node records its address there, and any `ray.init()` on this machine using /tmp/ray would join it)."""
    import tempfile

    return tempfile.mkdtemp(prefix="pbts", dir="/tmp")


def four_nodes() -> dict:
    """Runs in the subprocess: 4 one-CPU nodes, 4 one-CPU workers (one per node), 64 members, 2 generations."""
    import shutil

    import ray
    from ray.cluster_utils import Cluster

    import pbt_evo

    temp_dir = private_temp_dir()
    cluster = Cluster(initialize_head=True,
                      head_node_args={"num_cpus": 1, "include_dashboard": False, "temp_dir": temp_dir})
    for _ in range(3):
        cluster.add_node(num_cpus=1, temp_dir=temp_dir)
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        rmap = pbt_evo.RayMap(pbt_evo.TaskSpec("tasks.w1:W1Task", CLUSTER_TASK), workers=4)
        out = {"nodes": len([n for n in ray.nodes() if n["Alive"]]), "worker_nodes": len(set(rmap.nodes())),
               "ray": search(rmap, 64, 2)}
        rmap.close()
    finally:
        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)
    out["serial"] = serial(CLUSTER_TASK, 64, 2)
    return out


def spilled_bytes() -> int:
    """Bytes Ray spilled to disk so far (its memory summary's "Spilled ... MiB" line)."""
    import ray
    from ray._private.internal_api import memory_summary

    summary = memory_summary(ray.get_runtime_context().gcs_address, stats_only=True)
    found = re.search(r"Spilled (\d+) MiB", summary)
    return int(found.group(1)) * 2**20 if found else 0


def under_pressure() -> dict:
    """Runs in the subprocess: 12 members of 24.6 MB states, 2 workers, an 80 MB object store, 2 generations."""
    import shutil

    import ray

    import pbt_evo
    temp_dir = private_temp_dir()
    ray.init(address="local", num_cpus=2, object_store_memory=STORE_BYTES, include_dashboard=False,
             log_to_driver=False, _temp_dir=temp_dir)
    try:
        rmap = pbt_evo.RayMap(pbt_evo.TaskSpec("tasks.w1:W1Task", PRESSURE_TASK), workers=2)
        out = {"ray": search(rmap, 12, 2), "spilled": spilled_bytes()}
        rmap.close()
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)
    out["serial"] = serial(PRESSURE_TASK, 12, 2)
    return out


def in_subprocess(name: str, tmp_path: Path) -> dict:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, __file__, name], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=240, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-5000:]
    return json.loads(lines[-1][len(MARK):])


def test_a_64_member_run_on_four_nodes_equals_the_serial_run(tmp_path):
    out = in_subprocess("four_nodes", tmp_path)
    assert out["nodes"] == 4 and out["worker_nodes"] == 4  # one worker on each node
    assert out["ray"] == out["serial"]
    assert out["ray"]["log"] == [[1, 64, 0], [2, 64, 0]]
    assert sum(bool(parents) for *_, parents in out["ray"]["members"]) == 16  # the children made after gen 1


def test_states_several_times_the_object_store_spill_and_equal_the_serial_run(tmp_path):
    out = in_subprocess("under_pressure", tmp_path)
    assert out["ray"]["state_bytes"] == 24_645_636  # model + Adam (two moments, step counters), 2.05 M parameters
    assert 12 * out["ray"]["state_bytes"] > 3.5 * STORE_BYTES
    assert out["spilled"] > 0  # Ray spilled states to disk
    assert out["ray"] == out["serial"]
    assert out["ray"]["log"] == [[1, 12, 0], [2, 12, 0]]


if __name__ == "__main__":
    print(MARK + json.dumps({"four_nodes": four_nodes, "under_pressure": under_pressure}[sys.argv[1]]()), flush=True)
