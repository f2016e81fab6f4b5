"""Reading a run folder as data: the one parser of what :mod:`pbt_evo.cli.runfolder` writes.

``config.yaml`` (``yaml.safe_load``), ``space.json``, ``log.jsonl``, ``population.jsonl``, ``lineage.jsonl``,
``front.jsonl``, ``trials.jsonl`` and ``best/genome.json`` become plain records (dicts and lists); nothing
is built from them: a folder's config names code (its task), and reading a folder runs none. ``plot``,
``schedule``, ``compare`` and the dashboard read through this module.

What a live or interrupted run leaves is read as far as it is complete: a missing file is no rows, and
a torn last line (a write cut short, or one still being appended) is left out until its newline arrives.
A damaged line before the last, a record without the keys this version writes, or a config that is not
a mapping raise :class:`RunReadError`, one line naming the file and the line.

:class:`JsonlFile` reads a growing file incrementally: it keeps its rows and, when the file's (size,
mtime, inode) changed, reads only the appended bytes; a file rewritten before the point read so far (a
resume drops the rows after its checkpoint) is read again from the start. Lines are parsed in one call
per read (with ``orjson`` when it is installed, as the ``dashboard`` extra does; the standard library's
``json`` otherwise, and for lines holding ``NaN``, which orjson refuses): 10^5 population rows in about a
second.

>>> import tempfile
>>> run = Path(tempfile.mkdtemp())
>>> _ = (run / "log.jsonl").write_text('{"gen": 1, "epochs": 2, "best": 0.5}\\n{"gen": 2, "epo')
>>> [r["gen"] for r in read_jsonl(run / "log.jsonl")]  # the torn last line is left out
[1]
>>> read_jsonl(run / "lineage.jsonl")  # missing: no rows
[]
"""

from __future__ import annotations

import gc
import json
import os
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

try:  # optional (the dashboard extra): the same records, parsed about twice as fast
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - without it, the standard library's parser
    _fast_loads = json.loads

# the keys every reader relies on in each file's records (others are read where they are used)
REQUIRED = {
    "log.jsonl": ("gen", "epochs", "best"),
    "population.jsonl": ("gen", "id", "epochs"),
    "lineage.jsonl": ("gen", "child", "parents"),
    "front.jsonl": ("gen", "members"),
    "trials.jsonl": (),
}
FILES = tuple(REQUIRED)
LOCK = "run.lock"
PICKLES = ("checkpoints/*/loop.pkl", "best/model.pt")  # pbt_evo 0.2's formats
_SIGNATURE = 64  # bytes before the read point compared again, to notice a file rewritten in place


class RunReadError(ValueError):
    """A run folder (or one of its files) that cannot be read; the message is one line for the user."""


def _loads(text: bytes) -> Any:
    """One JSON document; None if it is not one."""
    try:
        return _fast_loads(text)
    except ValueError:  # orjson refuses NaN and Infinity, which json.dumps writes for a diverged metric
        try:
            return json.loads(text)
        except ValueError:
            return None


def _parse_chunk(chunk: bytes, path: Path, first_line: int, required: Sequence[str]) -> list[dict]:
    """Complete lines (``chunk`` ends with a newline) as records: parsed as one JSON array in one call (no
    object per line: 10^5 rows in about a second), line by line only to skip blank lines or name a bad one."""
    collecting = gc.isenabled()
    gc.disable()  # 10^5 new dicts would start many collections that find nothing: half the time of a big file
    try:
        rows = _loads(b"[" + chunk[:-1].replace(b"\n", b",") + b"]")
        if not isinstance(rows, list) or len(rows) != chunk.count(b"\n") or not all(type(r) is dict for r in rows):
            rows = _parse_lines(chunk.split(b"\n")[:-1], path, first_line)
    finally:
        if collecting:
            gc.enable()
    need = frozenset(required)
    bad = next((k for k, row in enumerate(rows) if not need <= row.keys()), None) if need else None
    if bad is not None:
        missing = [key for key in required if key not in rows[bad]]
        raise RunReadError(f"{path}: record {first_line + bad} has no {', '.join(missing)}: written by another"
                           " program or an older pbt_evo")
    return rows


