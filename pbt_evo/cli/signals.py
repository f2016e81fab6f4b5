"""SIGTERM handled like SIGINT, and a second signal that stops at once.

``kill``, ``timeout`` and batch schedulers send SIGTERM before SIGKILL. Without this the Python default
ends the process at once, and after ``ray.init`` it is worse: Ray's driver installs its own handlers
(a Python one that kills the local Ray processes and exits 1, then the C++ core worker's failure handler,
which prints a stack dump and aborts, exit 134). Here the first SIGTERM raises :class:`Terminated` (a
``KeyboardInterrupt``, so every ``except KeyboardInterrupt`` treats both alike) in the main thread: the
run stops as after Ctrl-C, its last complete checkpoint kept, its workers closed. A second SIGTERM or
SIGINT while that happens ends the process at once.

Commands run inside ``with handled():`` and call :func:`reinstall` after ``ray.init``, which replaces
the handlers.

>>> with handled():
...     signal.getsignal(signal.SIGTERM) is _handle
True
>>> signal.getsignal(signal.SIGTERM) is _handle
False
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

SIGNALS = (signal.SIGTERM, signal.SIGINT)
_state = {"installed": False, "received": 0, "defer": False, "pending": 0}
STOPPED_AT_ONCE = b"\nsecond signal: stopped at once; a run continues from its last complete checkpoint, if it has" \
                  b" one: run the same command again\n"


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM (Ray's blocking calls re-raise it as a plain ``KeyboardInterrupt``:
    :func:`report` tells the two apart by the signal received)."""


def report(advice: str, stream: TextIO | None = None) -> int:
    """Say why the command stopped (and ``advice``), on stderr by default; returns the exit code: 143 (128 + 15, as
    the shell reports SIGTERM) after SIGTERM, 130 after Ctrl-C. Call it inside :func:`handled`.

    >>> report("run the same command again to continue", stream=sys.stdout)
    <BLANKLINE>
    interrupted; run the same command again to continue
    130
    """
    terminated = _state["received"] == signal.SIGTERM
    print(f"\n{'terminated (SIGTERM)' if terminated else 'interrupted'}; {advice}", file=stream or sys.stderr)
    return 128 + (signal.SIGTERM if terminated else signal.SIGINT)


def _handle(signum: int, frame: Any) -> None:
    if _state["defer"] and not _state["pending"]:
        _state["pending"] = signum
        return
    if _state["received"]:
        os.write(2, STOPPED_AT_ONCE)
        os._exit(128 + _state["received"])
    _state["received"] = signum
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


@contextmanager
def handled() -> Iterator[None]:
    """Handle SIGTERM and SIGINT as described above while the block runs (main thread only; elsewhere
    nothing changes); the previous handlers come back after it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    _state.update(installed=True, received=0)
    reinstall()
    try:
        yield
    finally:
        _state.update(installed=False, received=0)
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)  # None: set outside Python


@contextmanager
def deferred() -> Iterator[None]:
    """Inside :func:`handled`: a stop signal received while the block runs (a long import, a checkpoint
    being written: what an exception would leave half done) is raised when the block ends; a second one at
    once. Outside :func:`handled` nothing changes."""
    _state["defer"] = True
    try:
        yield
    finally:
        _state["defer"] = False
        pending, _state["pending"] = _state["pending"], 0
    if pending:
        _state["received"] = 0
        _handle(pending, None)


def reinstall() -> None:
    """Install again inside :func:`handled` (``ray.init`` replaces the handlers); elsewhere nothing."""
    if _state["installed"] and threading.current_thread() is threading.main_thread():
        for s in SIGNALS:
            signal.signal(s, _handle)
