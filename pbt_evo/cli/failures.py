"""What went wrong with a run's members, said once per generation and kept in the run folder.

- A member whose training raised (every attempt failed) keeps its previous state and counts as the worst;
  each failed attempt's traceback goes to ``<run>/errors.log`` (the maps log it on
  ``pbt_evo.parallel.failures``), not to the screen, and the generation's line counts the failures.
- A member whose fitness is not finite (NaN, a diverged network) also counts as the worst; the
  generation's line counts them too (``log.jsonl``'s ``nonfinite``).
- When no member of the first generation trained, nothing ever will: the run stops, exit 1, with one line
  naming the first error and the log; it exports nothing (an untrained network is no result).

>>> import tempfile
>>> log = FailureLog(Path(tempfile.mkdtemp()))
>>> log.note(0, TrainResult(float("nan"), failed=True, error="Traceback ...\\nZeroDivisionError: division by zero"))
>>> log.first_error
'ZeroDivisionError: division by zero'
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..handles import TrainResult

FAILURES = "pbt_evo.parallel.failures"  # the logger of each failed attempt (pbt_evo.parallel.serial, .raymap)
ERRORS = "errors.log"


class NothingTrained(RuntimeError):
    """No member of the run's first generation trained: the task fails for every genome."""


class _Traceback(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        detail = getattr(record, "traceback", "")
        return f"{self.formatTime(record)} {record.getMessage()}" + (f"\n{detail.rstrip()}" if detail else "")


class FailureLog:
    """The failures of one run, kept in ``run_dir/errors.log``; see the module docstring."""

    def __init__(self, run_dir: Path, trained_before: bool = False):
        self.path = Path(run_dir) / ERRORS
        self.trained_any = trained_before  # a resumed run has trained members
        self.first_error: str | None = None
        self._failed: dict[int, str] = {}  # position in the population -> traceback, this generation

    @contextmanager
    def kept(self) -> Iterator[None]:
        """While the block runs, each failed attempt's warning goes to ``errors.log`` instead of the screen."""
        logger = logging.getLogger(FAILURES)
        handler = logging.FileHandler(self.path, delay=True)
        handler.setFormatter(_Traceback())
        logger.addHandler(handler)
        propagate, logger.propagate = logger.propagate, False
        try:
            yield
        finally:
            logger.removeHandler(handler)
            logger.propagate = propagate
            handler.close()

    def note(self, position: int, res: Any) -> None:
        """A result as it arrives (``position`` in the population)."""
        if isinstance(res, TrainResult) and res.failed:
            error = res.error or "unknown error"
            self._failed[position] = error
            self.first_error = self.first_error or error.strip().splitlines()[-1]

    def generation(self, generation: int, trained: list[Any]) -> str:
        """Write this generation's failures to the log; the words for its line (empty: nothing went wrong).
        Raises :class:`NothingTrained` after a first generation in which no member trained."""
        failed, self._failed = self._failed, {}
        if failed:
            with open(self.path, "a") as f:
                for j, error in sorted(failed.items()):
                    f.write(f"generation {generation}, member {trained[j].id} failed every attempt:\n"
                            f"{error.rstrip()}\n\n")
        ok = [ind for j, ind in enumerate(trained) if j not in failed]
        self.trained_any = self.trained_any or bool(ok)
        if not self.trained_any:
            raise NothingTrained(f"no member trained: all {len(trained)} of generation {generation} failed (first"
                                 f" error: {self.first_error}); the tracebacks are in {self.path}; nothing was"
                                 " exported")
        nonfinite = nonfinite_members(trained)
        words = []
        if failed:
            ids = ", ".join(str(trained[j].id) for j in sorted(failed))
            words.append(f"{_members(len(failed))} failed ({ids}; the tracebacks are in {self.path}), keeping their"
                         " previous state")
        if nonfinite:
            values = ", ".join(f"{ind.id}: {ind.metrics['fitness_raw']}" for ind in nonfinite)
            words.append(f"{_members(len(nonfinite))} with a fitness that is not a finite number ({values})")
        return "; ".join(words) + ": counted as the worst" if words else ""


def _members(n: int) -> str:
    return f"{n} member{'s' if n != 1 else ''}"


def nonfinite_members(trained: list[Any]) -> list[Any]:
    """The members that trained but whose fitness is not finite (recorded as the worst).

    >>> class M: metrics = {"fitness_raw": float("nan")}
    >>> len(nonfinite_members([M()]))
    1
    """
    return [ind for ind in trained
            if not ind.metrics.get("failed") and not math.isfinite(ind.metrics.get("fitness_raw", 0.0))]
