"""What the dashboard's server keeps between requests: the runs under its folders and their readers.

The server answers requests on several threads (the browser asks for a page's parts at once), so each
reader is used under its own lock: a second request for a run waits for the first one's read and then
finds it cached. A run page's :class:`~.views.RunView` (every row, about 0.6 GB for 512 members x 200
generations) is kept for the ``keep`` most recently viewed runs; the list of runs reads only each run's
``config.yaml``, ``log.jsonl``, ``best/genome.json`` and lock.

>>> import tempfile
>>> root = Path(tempfile.mkdtemp())
>>> (root / "digits").mkdir()
>>> _ = (root / "digits" / "config.yaml").write_text("name: digits\\nalgorithm: {name: pbt_nas, e_total: 4}\\n")
>>> catalog = Catalog(Roots([root]))
>>> [(s["run"], s["status"], s["generation"]) for s in catalog.summaries()]
[('digits', 'stopped', 0)]
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ..runread import Run, RunReader, RunReadError
from ..sweep import algorithm_label
from .roots import Roots
from .views import RunView

T = TypeVar("T")


class Catalog:
    """The dashboard's roots, a summary reader per run and the run views of recently viewed runs."""

    def __init__(self, roots: Roots, keep: int = 2):
        self.roots = roots
        self.keep = keep
        self._lock = threading.Lock()
        self._views: OrderedDict[Path, tuple[threading.Lock, RunView]] = OrderedDict()
        self._summaries: dict[Path, tuple[threading.Lock, RunReader]] = {}

    def view(self, key: str, use: Callable[[RunView], T]) -> T:
        """``use(view)`` on the run the URL key names, read up to date, under the view's lock."""
        path = self.roots.resolve(key)
        with self._lock:
            if path in self._views:
                self._views.move_to_end(path)
            else:
                self._views[path] = (threading.Lock(), RunView(path))
                while len(self._views) > self.keep:
                    self._views.popitem(last=False)
            lock, view = self._views[path]
        with lock:
            view.update()
            return use(view)

    def summary_run(self, path: Path) -> Run:
        """A run's config, log, best and status (not its population), read up to date."""
        with self._lock:
            if path not in self._summaries:
                self._summaries[path] = (threading.Lock(), RunReader(path, files=("log.jsonl",)))
            lock, reader = self._summaries[path]
        with lock:
            return reader.read()

    def summaries(self, paths: list[Path] | None = None) -> list[dict[str, Any]]:
        """One row per run under the roots (or ``paths``): what the list of runs shows; a folder that
        cannot be read is a row saying why."""
        rows = []
        for path in self.roots.runs() if paths is None else paths:
            key = self.roots.key(path)
            try:
                run = self.summary_run(path)
            except RunReadError as exc:
                rows.append({"key": key, "run": path.name, "folder": key, "status": "unreadable",
                             "error": str(exc), "generation": None, "epochs": "", "best": None, "algorithm": "",
                             "updated": ""})
                continue
            rows.append({"key": key, "run": run.name, "folder": key, "algorithm": label(run.config),
                         "status": run.status, "generation": run.generation,
                         "epochs": f"{run.epochs}/{run.e_total}" if run.e_total else str(run.epochs),
                         "best": run.best_fitness, "updated": ago(path), "error": ""})
        return rows


def label(cfg: dict[str, Any]) -> str:
    """The algorithm label ``compare`` groups a run by (``pbt_nas``, ``pbt_nas_sp10``, ...), or its name.

    >>> label({"algorithm": {"name": "pbt_nas", "shrink_perturb": [0.4, 0.1]}})
    'pbt_nas'
    """
    try:
        return algorithm_label(cfg)
    except (KeyError, TypeError, ValueError):
        return str(cfg.get("algorithm", {}).get("name", "?"))


def ago(path: Path) -> str:
    """How long ago the run last wrote its log: ``12 s ago``, ``5 min ago``, ``3 h ago``, ``2 d ago``."""
    files = [path / "log.jsonl", path / "config.yaml"]
    times = [f.stat().st_mtime for f in files if f.exists()]
    if not times:
        return ""
    s = max(time.time() - max(times), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{int(s // size)} {unit} ago"
    return f"{int(s)} s ago"
