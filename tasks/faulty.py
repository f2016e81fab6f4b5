"""Digits tasks that misbehave on purpose, to see what pbt_evo does then (``tests/test_faults.py``,
``benchmarks/probe_faults.py``): every member fails, some members score NaN, the disk fills up, Ray
workers die. Each is the digits task otherwise, so a run that survives the fault equals a plain digits run.

>>> import random
>>> member = Broken(channels=4).build(Broken(channels=4).space.sample(random.Random(0)))
>>> member.train(1)
Traceback (most recent call last):
...
ZeroDivisionError: division by zero
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pbt_evo.task import Member

from .digits import DigitsTask


class Broken(DigitsTask):
    """Every member fails to train."""

    def build(self, genome: Sequence[int]) -> Member:
        member = super().build(genome)

        def train(epochs: int) -> dict[str, float]:
            raise ZeroDivisionError("division by zero")

        member.train = train
        return member


class NanFitness(DigitsTask):
    """Members whose first variable takes its first option evaluate to NaN (a diverged network)."""

    def build(self, genome: Sequence[int]) -> Member:
        member = super().build(genome)
        if genome[0] == 0:
            member.evaluate = lambda: float("nan")
        return member


class FillsDisk(DigitsTask):
    """The filesystem at ``fill`` fills up (32 kB left) as the process's 7th member is built, once: a mark
    beside it says it was done."""

    def __init__(self, fill: str, **kwargs):
        super().__init__(**kwargs)
        self.fill, self.calls = Path(fill), 0

    def build(self, genome: Sequence[int]) -> Member:
        self.calls += 1
        if self.calls == 7 and not (self.fill.parent / "filled").exists():
            (self.fill.parent / "filled").write_text("")
            st = os.statvfs(self.fill)
            fd = os.open(self.fill / "filler", os.O_CREAT | os.O_WRONLY)
            os.posix_fallocate(fd, 0, max(st.f_bavail * st.f_frsize - 32_000, 1))
            os.close(fd)
        return super().build(genome)


class KillsWorkers(DigitsTask):
    """A Ray worker's process ends (as ``kill -9`` would end it) while it trains its 3rd member, once (a
    mark in ``marks`` says it was done); with ``both``, the other workers end at the same moment, once they
    wait idle for the generation's last member: their deaths are not seen until a call goes to them.
    Workers write their pids into ``marks`` and mark themselves busy while they train."""

    def __init__(self, marks: str, both: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.marks, self.both, self.calls = Path(marks), both, 0
        if "default_worker" in sys.argv[0]:  # a Ray worker (the driver builds the task too: not it)
            (self.marks / f"pid_{os.getpid()}").write_text("")

    def build(self, genome: Sequence[int]) -> Member:
        self.calls += 1
        member, busy = super().build(genome), self.marks / f"busy_{os.getpid()}"
        train = member.train
        if self.calls == 3 and not (self.marks / "killed").exists():
            member.train = self._kill
            return member

        def marked(epochs: int) -> dict[str, float]:
            busy.write_text("")
            try:
                return train(epochs)
            finally:
                busy.unlink()

        member.train = marked
        return member

    def _kill(self, epochs: int) -> dict[str, float]:
        (self.marks / "killed").write_text("")
        idle, deadline = time.monotonic(), time.monotonic() + 120
        while self.both and time.monotonic() - idle < 1.0 and time.monotonic() < deadline:  # others idle 1 s
            time.sleep(0.02)
            if any(self.marks.glob("busy_*")):
                idle = time.monotonic()
        for other in self.marks.glob("pid_*") if self.both else []:
            if int(other.name[4:]) != os.getpid():
                try:
                    os.kill(int(other.name[4:]), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        os._exit(9)
