"""One run per run folder: an advisory lock on ``<run>/run.lock`` held for the run's life.

The lock is ``flock`` on the file; the holder's host, pid and start time are written into it, so a second
run into the folder is refused with who holds it. The kernel releases a lock when its process dies
however it dies (SIGKILL, a crash), so a dead holder's lock is simply taken over. ``flock`` works on local
disks; on a network filesystem it depends on the filesystem (NFSv4 maps it to a lock the server holds;
older NFS and some FUSE filesystems may lock only within one machine).

>>> import tempfile
>>> run = Path(tempfile.mkdtemp())
>>> with RunLock(run):
...     try:
...         RunLock(run).acquire()
...     except RunFolderBusy as exc:
...         print(str(exc).split(" (")[0])
... # doctest: +ELLIPSIS
/... is in use by another run
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: no flock; runs are not locked there
    fcntl = None

LOCK = "run.lock"


class RunFolderError(RuntimeError):
    """The run folder cannot be used: a file where a folder must be, a place that cannot be written (a
    read-only filesystem, no permission); the message says which path and what to do."""


class RunFolderBusy(RunFolderError):
    """Another live process holds the run folder; the message names it."""


class RunLock:
    """``with RunLock(run_dir):`` holds the run folder's lock (raises :class:`RunFolderBusy` if held)."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK
        self._fd: int | None = None
        self._made: list[Path] = []  # folders this lock created, removed again if the run wrote nothing

    def acquire(self) -> "RunLock":
        missing = [self.run_dir, *self.run_dir.parents]
        self._made = missing[:next(k for k, d in enumerate(missing) if d.exists())]
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise RunFolderError(unusable(self.run_dir, exc)) from None
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _describe(_read(fd))
                os.close(fd)
                raise RunFolderBusy(f"{self.run_dir} is in use by another run ({holder}): wait for it to end, or"
                                    " start this one elsewhere (--name NEW or --out DIR)") from None
        holder = {"host": socket.gethostname(), "pid": os.getpid(),
                  "started": time.strftime("%Y-%m-%d %H:%M:%S %z")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the file releases the flock
            self._fd = None
            # a run that stopped before writing anything (a bad config found late, an impossible
            # resource request) leaves no folder behind
            if self._made and [p.name for p in self.run_dir.iterdir()] == [LOCK]:
                self.path.unlink()
                for folder in self._made:
                    if any(folder.iterdir()):
                        break
                    folder.rmdir()

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def unusable(run_dir: Path, exc: OSError) -> str:
    """Why a run folder cannot be made or locked, in one line with what to do.

    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "f"; f.write_text("")
    0
    >>> unusable(f / "r", NotADirectoryError(20, "Not a directory")).startswith(f"{f} is a file, not a folder")
    True
    """
    blocker = next((p for p in (run_dir, *run_dir.parents) if p.exists() and not p.is_dir()), None)
    if blocker == run_dir:
        return (f"{run_dir} is a file, not a run folder: move it away, or start the run elsewhere (--name NEW or"
                " --out DIR)")
    if blocker is not None:
        return (f"{blocker} is a file, not a folder, so the run folder {run_dir} cannot be made in it: give --out a"
                " folder (output.dir)")
    where = exc.filename or run_dir
    return (f"cannot write the run folder {run_dir} ({exc.strerror or exc}: {where}): run it where you can write"
            " (--out DIR; a run folder to resume can be copied there)")


def _read(fd: int) -> dict[str, Any]:
    try:
        return json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        return {}


def _describe(holder: dict[str, Any]) -> str:
    if not holder:
        return "its holder has not written its name yet"
    return f"pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('started')}"
