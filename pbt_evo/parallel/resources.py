"""What Ray workers ask for against what a cluster has, decided before anything waits (no Ray here).

Each worker is an actor that holds its CPUs, GPUs and custom resources for its life, on one node, so
``workers`` identical workers can run only if the nodes have room for that many side by side:
:func:`capacity` counts them node by node. :func:`check` raises :class:`ResourceError` for a request no
amount of waiting can satisfy on the cluster as it is, with one line saying what is asked, what the
cluster has and what to set; :func:`waiting_line` words the wait for a request that fits but has not
started (busy resources, or nodes still to come), :func:`timeout_message` the end of that wait. Setting names carry the caller's prefix (the CLI's ``parallel.``).

>>> req = WorkerRequest(workers=2, cpus=1, gpus=0.5, prefix="parallel.")
>>> check(req, [{"CPU": 2.0}])
Traceback (most recent call last):
...
pbt_evo.parallel.resources.ResourceError: parallel.gpus_per_worker=0.5 x 2 workers asks for 1 GPU; the Ray cluster has 0 GPUs: set parallel.gpus_per_worker=0, or run where the cluster has GPUs
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

EPS = 1e-6  # Ray keeps resources to 1e-4; a request of 0.3 must fit 3 times into 0.9


class ResourceError(ValueError):
    """The workers cannot all start on the cluster (or did not within the wait timeout); says what to set."""


@dataclass(frozen=True)
class WorkerRequest:
    """What ``workers`` Ray workers ask for, each: CPUs, GPUs and custom resources by name."""

    workers: int
    cpus: float = 1.0
    gpus: float = 0.0
    custom: Mapping[str, float] = field(default_factory=dict)
    prefix: str = ""  # how the settings are named in messages

    def each(self) -> dict[str, float]:
        """The resources one worker holds (only those it asks for).

        >>> WorkerRequest(3, cpus=2, custom={"tpu": 1}).each()
        {'CPU': 2, 'tpu': 1}
        """
        wanted = {"CPU": self.cpus, "GPU": self.gpus, **self.custom}
        return {k: v for k, v in wanted.items() if v > 0}

    def name(self, resource: str) -> str:
        """The setting that asks for ``resource``.

        >>> WorkerRequest(1, prefix="parallel.").name("GPU")
        'parallel.gpus_per_worker'
        """
        return self.prefix + {"CPU": "cpus_per_worker", "GPU": "gpus_per_worker"}.get(resource, f"resources.{resource}")

    def describe(self) -> str:
        """One worker's request in words.

        >>> WorkerRequest(2, cpus=1, gpus=0.25).describe()
        '1 CPU, 0.25 GPU'
        """
        return ", ".join(_amount(v, k) for k, v in self.each().items())


def _amount(value: float, resource: str) -> str:
    plural = resource in ("CPU", "GPU") and (value > 1 + EPS or value < EPS)  # 0 GPUs, 0.5 GPU, 2 GPUs
    return f"{value:g} {resource}{'s' if plural else ''}"


def fits(each: Mapping[str, float], node: Mapping[str, float]) -> int:
    """How many workers asking ``each`` fit on one node with resources ``node``.

    >>> fits({"CPU": 1, "GPU": 0.5}, {"CPU": 8, "GPU": 1})
    2
    """
    counts = [math.floor(node.get(k, 0.0) / v + EPS) for k, v in each.items()]
    return min(counts) if counts else 1 << 30


def capacity(request: WorkerRequest, nodes: Sequence[Mapping[str, float]]) -> int:
    """How many of the requested workers the nodes hold side by side.

    >>> capacity(WorkerRequest(4, cpus=3), [{"CPU": 4}, {"CPU": 4}])
    2
    """
    return sum(fits(request.each(), node) for node in nodes)


def check(request: WorkerRequest, nodes: Sequence[Mapping[str, float]], advice: str = "") -> None:
    """Raise :class:`ResourceError` when ``nodes`` (each node's total resources) can never hold all the
    requested workers at once; ``advice`` ends the message (e.g. what to do on an autoscaling cluster).

    >>> check(WorkerRequest(4, cpus=1, prefix="parallel."), [{"CPU": 2.0}])
    Traceback (most recent call last):
    ...
    pbt_evo.parallel.resources.ResourceError: parallel.workers=4 x parallel.cpus_per_worker=1 asks for 4 CPUs; the Ray cluster has 2 CPUs: set parallel.workers=2 (or parallel.cpus_per_worker=0.5)
    """
    room = capacity(request, nodes)
    if room >= request.workers:
        return
    p, n, each = request.prefix, request.workers, request.each()
    totals = {k: sum(node.get(k, 0.0) for node in nodes) for k in each}
    short = [k for k in each if totals[k] + EPS < each[k] * n]
    if short:
        k = short[0]
        name, share = request.name(k), math.floor(totals[k] / n * 1000) / 1000
        asks = f"{p}workers={n} x {name}={each[k]:g}" if k == "CPU" else f"{name}={each[k]:g} x {n} workers"
        line = f"{asks} asks for {_amount(each[k] * n, k)}; the Ray cluster has {_amount(totals[k], k)}"
        if totals[k] < EPS:
            fix = f"set {name}=0, or run where the cluster has {k}s"
        elif room > 0:
            fix = f"set {p}workers={room} (or {name}={share:g})"
        else:
            fix = f"set {name}={share:g} or fewer {p}workers"
    elif room == 0:
        largest = max(nodes, key=lambda node: fits({k: 1.0 for k in each}, node), default={})
        line = (f"one worker asks for {request.describe()}; no Ray node has that much (the largest has"
                f" {', '.join(_amount(largest.get(k, 0.0), k) for k in each)})")
        fix = "ask for less per worker (" + ", ".join(request.name(k) for k in each) + ")"
    else:
        line = (f"{p}workers={n} of {request.describe()} each: the Ray nodes hold {room} side by side (a worker"
                " runs on one node)")
        fix = f"set {p}workers={room}"
    raise ResourceError(f"{line}: {fix}{advice}")


def _free_text(request: WorkerRequest, free: Mapping[str, float], total: Mapping[str, float]) -> str:
    return ", ".join(f"{free.get(k, 0.0):g} of {_amount(total.get(k, 0.0), k)}" for k in request.each())


def room_now(request: WorkerRequest, free: Mapping[str, float]) -> bool:
    """True when the cluster's free resources (all nodes together) hold every requested worker: the
    workers only have to start; False when they wait for resources others hold (or nodes to come).

    >>> room_now(WorkerRequest(2), {"CPU": 2.0}), room_now(WorkerRequest(2), {"CPU": 1.0})
    (True, False)
    """
    return fits(request.each(), free) >= request.workers


def waiting_line(request: WorkerRequest, pending: int, free: Mapping[str, float], total: Mapping[str, float],
                 left: float | None, busy: bool = True) -> str:
    """The periodic line while workers wait to start; ``left``: seconds until the wait ends (None: never);
    ``busy``: they wait for resources (else they had room and are slow to start).

    >>> waiting_line(WorkerRequest(2, prefix="parallel."), 1, {"CPU": 0.0}, {"CPU": 2.0}, None)
    'waiting for 1 of 2 Ray workers to start (each asks for 1 CPU; free on the cluster now: 0 of 2 CPUs); they start when the cluster has room (parallel.wait_timeout=null: no time limit)'
    """
    until = (f"{request.prefix}wait_timeout=null: no time limit" if left is None
             else f"giving up in {left:.0f} s, {request.prefix}wait_timeout")
    why = ("they start when the cluster has room" if busy
           else "they have their resources and are still starting (slow imports, or a busy machine)")
    return (f"waiting for {pending} of {request.workers} Ray workers to start (each asks for {request.describe()};"
            f" free on the cluster now: {_free_text(request, free, total)}); {why} ({until})")


def timeout_message(request: WorkerRequest, pending: int, free: Mapping[str, float], total: Mapping[str, float],
                    timeout: float, busy: bool = True) -> str:
    """Why the wait ended, and what to set (``busy`` as in :func:`waiting_line`).

    >>> timeout_message(WorkerRequest(2, prefix="parallel."), 1, {"CPU": 0.0}, {"CPU": 2.0}, 5)
    '1 of 2 Ray workers did not start within parallel.wait_timeout=5 s (each asks for 1 CPU; free on the cluster now: 0 of 2 CPUs): set parallel.workers=1, raise parallel.wait_timeout, or run when the cluster has room'
    """
    p, started = request.prefix, request.workers - pending
    head = (f"{pending} of {request.workers} Ray workers did not start within {p}wait_timeout={timeout:g} s (each"
            f" asks for {request.describe()}; free on the cluster now: {_free_text(request, free, total)})")
    if not busy:
        return f"{head}: they had their resources but were still starting; raise {p}wait_timeout"
    fewer = f"set {p}workers={started}, " if started > 0 else ""
    return f"{head}: {fewer}raise {p}wait_timeout, or run when the cluster has room"
