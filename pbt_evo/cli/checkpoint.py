"""Verified checkpoints of a run: the population ready for its next generation, with every state it needs.

Layout: ``<run>/checkpoints/gen_00005/`` holds ``loop.json`` (generation, epochs, next id, the population
and hall of fame as records (:mod:`pbt_evo.cli.records`), the logbook, the driver's random streams),
``states/00000.safetensors, ...`` (one trained state each, :mod:`pbt_evo.statefile`) and
``MANIFEST.json`` (each file's size and sha256, written last); ``<run>/checkpoints/LATEST`` names the
newest. Nothing in a checkpoint is a pickle: reading one executes no code.

Writing goes into a temporary folder, each file flushed to disk, the manifest last; the folder is renamed
into place and only then is ``LATEST`` replaced (``os.replace`` is atomic), so a crash at any point
leaves the previous checkpoint complete. Older checkpoints beyond ``keep`` are deleted after that.
States are pulled from wherever they live (Ray object store or memory) one at a time and written by a
few threads at once (their fsyncs commit together), so the driver holds at most a few states, and at
most ``WRITE_WINDOW_BYTES`` of them besides one, while writing. A failed write (a full disk) raises :class:`WriteError`, whose
message names the file, the bytes needed and free, and what is checkpointed.

Reading (:func:`load_latest`) takes the newest checkpoint whose every file matches its manifest; each
file is checked just before it is used, and a damaged or incomplete checkpoint is reported and the one
before it used.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import re
import shutil
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import plain, statefile
from ..handles import StoredState
from ..individual import Individual
from . import records, signals

FORMAT = "pbt_evo.checkpoint/2"
MANIFEST = "MANIFEST.json"
_FOLDER = re.compile(r"gen_(\d{5,})$")
_STATE = re.compile(r"states/\d{5,}\.safetensors$")


class CheckpointError(ValueError):
    """No usable checkpoint (every one damaged, or in the old pickle format); the message says what to do."""


class Damaged(CheckpointError):
    """One checkpoint does not match its manifest (truncated, altered, incomplete)."""


class WriteError(RuntimeError):
    """Writing a run's files failed or cannot succeed (a full disk); the message says what is safe and what to do."""


def mb(n: float) -> str:
    """Bytes for people.

    >>> mb(3_500_000), mb(2048)
    ('3.5 MB', '0.002 MB')
    """
    return f"{n / 1e6:.{1 if n >= 1e5 else 3}f} MB"


def folders(run_dir: str | Path) -> list[Path]:
    """The run's checkpoint folders, oldest first (damaged ones included)."""
    root = Path(run_dir) / "checkpoints"
    found = [p for p in root.glob("gen_*") if _FOLDER.match(p.name) and p.is_dir()] if root.is_dir() else []
    return sorted(found, key=lambda p: int(_FOLDER.match(p.name).group(1)))


