"""A dashboard server as a real process, and its callbacks called over HTTP as a browser calls them.

For the tests and ``benchmarks/dashboard.py``: :class:`Server` starts ``python -m pbt_evo.dashboard``
on a free port of 127.0.0.1 and waits until it answers; :meth:`Server.call` posts one callback's
request to ``/_dash-update-component`` (Dash's own protocol) and returns its response and wall time;
:func:`time_pages` times the run page's data callbacks (first visit, unchanged poll, after an append).

>>> Server.output_spec([("run-head", "children"), ("run-version", "data")])
'..run-head.children...run-version.data..'
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .app import RUN_FIGURES


def free_port() -> int:
    """A port of 127.0.0.1 nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``with Server(["runs"]) as server:`` a dashboard process serving those folders at ``server.url``."""

    def __init__(self, folders: Sequence[str | Path], *args: str, cwd: str | Path | None = None,
                 timeout: float = 120.0):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        root = Path(__file__).resolve().parents[3]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])))
        self.command = [sys.executable, "-m", "pbt_evo.dashboard", *map(str, folders), "--port", str(self.port), *args]
        self.cwd, self.env, self.timeout = cwd, env, timeout
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "Server":
        self.proc = subprocess.Popen(self.command, cwd=self.cwd, env=self.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the dashboard exited ({self.proc.returncode}): {self.proc.stdout.read()}")
            try:
                with urllib.request.urlopen(self.url + "/", timeout=5) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.2)
        self.__exit__()
        raise RuntimeError(f"the dashboard did not answer at {self.url} within {self.timeout} s")

    def __exit__(self, *exc: Any) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stdout is not None:
            self.output = self.proc.stdout.read()
            self.proc.stdout.close()

    @staticmethod
    def output_spec(outputs: Sequence[tuple[str, str]]) -> str:
        ids = [f"{i}.{p}" for i, p in outputs]
        return ids[0] if len(ids) == 1 else ".." + "...".join(ids) + ".."

    def call(self, outputs: Sequence[tuple[str, str]], inputs: Sequence[tuple[str, str, Any]],
             state: Sequence[tuple[str, str, Any]] = ()) -> tuple[dict[str, Any], float]:
        """One callback, as the browser posts it: ``({id: {property: value}}, seconds)`` (``{}`` for no update)."""
        body = {"output": self.output_spec(outputs),
                "outputs": [{"id": i, "property": p} for i, p in outputs] if len(outputs) > 1
                else {"id": outputs[0][0], "property": outputs[0][1]},
                "inputs": [{"id": i, "property": p, "value": v} for i, p, v in inputs],
                "changedPropIds": [f"{i}.{p}" for i, p, _ in inputs[:1]],
                "state": [{"id": i, "property": p, "value": v} for i, p, v in state]}
        request = urllib.request.Request(self.url + "/_dash-update-component", json.dumps(body).encode(),
                                         {"Content-Type": "application/json"})
        t0 = time.perf_counter()
        with urllib.request.urlopen(request, timeout=300) as r:
            data = r.read()
            status = r.status
        seconds = time.perf_counter() - t0
        return (json.loads(data)["response"] if status == 200 and data else {}), seconds

    # -- the run page's callbacks -----------------------------------------------------------------------
    def run_head(self, key: str, version: str | None = None) -> tuple[dict, float]:
        return self.call([("run-head", "children"), ("run-version", "data")], [("run-tick", "n_intervals", None)],
                         [("run-key", "data", key), ("run-version", "data", version)])

    def run_figures(self, key: str, version: str) -> tuple[dict, float]:
        outputs = [(f, "figure") for f in RUN_FIGURES] + [("failures", "data"), ("failures-note", "children"),
                                                           ("table-gen", "options")]
        return self.call(outputs, [("run-version", "data", version)], [("run-key", "data", key)])

    def population(self, key: str, version: str, gen: Any = "latest") -> tuple[dict, float]:
        return self.call([("population", "columns"), ("population", "data")],
                         [("run-version", "data", version), ("table-gen", "value", gen)], [("run-key", "data", key)])

    def tree_click(self, key: str, member: int) -> tuple[dict, float]:
        return self.call([("tree-details", "children")], [("fig-tree", "clickData", {"points": [{"customdata": member}]})],
                         [("run-key", "data", key)])

    def route(self, pathname: str) -> tuple[dict, float]:
        return self.call([("content", "children")], [("url", "pathname", pathname)])


def page(server: Server, key: str, version: str | None = None) -> tuple[str | None, float, dict]:
    """The run page's data as a browser loads it: the head (and version), then figures and table at once;
    returns the version, the wall time and the figures' response."""
    t0 = time.perf_counter()
    head, _ = server.run_head(key, version)
    new = head.get("run-version", {}).get("data", version) if head else version
    with ThreadPoolExecutor(2) as pool:
        figs = pool.submit(server.run_figures, key, new)
        table = pool.submit(server.population, key, new)
        response = figs.result()[0]
        table.result()
    return new, time.perf_counter() - t0, response


def cpu_seconds(pid: int) -> float:
    """A process's CPU time so far (user + system, all its threads), from ``/proc`` (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def time_pages(server: Server, key: str, append: Callable[[], None], member: int | None = None) -> dict[str, float]:
    """Seconds the server takes to answer the run page's callbacks: the first visit (wall time, and the
    server's CPU time for it: what it takes on an idle core), an unchanged poll (the head only), after
    ``append()`` wrote a generation, a family-tree click, and the list of runs. Start the server with
    ``--warm 0`` for a first visit that parses everything."""
    out: dict[str, float] = {}
    cpu = cpu_seconds(server.proc.pid)
    version, out["run_page_cold_s"], response = page(server, key)
    out["run_page_cold_server_cpu_s"] = cpu_seconds(server.proc.pid) - cpu
    t0 = time.perf_counter()
    server.run_head(key, version)
    out["run_poll_unchanged_s"] = time.perf_counter() - t0
    _, out["run_page_warm_s"], _ = page(server, key)
    append()
    cpu = cpu_seconds(server.proc.pid)
    version, out["run_page_append_s"], response = page(server, key, version)
    out["run_page_append_server_cpu_s"] = cpu_seconds(server.proc.pid) - cpu
    tree = response.get("fig-tree", {}).get("figure", {})
    ids = [c for trace in tree.get("data", []) if trace.get("name", "").startswith("member ")
           for c in trace.get("customdata", [])]
    _, out["tree_click_s"] = server.tree_click(key, member if member is not None else int(ids[0]))
    _, out["run_list_s"] = server.call([("run-list", "data"), ("sweep-list", "children"), ("list-note", "children")],
                                       [("list-tick", "n_intervals", None)])
    return out
