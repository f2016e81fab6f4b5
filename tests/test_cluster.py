"""Multi-node without a shared filesystem: a digits search on a two-node ``ray.cluster_utils.Cluster``.

Each node has one CPU, so the two one-CPU workers necessarily run on different nodes, each with its own
object store. The search runs in a subprocess: a ``Cluster`` starts its own head node and must not meet
the test session's ``ray.init`` (the ``ray_session`` fixture), whatever the order the tests run in.

Checked: some child is made from a parent trained on the other node (its base or donor state lives in
the other node's object store); every state travels as an ``ObjectRef`` (never a file path); after the
child trained, the parent's state has been copied to the child's node by Ray's object manager; and the
search ran to the end with finite fitness.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARK = "CLUSTER "


def run_search() -> list[dict]:
    """Runs in the subprocess: start two nodes, search, report what trained where."""
    import shutil
    import tempfile

    import ray
    from ray.cluster_utils import Cluster

    # a private temp dir: a head node records its address in <temp dir>/ray_current_cluster, and any
    # `ray.init()` on this machine using the default /tmp/ray would otherwise join this test's cluster
    temp_dir = tempfile.mkdtemp(prefix="pbtc", dir="/tmp")  # short: Ray's socket paths live under it
    cluster = Cluster(initialize_head=True,
                      head_node_args={"num_cpus": 1, "include_dashboard": False, "temp_dir": temp_dir})
    cluster.add_node(num_cpus=1, temp_dir=temp_dir)
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        return search()
    finally:
        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


def search() -> dict:
    import random
    from pathlib import PurePath

    import ray
    from deap import base

    import pbt_evo
    from pbt_evo.handles import MixedState, StoredState
    from tasks.digits import make_space

    # 32 channels: states of 0.1-1 MB, above Ray's 100 KB inlining threshold, so they live in the
    # object store of the node that trained them (smaller ones travel inline through the owner)
    rmap = pbt_evo.RayMap(pbt_evo.TaskSpec("tasks.digits:DigitsTask", {"channels": 32}), workers=2)
    worker_nodes = rmap.nodes()
    tb = base.Toolbox()
    tb.register("population", pbt_evo.init_population, make_space(), 4)
    tb.register("train", pbt_evo.train_member)
    tb.register("select", pbt_evo.sel_truncation, tau=0.5)
    tb.register("survivors", pbt_evo.sure_survivors, tau=0.5)
    tb.register("pair", pbt_evo.pair_random)
    tb.register("mate", pbt_evo.cx_mix, p=0.5)
    tb.register("mutate", pbt_evo.mut_none)
    tb.map = rmap

    state_node: dict[int, str] = {}   # member id -> node holding its current trained state
    state_ref: dict[int, object] = {}  # member id -> that state's ObjectRef
    made: list[dict] = []              # children: parents' nodes and refs at the time they were made
    crossings: list[dict] = []
    paths: list[str] = []

    def hook(g: pbt_evo.Generation) -> None:
        for ind in g.trained:
            assert rmap.worker_of(ind.handle) in (0, 1)
            node = worker_nodes[rmap.worker_of(ind.handle)]
            for rec in made:
                if rec["child"] == ind.id and "trained_on" not in rec:
                    rec["trained_on"] = node
                    if any(n != node for n in rec["parent_nodes"]):
                        crossings.append(rec)
            state_node[ind.id], state_ref[ind.id] = node, ind.handle.ref
        for _, child in g.replaced:
            h = child.handle
            assert isinstance(h, MixedState)
            for s in (h.base, h.steps[0].donor):  # the base parent's state, and the donor's (Algorithm 2)
                assert isinstance(s, StoredState)
                if isinstance(s.ref, (str, PurePath)):
                    paths.append(str(s.ref))
                assert isinstance(s.ref, ray.ObjectRef)
            made.append({"child": child.id, "parents": list(child.parents),
                         "parent_nodes": [state_node[p] for p in child.parents],
                         "parent_refs": [state_ref[p] for p in child.parents]})

    random.seed(0)
    pop, log = pbt_evo.ea_pbt(tb.population(), tb, e_total=4, e_step=1, hook=hook)
    assert all(isinstance(ind.handle, StoredState) and isinstance(ind.handle.ref, ray.ObjectRef) for ind in pop)
    # a parent's state is in the object store of the node that trained it, and was pulled from there by
    # the object manager when the child was materialised on the child's node
    copied = []
    for rec in crossings:
        for ref, node in zip(rec["parent_refs"], rec["parent_nodes"]):
            if node != rec["trained_on"]:
                locs = ray.experimental.get_object_locations([ref])[ref]
                if locs["node_ids"]:  # in plasma, not inlined
                    copied.append(rec["trained_on"] in locs["node_ids"] and node in locs["node_ids"])
    out = {
        "nodes": sorted({n["NodeID"] for n in ray.nodes() if n["Alive"]}),
        "worker_nodes": worker_nodes,
        "children": len(made),
        "crossings": [{k: v for k, v in rec.items() if k != "parent_refs"} for rec in crossings],
        "copied_to_child_node": copied,
        "paths": paths,
        "fitness": [ind.fitness.values[0] for ind in pop],
    }
    rmap.close()
    return out


def test_children_from_parents_trained_on_the_other_node(tmp_path):
    env = {**os.environ, "RAY_AUTH_MODE": "disabled",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, __file__], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=240)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-5000:]
    check(json.loads(lines[-1][len(MARK):]))


def check(out: dict) -> None:
    assert len(out["nodes"]) == 2
    assert sorted(out["worker_nodes"]) == out["nodes"]  # one worker per node
    assert out["children"] == 6  # 2 children after each of the first 3 generations
    assert out["crossings"], "no child was made from a parent trained on the other node"
    assert out["copied_to_child_node"] and all(out["copied_to_child_node"])
    assert out["paths"] == []
    assert all(0 < f <= 1 for f in out["fitness"])


if __name__ == "__main__":
    print(MARK + json.dumps(run_search()), flush=True)