def _manifest_bytes(folder: Path) -> int:
    try:
        return int(json.loads((folder / MANIFEST).read_text())["bytes"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def last_complete(run_dir: str | Path) -> tuple[Path, int] | None:
    """The newest checkpoint folder with a manifest and its size in bytes (not verified: see :func:`load`)."""
    for folder in reversed(folders(run_dir)):
        if (folder / MANIFEST).is_file():
            return folder, _manifest_bytes(folder)
    return None


def saved_text(run_dir: str | Path) -> str:
    """What of a run is checkpointed, in words.

    >>> saved_text("/nonexistent-run")
    'no generation is checkpointed yet (the same command starts the run over)'
    """
    last = last_complete(run_dir)
    if last is None:
        return "no generation is checkpointed yet (the same command starts the run over)"
    return f"generation {int(_FOLDER.match(last[0].name).group(1))} is checkpointed in {last[0]}"


def _fix(exc: OSError) -> str:
    return "free some space" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "fix that"


# Files written and fsync'ed at once. A checkpoint of N small states was N fsyncs one after the other
# (3 ms each here: 1.6 s of a 2.5 s checkpoint at N = 512); the filesystem's journal commits concurrent
# fsyncs together (4-8x faster measured, docs/PERFORMANCE.md "Scale"). Serialized states waiting for a
# thread are capped in bytes, so the driver still holds a bounded part of the population while writing.
WRITE_THREADS = 8
WRITE_WINDOW_BYTES = 256 * 2**20


@dataclass
class _Writer:
    """Writes a checkpoint's files, flushed to disk, recording each one's size and sha256.

    :meth:`put` hands a file to a writing thread (at most ``WRITE_THREADS`` files and
    ``WRITE_WINDOW_BYTES`` waiting, besides one); :meth:`write` writes one and waits for every file put
    before it. The manifest lists files in the order they were put.
    """

    folder: Path
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    current: tuple[str, int] = ("", 0)  # the file that failed (or is written) and its size, for error messages
    _pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(WRITE_THREADS))
    _pending: deque = field(default_factory=deque)  # (future, name, bytes), oldest first

    def put(self, name: str, data: bytes) -> None:
        waiting = sum(size for _, _, size in self._pending)
        while self._pending and (len(self._pending) >= WRITE_THREADS or waiting + len(data) > WRITE_WINDOW_BYTES):
            waiting -= self._finish_oldest()
        self.files[name] = {}
        self._pending.append((self._pool.submit(self._write, name, data), name, len(data)))

    def write(self, name: str, data: bytes) -> None:
        self.put(name, data)
        self.drain()

    def drain(self) -> None:
        while self._pending:
            self._finish_oldest()

    def _finish_oldest(self) -> int:
        future, name, size = self._pending.popleft()
        try:
            future.result()
        except OSError:
            self.current = (name, size)
            raise
        return size

    def _write(self, name: str, data: bytes) -> None:
        with open(self.folder / name, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        self.files[name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}

    def close(self) -> None:
        """Wait for the writing threads (also after a failure: nothing may write into a removed folder)."""
        self._pool.shutdown(wait=True)
        self._pending.clear()

    @property
    def total(self) -> int:
        return sum(f.get("bytes", 0) for f in self.files.values())


def save(run_dir: str | Path, generation: int, population: Iterable[Individual], halloffame: Iterable[Individual],
         payload: Mapping[str, Any], keep: int = 2, rng: Mapping[str, Any] | None = None) -> Path:
    """Write the checkpoint of ``generation`` atomically; returns its folder.

    ``payload`` holds the loop's other state (epochs, next_id, logbook, ...); ``rng`` the driver's random
    streams (``{"random": ..., "numpy": ...}``, default: their current states). Raises :class:`WriteError`.
    A stop signal (Ctrl-C, SIGTERM) that arrives meanwhile takes effect once the checkpoint is complete
    and named in ``LATEST`` (a second one at once: :mod:`.signals`).

    >>> # save("runs/digits", 3, population, list(hof), {"epochs": 3, "next_id": 12, "logbook": logbook})
    """
    with signals.deferred():
        return _write(run_dir, generation, population, halloffame, payload, keep, rng)


def _write(run_dir: str | Path, generation: int, population: Iterable[Individual], halloffame: Iterable[Individual],
           payload: Mapping[str, Any], keep: int, rng: Mapping[str, Any] | None) -> Path:
    """:func:`save` itself."""
    root = Path(run_dir) / "checkpoints"
    name = f"gen_{generation:05d}"
    tmp = root / f".tmp-{name}"
    writer = _Writer(tmp)
    rng = rng or {"random": random.getstate(), "numpy": np.random.get_state()}
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / "states").mkdir(parents=True)
        names: dict[int, str] = {}

        def store(handle: StoredState) -> str:
            if id(handle) not in names:  # a state shared by several individuals is written once
                names[id(handle)] = f"states/{len(names):05d}.safetensors"
                writer.put(names[id(handle)], statefile.to_bytes(handle.load()))
            return names[id(handle)]

        rest = {k: v for k, v in payload.items() if k != "logbook"}
        doc = {"format": FORMAT, "generation": generation, "payload": plain.encode(rest),
               "logbook": records.logbook_record(payload["logbook"]) if payload.get("logbook") is not None else None,
               "population": [records.individual_record(ind, store) for ind in population],
               "halloffame": [records.individual_record(ind, store) for ind in halloffame],
               "random": plain.encode(rng["random"]), "numpy": plain.encode(rng["numpy"])}
        writer.write("loop.json", json.dumps(doc, allow_nan=False).encode())  # and every state is on disk
        writer.write(MANIFEST, json.dumps({"format": FORMAT, "files": dict(writer.files), "bytes": writer.total},
                                          indent=1).encode())
        final = root / name
        shutil.rmtree(final, ignore_errors=True)
        os.rename(tmp, final)
        with open(root / "LATEST.tmp", "w") as f:
            f.write(name)
            f.flush()
            os.fsync(f.fileno())
        os.replace(root / "LATEST.tmp", root / "LATEST")
    except OSError as exc:
        writer.close()
        shutil.rmtree(tmp, ignore_errors=True)  # frees what the partial checkpoint took
        path = exc.filename or tmp / writer.current[0]
        last = last_complete(run_dir)
        needed = max(last[1] if last else 0, writer.total + writer.current[1])
        free = shutil.disk_usage(root if root.exists() else Path(run_dir)).free
        raise WriteError(f"checkpoint of generation {generation} not written: {path}: {exc.strerror or exc}"
                         f" (a checkpoint needs about {mb(needed)}, {mb(free)} free there); {saved_text(run_dir)}:"
                         f" {_fix(exc)}, then run the same command again to continue") from None
    finally:
        writer.close()
    shutil.rmtree(root / f"{name}.damaged", ignore_errors=True)  # set aside when this generation was damaged
    complete = folders(run_dir)
    for old in complete[:-keep] if keep > 0 else []:
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


def check_room(run_dir: str | Path) -> None:
    """Raise :class:`WriteError` when the disk clearly cannot hold the next checkpoint (less free than the
    last one took), so that a generation is not trained in vain.

    >>> check_room("/nonexistent-run")  # nothing checkpointed: nothing to compare with
    """
    last = last_complete(run_dir)
    if last is None or last[1] == 0:
        return
    free = shutil.disk_usage(last[0]).free
    if free < last[1]:
        raise WriteError(f"{Path(run_dir) / 'checkpoints'}: {mb(free)} free on the disk, the next checkpoint needs"
                         f" about {mb(last[1])} (as much as the last); {saved_text(run_dir)}: free some space, then"
                         " run the same command again to continue (stopped before training the next generation)")


@contextmanager
def writing(run_dir: str | Path) -> Iterator[None]:
    """Turn a failed write of the run's files (logs, best network, plots) into a :class:`WriteError` that
    says what is checkpointed and how to continue.

    >>> with writing("/nonexistent-run"):  # doctest: +ELLIPSIS
    ...     open("/nonexistent-run/log.csv", "w")
    Traceback (most recent call last):
    ...
    pbt_evo.cli.checkpoint.WriteError: could not write /nonexistent-run/log.csv: No such file or directory (... MB free there); no generation is checkpointed yet (the same command starts the run over): fix that, then run the same command again to continue
    """
    try:
        yield
    except OSError as exc:
        where = Path(exc.filename) if exc.filename else Path(run_dir)
        room = next((p for p in (where, *where.parents) if p.exists()), None)
        free = f" ({mb(shutil.disk_usage(room).free)} free there)" if room is not None else ""
        raise WriteError(f"could not write {where}: {exc.strerror or exc}{free}; {saved_text(run_dir)}:"
                         f" {_fix(exc)}, then run the same command again to continue") from None


# -- reading ------------------------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def _check(folder: Path, name: str, manifest: Mapping[str, Any]) -> Path:
    """The path of a checkpoint file that matches the manifest; :class:`Damaged` otherwise."""
    entry = manifest["files"].get(name)
    if entry is None:
        raise Damaged(f"{name} is not in {MANIFEST}")
    path = folder / name
    if not path.is_file():
        raise Damaged(f"{name} is missing")
    size = path.stat().st_size
    if size != entry["bytes"]:
        raise Damaged(f"{name} has {size:,} bytes, {MANIFEST} says {entry['bytes']:,}")
    if _sha256(path) != entry["sha256"]:
        raise Damaged(f"{name}: its sha256 differs from {MANIFEST}'s")
    return path


def _manifest(folder: Path) -> dict[str, Any]:
    if not (folder / MANIFEST).is_file():
        if (folder / "loop.pkl").is_file():
            raise CheckpointError(
                f"{folder} is a checkpoint in the old pickle format, which can execute code when loaded; if you"
                f" trust where this run folder comes from, convert it once with `python -m pbt_evo.convert"
                f" {folder.parents[1]}`, then resume")
        raise Damaged(f"no {MANIFEST}: incomplete")
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        if manifest.get("format") != FORMAT or not isinstance(manifest.get("files"), dict):
            raise ValueError(f"format {manifest.get('format')!r}")
    except (ValueError, AttributeError, UnicodeDecodeError) as exc:
        raise Damaged(f"{MANIFEST} is unreadable ({exc})") from None
    return manifest


def load(folder: str | Path, put: Callable[[Any], Any] = lambda state: state) -> dict[str, Any]:
    """Read a checkpoint, checking every file against its manifest; ``put`` places each state (``ray.put``
    for Ray runs; in memory by default). States shared by several individuals are loaded once and shared
    again. Raises :class:`Damaged` (or :class:`CheckpointError` for the old pickle format).

    >>> # data = load("runs/digits/checkpoints/gen_00006"); data["generation"], data["population"][0]
    """
    folder = Path(folder)
    manifest = _manifest(folder)
    cache: dict[str, StoredState] = {}

    def stored(name: str) -> StoredState:
        if not _STATE.match(name):
            raise Damaged(f"loop.json names a state file {name!r}")
        if name not in cache:
            try:
                cache[name] = StoredState(put(statefile.read(_check(folder, name, manifest))))
            except statefile.StateFileError as exc:
                raise Damaged(str(exc)) from None
        return cache[name]

    try:
        doc = json.loads(_check(folder, "loop.json", manifest).read_text())
        if doc.get("format") != FORMAT:
            raise ValueError(f"format {doc.get('format')!r}, expected {FORMAT!r}")
        data = dict(plain.decode(doc["payload"]))
        data.update(
            version=FORMAT, generation=int(doc["generation"]),
            logbook=records.logbook_from_record(doc["logbook"]) if doc["logbook"] is not None else None,
            population=[records.individual_from_record(r, stored) for r in doc["population"]],
            halloffame=[records.individual_from_record(r, stored) for r in doc["halloffame"]],
            random=plain.decode(doc["random"]), numpy=plain.decode(doc["numpy"]))
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise Damaged(f"loop.json is malformed ({exc})") from None
    return data


@dataclass
class Found:
    """The checkpoint a run continues from, and the newer ones that were damaged (folder, reason)."""

    folder: Path
    data: dict[str, Any]
    damaged: list[tuple[Path, str]]

    def notices(self) -> list[str]:
        """One line per damaged checkpoint passed over."""
        return [f"checkpoint {f} is damaged ({why}): continuing from {self.folder.name}" for f, why in self.damaged]


def load_latest(run_dir: str | Path, put: Callable[[Any], Any] = lambda state: state) -> Found | None:
    """The newest checkpoint that reads back intact (None: the run has none); :class:`CheckpointError`
    when every checkpoint is damaged.

    >>> load_latest("/nonexistent-run") is None
    True
    """
    damaged: list[tuple[Path, str]] = []
    for folder in reversed(folders(run_dir)):
        try:
            return Found(folder, load(folder, put), damaged)
        except Damaged as exc:
            damaged.append((folder, str(exc)))
    if damaged:
        why = "; ".join(f"{f.name}: {reason}" for f, reason in damaged)
        raise CheckpointError(f"no intact checkpoint in {Path(run_dir) / 'checkpoints'} ({why}): start the run over"
                              " with --overwrite")
    return None


def set_aside(damaged: Iterable[tuple[Path, str]]) -> None:
    """Rename damaged checkpoints to ``gen_XXXXX.damaged`` so that they are neither read nor counted as kept."""
    for folder, _ in damaged:
        target = folder.with_name(folder.name + ".damaged")
        shutil.rmtree(target, ignore_errors=True)
        os.rename(folder, target)
