"""Atomic checkpoints of a run: the population ready for its next generation, with every state it needs.

Layout: ``<run>/checkpoints/gen_00005/{loop.pkl, states/*.pkl}`` plus ``<run>/checkpoints/LATEST``.
A checkpoint is written into a temporary folder, flushed, renamed into place, and only then is
``LATEST`` replaced (``os.replace`` is atomic): a crash at any point leaves the previous checkpoint
complete and pointed to. Older checkpoints beyond ``keep`` are deleted after that.

States are pulled from wherever they live (Ray object store or memory) one at
a time, so the driver holds at most one state while writing.
"""

from __future__ import annotations

import os
import pickle
import random
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..handles import FreshState, MixedState, StoredState, WeightHandle
from ..individual import Individual

VERSION = 1


def _fsync_write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _write_state(path: Path, state: Mapping[str, Any]) -> None:
    _fsync_write(path, pickle.dumps(dict(state), protocol=5))


def _store(handle: WeightHandle | None, folder: Path, written: dict[int, str]) -> WeightHandle | None:
    """The handle with stored states replaced by file names relative to the checkpoint."""
    if handle is None or isinstance(handle, FreshState):
        return handle
    if isinstance(handle, MixedState):
        return replace(handle, base=_store(handle.base, folder, written),
                       donor=_store(handle.donor, folder, written))
    if isinstance(handle, StoredState):
        key = id(handle)
        if key not in written:
            name = f"states/{len(written):05d}.pkl"
            _write_state(folder / name, handle.load())
            written[key] = name
        return StoredState(written[key])
    raise TypeError(f"cannot checkpoint a handle of type {type(handle).__name__}")


def _with_stored(ind: Individual, folder: Path, written: dict[int, str]) -> Individual:
    out = ind.__deepcopy__({})
    out.handle = _store(ind.handle, folder, written)
    return out


def save(run_dir: str | Path, generation: int, population: Iterable[Individual], halloffame: Iterable[Individual],
         payload: Mapping[str, Any], keep: int = 1) -> Path:
    """Write the checkpoint of ``generation`` atomically; returns its folder.

    ``payload`` holds the loop's other state (epochs, next_id, logbook, ...); the driver's random
    streams are added here.
    """
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    name = f"gen_{generation:05d}"
    tmp = root / f".tmp-{name}"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "states").mkdir(parents=True)
    written: dict[int, str] = {}
    data = dict(payload)
    data.update(
        version=VERSION, generation=generation,
        population=[_with_stored(ind, tmp, written) for ind in population],
        halloffame=[_with_stored(ind, tmp, written) for ind in halloffame],
        random=random.getstate(), numpy=np.random.get_state())
    _fsync_write(tmp / "loop.pkl", pickle.dumps(data, protocol=5))
    final = root / name
    shutil.rmtree(final, ignore_errors=True)
    os.rename(tmp, final)
    _fsync_write(root / "LATEST.tmp", name.encode())
    os.replace(root / "LATEST.tmp", root / "LATEST")
    complete = sorted(p for p in root.glob("gen_*") if p.is_dir())
    for old in complete[:-keep] if keep > 0 else []:
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


def latest(run_dir: str | Path) -> Path | None:
    """The folder of the last complete checkpoint, or None."""
    pointer = Path(run_dir) / "checkpoints" / "LATEST"
    if not pointer.is_file():
        return None
    folder = pointer.parent / pointer.read_text().strip()
    return folder if (folder / "loop.pkl").is_file() else None


def load(folder: str | Path, put=lambda state: state) -> dict[str, Any]:
    """Read a checkpoint; ``put`` places each state (``ray.put`` for Ray runs; in memory by default).

    States shared by several individuals are loaded once and shared again.
    """
    folder = Path(folder)
    with open(folder / "loop.pkl", "rb") as f:
        data = pickle.load(f)
    if data.get("version") != VERSION:
        raise ValueError(f"{folder}: checkpoint version {data.get('version')} is not supported (expected {VERSION})")
    cache: dict[str, StoredState] = {}

    def handle_of(h):
        if isinstance(h, MixedState):
            return replace(h, base=handle_of(h.base), donor=handle_of(h.donor))
        if isinstance(h, StoredState) and isinstance(h.ref, str):
            if h.ref not in cache:
                with open(folder / h.ref, "rb") as f:
                    cache[h.ref] = StoredState(put(pickle.load(f)))
            return cache[h.ref]
        return h

    for key in ("population", "halloffame"):
        for ind in data[key]:
            ind.handle = handle_of(ind.handle)
    return data
