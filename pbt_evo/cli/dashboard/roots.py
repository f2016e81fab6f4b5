"""The folders a dashboard was given, and nothing else: URL paths to run folders, refusing the rest.

Each folder given on the command line is a root, named by its last component (``runs/`` -> ``runs``,
``runs_2`` if two share a name). A page's URL names a folder as ``<root>/<path inside it>``; it is
resolved (symlinks too) and refused unless it lies inside its root: ``..``, absolute paths, encoded
dots and links out of the root all end in :class:`Refused`, one line the page shows.

>>> import tempfile
>>> base = Path(tempfile.mkdtemp())
>>> (base / "runs" / "digits").mkdir(parents=True)
>>> roots = Roots([base / "runs"])
>>> roots.resolve("runs/digits") == (base / "runs" / "digits").resolve()
True
>>> roots.resolve("runs/%2e%2e/%2e%2e/etc")
Traceback (most recent call last):
...
pbt_evo.cli.dashboard.roots.Refused: refused: 'runs/../../etc' is not inside the folders this dashboard was given
>>> roots.key(base / "runs" / "digits")
'runs/digits'
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote

from ..runread import RunReadError, find_runs


class Refused(RunReadError):
    """A path outside the dashboard's folders (or not a folder); worded for the page."""


class Roots:
    """Named root folders; ``resolve`` maps a URL's ``<root>/<relative path>`` into one of them."""

    def __init__(self, folders: Sequence[str | Path]):
        self.folders: dict[str, Path] = {}
        for folder in folders:
            path = Path(folder).resolve()
            if not path.is_dir():
                raise RunReadError(f"{folder} is not a folder (give run folders, a sweep's folder or a folder of runs)")
            name, k = path.name or "root", 1
            while name in self.folders:
                k += 1
                name = f"{path.name or 'root'}_{k}"
            self.folders[name] = path

    def resolve(self, key: str) -> Path:
        """The folder a URL names (``<root>/<path>``, percent-encoding undone), only if inside its root."""
        text = unquote(key).replace("\\", "/")
        root_name, _, rest = text.strip("/").partition("/")
        root = self.folders.get(root_name)
        refused = Refused(f"refused: {text!r} is not inside the folders this dashboard was given")
        if root is None or rest.startswith("/") or "\x00" in text:
            raise refused
        path = (root / rest).resolve()
        if path != root and root not in path.parents:
            raise refused
        if not path.is_dir():
            raise Refused(f"{text} is not a folder (any more)")
        return path

    def key(self, path: Path) -> str:
        """The URL key of a folder inside a root (the inverse of :meth:`resolve`)."""
        path = Path(path).resolve()
        for name, root in self.folders.items():
            if path == root or root in path.parents:
                rel = path.relative_to(root).as_posix()
                return name if rel == "." else f"{name}/{rel}"
        raise Refused(f"refused: {path} is not inside the folders this dashboard was given")

    def runs(self) -> list[Path]:
        """Every run folder under the roots (a root itself, a sweep's runs, a folder of runs, 3 levels down)."""
        seen: dict[Path, None] = {}
        for root in self.folders.values():
            for run in find_runs(root):
                seen.setdefault(run.resolve())
        return list(seen)

    def groups(self) -> dict[Path, list[Path]]:
        """Folders holding two or more runs (a sweep, a study): the pages that compare their runs."""
        out: dict[Path, list[Path]] = {}
        for run in self.runs():
            out.setdefault(run.parent, []).append(run)
        return {folder: runs for folder, runs in out.items() if len(runs) >= 2 and self._inside(folder)}

    def _inside(self, path: Path) -> bool:
        return any(path == root or root in path.parents for root in self.folders.values())
