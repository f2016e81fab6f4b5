"""A-vs-B on a noisy machine: interleaved repeats, and the median of the *paired* ratios.

The machine these benchmarks run on is shared, and its load changes within a minute. Dividing the
median of one series by the median of the other compares repeats made under different loads (one run
of ``rl_updates.py --repeats 5`` printed pairs with ratios 1.00, 1.17, 1.18 and 1.13 and ended with
0.865). Measuring A and B back to back, alternating which goes first, and taking the median of each
pair's ratio cancels what the two measurements of a pair share.

>>> import itertools
>>> clock = itertools.count(1)
>>> rounds = interleave({"a": lambda: next(clock), "b": lambda: next(clock)}, repeats=3)
>>> rounds                       # round 2 runs b first
[{'a': 1, 'b': 2}, {'a': 4, 'b': 3}, {'a': 5, 'b': 6}]
>>> paired_ratio(rounds, "b", "a")  # median of 2/1, 3/4, 6/5
1.2
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping
from typing import Any


def interleave(runs: Mapping[str, Callable[[], Any]], repeats: int,
               report: Callable[[int, dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """``repeats`` rounds, each calling every run once, in the given order in even rounds and reversed in
    odd ones (so that neither always goes first); ``report(round, results)`` after each round."""
    names = list(runs)
    rounds = []
    for r in range(repeats):
        got = {name: runs[name]() for name in (names if r % 2 == 0 else names[::-1])}
        rounds.append({name: got[name] for name in names})
        if report is not None:
            report(r, rounds[-1])
    return rounds


def paired_ratio(rounds: list[dict[str, Any]], num: str, den: str,
                 value: Callable[[Any], float] = float) -> float:
    """The median over rounds of ``value(round[num]) / value(round[den])``."""
    return statistics.median(value(r[num]) / value(r[den]) for r in rounds)


def spread(rounds: list[dict[str, Any]], num: str, den: str, value: Callable[[Any], float] = float) -> str:
    """Each round's ratio, for the line before the median: ``"1.000, 1.170, 1.180"``."""
    return ", ".join(f"{value(r[num]) / value(r[den]):.3f}" for r in rounds)
