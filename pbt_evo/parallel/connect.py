"""Starting or joining Ray with a bound and a line, and nothing of Ray's left behind when that is interrupted.

``ray.init(address=...)`` for a cluster that is not there waits for minutes (it retries the connection
20 times, each for up to a minute, printing only Ray's own warnings), and a stop signal that arrives
while a local Ray instance starts leaves its processes running. So before joining a cluster:

1. a ``host:port`` address is tried with one TCP connection (:data:`TCP_TIMEOUT` s): nothing listening
   is :class:`ClusterUnreachable` at once;
2. a separate process joins the cluster and leaves it again (what answers at the address may not be Ray,
   or ``auto`` may name a stale cluster): if it has not within ``timeout`` seconds
   (:data:`CONNECT_TIMEOUT`), it is stopped and :class:`ClusterUnreachable` says so, with Ray's last line.

Starting a local instance logs a line when it takes longer than :data:`SLOW_START` s (a busy machine).
If the start fails or is interrupted, the processes it had started are stopped. ``ray.init`` installs
its own SIGTERM handlers (they end the process with exit code 15 or 1, and Ray's C++ core's aborts it
with a stack dump); a caller who has Python handlers of its own (the command line's stop a run as Ctrl-C
does, :mod:`pbt_evo.cli.signals`) gets them back, and a SIGTERM that Ray's handler took while Ray
started is handed to the caller's.

>>> tcp_target("10.0.0.5:6379"), tcp_target("ray://head:10001"), tcp_target("auto")
(('10.0.0.5', 6379), ('head', 10001), None)
"""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

from .resources import ResourceError

log = logging.getLogger(__name__)
CONNECT_TIMEOUT = 30.0  # seconds for a separate process to join the cluster
TCP_TIMEOUT = 5.0
SLOW_START = 30.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# what ray.init's own SIGTERM handlers end the process with while it starts: sys.exit(15), or, once the local
# node runs, its processes stopped and sys.exit(1)
RAY_SIGTERM_EXITS = (signal.SIGTERM, 1)
_PROBE = ("import logging, sys, ray; ray.init(address=sys.argv[1], include_dashboard=False,"
          " logging_level=logging.ERROR, log_to_driver=False); ray.shutdown()")


class ClusterUnreachable(ResourceError):
    """No Ray cluster answers at the configured address (within the time allowed); says what to check."""


def tcp_target(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of an address that names them (``host:port``, ``ray://host:port``), else None."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    return (host.strip("[]"), int(port)) if sep and host and port.isdigit() else None


def init_ray(address: str | None, timeout: float = CONNECT_TIMEOUT, key: str = "address", **kwargs: Any) -> bool:
    """``ray.init`` of a Ray instance of this process's own (``address`` None or ``"local"``) or of the
    cluster at ``address``, bounded as the module docstring says (``key`` names the setting in messages);
    returns False when Ray was already initialised (nothing done).

    >>> # init_ray(None, include_dashboard=False)  (a Ray instance of this process's own)
    """
    import ray

    if ray.is_initialized():
        return False
    local = address in (None, "local")
    if not local:
        check_address(address, timeout, key)
    before = _descendants()
    handlers = _own_handlers()
    done = threading.Event()
    if local:
        threading.Thread(target=_slow_start, args=(done,), daemon=True).start()
    try:
        ray.init(address=address or "local", **kwargs)
    except BaseException as exc:
        _stop_started(before)
        if isinstance(exc, SystemExit) and exc.code in RAY_SIGTERM_EXITS and signal.SIGTERM in handlers:
            handlers[signal.SIGTERM](signal.SIGTERM, None)  # the SIGTERM Ray's handler took: the caller's now
        raise
    finally:
        done.set()
        for sig, handler in handlers.items():  # ray.init replaced them; the caller's own come back
            signal.signal(sig, handler)
    return True


def _own_handlers() -> dict[int, Any]:
    """The caller's Python handlers of SIGTERM and SIGINT, which ``ray.init`` replaces (a stop signal
    would then end the process with exit code 15, whatever the caller arranged); main thread only."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    own = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    return {s: h for s, h in own.items() if callable(h) and h is not signal.default_int_handler}


def check_address(address: str, timeout: float = CONNECT_TIMEOUT, key: str = "address") -> None:
    """:class:`ClusterUnreachable` unless a Ray cluster answers at ``address`` within ``timeout`` seconds (a
    TCP connection to a ``host:port``, then a separate process that joins and leaves).

    >>> check_address("127.0.0.1:1", timeout=5)
    Traceback (most recent call last):
    ...
    pbt_evo.parallel.connect.ClusterUnreachable: address=127.0.0.1:1: nothing answers at 127.0.0.1:1 (Connection refused): start the cluster there (ray start --head), or set address to its address (null: a Ray instance of the run's own)
    """
    fix = (f"start the cluster there (ray start --head), or set {key} to its address (null: a Ray instance of the"
           " run's own)")
    target = tcp_target(address)
    if target is not None:
        try:
            socket.create_connection(target, timeout=min(TCP_TIMEOUT, timeout)).close()
        except OSError as exc:
            why = exc.strerror or type(exc).__name__
            raise ClusterUnreachable(f"{key}={address}: nothing answers at {target[0]}:{target[1]} ({why}):"
                                     f" {fix}") from None
    try:
        proc = subprocess.run([sys.executable, "-c", _PROBE, address], capture_output=True, text=True,
                              timeout=timeout, env={**os.environ,
                                                    "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "disabled")})
    except subprocess.TimeoutExpired:
        raise ClusterUnreachable(f"{key}={address}: no Ray cluster answered there within {timeout:g} s:"
                                 f" {fix}") from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
        why = lines[-1] if lines else f"exit code {proc.returncode}"
        raise ClusterUnreachable(f"{key}={address}: joining the Ray cluster failed ({why}): {fix}")


def _slow_start(done: threading.Event) -> None:
    if not done.wait(SLOW_START):
        log.warning("starting Ray takes longer than %g s (a busy machine?); still waiting", SLOW_START)


def session_processes(driver: int) -> list[int]:
    """The processes of the Ray session that the driver process ``driver`` started locally, wherever they
    are now (their command lines name its session folder, ``session_<date>_<driver pid>``; Linux's /proc).

    >>> session_processes(0)
    []
    """
    found = []
    for d in filter(str.isdigit, os.listdir("/proc") if os.path.isdir("/proc") else []):
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if re.search(rf"session_[\d_-]+_{driver}\b", cmd):
            found.append(int(d))
    return found


def _descendants() -> set[int]:
    """The processes this one started, directly or not (Linux's /proc; elsewhere none are known)."""
    children: dict[int, list[int]] = {}
    try:
        pids = [int(d) for d in os.listdir("/proc") if d.isdigit()]
    except OSError:
        return set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), [os.getpid()]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _stop_started(before: set[int]) -> None:
    """Stop the processes this process started since ``before`` (an interrupted Ray start's): SIGTERM,
    then SIGKILL for those still there after 3 s."""
    try:
        import ray

        ray.shutdown()
    except Exception:  # an interrupted start may leave Ray half set up; what it started is stopped below
        pass
    started = _descendants() - before
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in started:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.monotonic() + 3
        while started and time.monotonic() < deadline:
            started = {pid for pid in started if _alive(pid)}
            time.sleep(0.05)
        if not started:
            return


def _alive(pid: int) -> bool:
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:  # a child of this process: reaped
            return False
    except ChildProcessError:
        pass  # not a direct child
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