def _parse_lines(lines: Sequence[bytes], path: Path, first_line: int) -> list[dict]:
    """Line by line: blank lines skipped, the first line that is not a JSON record named."""
    rows = []
    for k, line in enumerate(lines):
        if not line.strip():
            continue
        row = _loads(line)
        if not isinstance(row, dict):
            raise RunReadError(f"{path} line {first_line + k} is not a JSON record: {line[:60]!r}; the file is"
                               " damaged (only its last line may be torn)")
        rows.append(row)
    return rows


class JsonlFile:
    """The complete records of one JSON-lines file, read incrementally as it grows.

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "log.jsonl"
    >>> f = JsonlFile(p)
    >>> f.refresh(), f.rows
    (False, [])
    >>> _ = p.write_text('{"gen": 1, "epochs": 1, "best": 0.1}\\n')
    >>> f.refresh(), [r["gen"] for r in f.rows]
    (True, [1])
    >>> with open(p, "a") as out:
    ...     _ = out.write('{"gen": 2, "epochs": 2, "best": 0.2}\\n{"gen"')
    >>> f.refresh(), [r["gen"] for r in f.rows], f.refresh()
    (True, [1, 2], False)
    """

    def __init__(self, path: str | Path, required: Sequence[str] | None = None):
        self.path = Path(path)
        self.required = tuple(REQUIRED.get(self.path.name, ()) if required is None else required)
        self.rows: list[dict] = []
        self._stat: tuple[int, int, int] | None = None  # size, mtime_ns, inode
        self._offset = 0  # bytes read: up to the end of the last complete line
        self._signature = b""  # the bytes before _offset, to notice a rewrite
        self._lines = 0

    def refresh(self) -> bool:
        """Read what was appended since the last call; True if the rows changed."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            changed = bool(self.rows)
            self._reset()
            return changed
        stat = (st.st_size, st.st_mtime_ns, st.st_ino)
        if stat == self._stat:
            return False
        with open(self.path, "rb") as f:
            rewritten = self._stat is not None and (stat[2] != self._stat[2] or stat[0] < self._offset)
            if not rewritten and self._signature:
                f.seek(self._offset - len(self._signature))
                rewritten = f.read(len(self._signature)) != self._signature
            changed = rewritten and bool(self.rows)
            if rewritten:
                self._reset()
            f.seek(self._offset)
            data = f.read()
        self._stat = stat
        end = data.rfind(b"\n") + 1  # a last line without its newline is torn, or still being written
        if end == 0:
            return changed
        self.rows.extend(_parse_chunk(data[:end], self.path, self._lines + 1, self.required))
        self._lines += data.count(b"\n", 0, end)
        self._offset += end
        self._signature = (self._signature + data[:end])[-_SIGNATURE:]
        return True

    def _reset(self) -> None:
        self.rows, self._stat, self._offset, self._signature, self._lines = [], None, 0, b"", 0


def read_jsonl(path: str | Path, required: Sequence[str] | None = None) -> list[dict]:
    """The complete records of a JSON-lines file (none if it is missing; a torn last line left out)."""
    f = JsonlFile(path, required)
    f.refresh()
    return f.rows


def read_json(path: str | Path) -> Any:
    """A JSON file's content, or None if it is missing; :class:`RunReadError` if it is not JSON.

    >>> read_json("no/such/file.json") is None
    True
    """
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except (ValueError, UnicodeDecodeError) as exc:
        raise RunReadError(f"{path} is not JSON ({exc}); it was cut short or written by another program") from None


def read_config(run: str | Path) -> dict[str, Any]:
    """A run's ``config.yaml`` as a dict (safe YAML: data only); :class:`RunReadError` if missing or bad.

    >>> import tempfile
    >>> run = Path(tempfile.mkdtemp())
    >>> _ = (run / "config.yaml").write_text("name: d\\nalgorithm: {name: pbt_nas}\\ntask: {target: x.y:Z}\\n")
    >>> read_config(run)["task"]  # the task's target is a string here: nothing is imported
    {'target': 'x.y:Z'}
    """
    path = Path(run) / "config.yaml"
    try:
        cfg = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise RunReadError(f"{run} is not a pbt_evo run folder (no config.yaml)") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise RunReadError(f"{path} is not YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("algorithm"), dict) or "name" not in cfg:
        raise RunReadError(f"{path} is not a pbt_evo config (no name or algorithm section)")
    return cfg


def read_best(run: str | Path) -> dict[str, Any] | None:
    """``best/genome.json`` (the exported best network's record), or None before the run has written it.

    >>> read_best("no/such/run") is None
    True
    """
    info = read_json(Path(run) / "best" / "genome.json")
    if info is not None and (not isinstance(info, dict) or "id" not in info):
        raise RunReadError(f"{run}/best/genome.json has no member id: written by another program")
    return info


def check_format(run: str | Path) -> None:
    """Refuse a folder that is not a current pbt_evo run folder, in one line saying what it is."""
    run = Path(run)
    if not run.is_dir():
        raise RunReadError(f"{run} is not a folder")
    if not (run / "config.yaml").is_file():
        raise RunReadError(f"{run} is not a pbt_evo run folder (no config.yaml)")
    if any(next(run.glob(pattern), None) is not None for pattern in PICKLES):
        raise RunReadError(f"{run} is a run folder of pbt_evo 0.2 (pickle files); convert it with"
                           f" `python -m pbt_evo.convert {run}`")


def is_run_folder(path: str | Path) -> bool:
    """A folder with a ``config.yaml`` (what ``compare`` and the dashboard take for a run).

    >>> is_run_folder("no/such/run")
    False
    """
    return (Path(path) / "config.yaml").is_file()


def find_runs(root: str | Path, depth: int = 3) -> list[Path]:
    """Run folders at or below ``root`` (``depth`` levels down, not inside a run folder), sorted.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> for name in ("study/a_s0", "study/a_s1", "digits"):
    ...     (root / name).mkdir(parents=True); _ = (root / name / "config.yaml").write_text("name: x")
    >>> [str(p.relative_to(root)) for p in find_runs(root)]
    ['digits', 'study/a_s0', 'study/a_s1']
    """
    root = Path(root)
    if is_run_folder(root):
        return [root]
    out: list[Path] = []
    if depth > 0 and root.is_dir():
        for child in sorted(root.iterdir()):
            if child.is_dir() and not child.is_symlink() and not child.name.startswith("."):
                out += find_runs(child, depth - 1)
    return out


def lock_held(run: str | Path) -> bool:
    """Whether a live process holds the run's ``run.lock`` (:mod:`pbt_evo.cli.runlock`), looked up without
    touching the lock: in ``/proc/locks`` (Linux), else by its holder's pid when it is on this host.

    >>> import tempfile
    >>> from pbt_evo.cli.runlock import RunLock
    >>> run = Path(tempfile.mkdtemp())
    >>> with RunLock(run):
    ...     lock_held(run)
    True
    >>> lock_held(run)
    False
    """
    lock = Path(run) / LOCK
    try:
        st = lock.stat()
    except FileNotFoundError:
        return False
    try:
        table = Path("/proc/locks").read_text()
    except OSError:
        table = None
    if table is not None:
        key = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
        return any(" FLOCK " in f" {line} " and key in line.split() for line in table.splitlines())
    holder = read_json(lock) if st.st_size else None
    if not isinstance(holder, dict) or holder.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(holder["pid"]), 0)
    except (OSError, ValueError, KeyError):
        return False
    return True


@dataclass
class Run:
    """One run folder's records, as read at one moment."""

    path: Path
    config: dict[str, Any]
    space: dict[str, Any]
    log: list[dict] = field(default_factory=list)
    population: list[dict] = field(default_factory=list)
    lineage: list[dict] = field(default_factory=list)
    front: list[dict] = field(default_factory=list)
    trials: list[dict] = field(default_factory=list)
    best: dict[str, Any] | None = None
    status: str = "stopped"  # running | done | stopped
    version: tuple = ()  # changes whenever any file read changed

    @property
    def name(self) -> str:
        return str(self.config.get("name", self.path.name))

    @property
    def generation(self) -> int:
        return self.log[-1]["gen"] if self.log else 0

    @property
    def epochs(self) -> int:
        return self.log[-1]["epochs"] if self.log else 0

    @property
    def e_total(self) -> int | None:
        return self.config["algorithm"].get("e_total")

    @property
    def best_fitness(self) -> float | None:
        seen = [r["best"] for r in self.log if isinstance(r.get("best"), (int, float))]
        return max(seen) if seen else None


class RunReader:
    """Reads one run folder again and again, each file only as far as it grew (for a live view);
    ``files``: the JSON-lines files to read (``("log.jsonl",)`` for a summary of the run).

    >>> import tempfile
    >>> run = Path(tempfile.mkdtemp())
    >>> _ = (run / "config.yaml").write_text("name: demo\\nalgorithm: {name: pbt_nas, e_total: 4}\\n")
    >>> _ = (run / "log.jsonl").write_text('{"gen": 1, "epochs": 2, "best": 0.5}\\n')
    >>> r = RunReader(run).read()
    >>> r.name, r.generation, r.epochs, r.status
    ('demo', 1, 2, 'stopped')
    """

    def __init__(self, path: str | Path, files: Sequence[str] = FILES):
        self.path = Path(path)
        self.files = {name: JsonlFile(self.path / name) for name in files}  # others read as no rows
        self._small: dict[str, tuple[tuple, Any]] = {}  # config, space, best: by (size, mtime)

    def _cached(self, name: str, read: Any) -> tuple[tuple, Any]:
        try:
            st = os.stat(self.path / name)
            key: tuple = (st.st_size, st.st_mtime_ns, st.st_ino)
        except FileNotFoundError:
            key = ()
        if name not in self._small or self._small[name][0] != key:
            self._small[name] = (key, read())
        return self._small[name]

    def read(self) -> Run:
        """The folder as it is now; :class:`RunReadError` if it cannot be read."""
        check_format(self.path)
        cfg_key, cfg = self._cached("config.yaml", lambda: read_config(self.path))
        space_key, space = self._cached("space.json", lambda: read_json(self.path / "space.json"))
        best_key, best = self._cached("best/genome.json", lambda: read_best(self.path))
        for f in self.files.values():
            f.refresh()
        rows = {name: self.files[name].rows if name in self.files else [] for name in FILES}
        version = (cfg_key, space_key, best_key, *(len(r) for r in rows.values()))
        run = Run(self.path, cfg, space if isinstance(space, dict) else {}, rows["log.jsonl"], rows["population.jsonl"],
                  rows["lineage.jsonl"], rows["front.jsonl"], rows["trials.jsonl"], best, version=version)
        run.status = status(run)
        return run


def status(run: Run) -> str:
    """``running`` (its lock is held), ``done`` (all its epochs trained and ``best/`` written) or ``stopped``."""
    if lock_held(run.path):
        return "running"
    finished = run.best is not None and (run.e_total is None or run.epochs >= run.e_total)
    return "done" if finished else "stopped"


def read_run(path: str | Path) -> Run:
    """A run folder's records (:class:`Run`), read once."""
    return RunReader(path).read()


def by_generation(rows: Sequence[dict]) -> dict[int, list[dict]]:
    """Records grouped by their ``gen``, in the order read (one pass, for 10^5 rows).

    >>> {g: len(rs) for g, rs in by_generation([{"gen": 1}, {"gen": 2}, {"gen": 1}]).items()}
    {1: 2, 2: 1}
    """
    out: dict[int, list[dict]] = {}
    for r in rows:
        out.setdefault(r["gen"], []).append(r)
    return out


def iter_members(rows: Sequence[dict]) -> Iterator[tuple[int, list[dict]]]:
    """Each member's records (population rows), by id, in the order of their generations.

    >>> [(m, [r["gen"] for r in rs]) for m, rs in iter_members([{"id": 3, "gen": 2}, {"id": 3, "gen": 1}, {"id": 1, "gen": 1}])]
    [(1, [1]), (3, [1, 2])]
    """
    members: dict[int, list[dict]] = {}
    for r in rows:
        members.setdefault(r["id"], []).append(r)
    for m in sorted(members):
        yield m, sorted(members[m], key=lambda r: r["gen"])
