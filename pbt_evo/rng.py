"""Random streams: seeding a member's training, keeping the driver's streams, building without initialising.

pbt_evo seeds ``torch``, ``numpy.random`` and ``random`` before a member is built (so a "fresh
initialisation" is reproducible), trained and evaluated; the driver's own streams (DEAP's operators use
``random``) must not depend on whether that happened in this process or in a worker.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed torch, numpy's global generator and ``random`` (what tasks may use).

    >>> seed_everything(3); a = torch.rand(1).item(); seed_everything(3); a == torch.rand(1).item()
    True
    """
    seed = int(seed) % (2**32)
    if torch.accelerator.is_available():
        torch.manual_seed(seed)  # also seeds the accelerator's generators
    else:
        # CPU only: torch.manual_seed would also queue lazy seeding of every accelerator backend,
        # recording a Python stack each time, three times per member
        torch.default_generator.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


@contextmanager
def kept_rng() -> Iterator[None]:
    """Restore the global generators (``random``, numpy, torch) on exit.

    >>> random.seed(1)
    >>> with kept_rng():
    ...     seed_everything(5)
    >>> random.random() == (random.seed(1) or random.random())
    True
    """
    saved = random.getstate(), np.random.get_state(), torch.get_rng_state()
    try:
        yield
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
        torch.set_rng_state(saved[2])


_INITIALISERS = tuple(n for n in dir(torch.nn.init) if n.endswith("_") and not n.startswith("_"))


@contextmanager
def skip_init() -> Iterator[None]:
    """Build without running ``torch.nn.init``'s initialisers, for a member whose every weight is then
    overwritten by a stored state: the initial values are never read, and drawing them is most of a
    build (figures in docs/PERFORMANCE.md). Not thread-safe (it patches the module); workers build one
    member at a time.

    >>> with skip_init():
    ...     layer = torch.nn.Linear(2, 2)   # weights left as allocated
    >>> torch.nn.init.zeros_(layer.bias).abs().sum().item()   # restored on exit
    0.0
    """
    saved = {name: getattr(torch.nn.init, name) for name in _INITIALISERS}
    for name in saved:
        setattr(torch.nn.init, name, lambda tensor, *args, **kwargs: tensor)
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(torch.nn.init, name, fn)
