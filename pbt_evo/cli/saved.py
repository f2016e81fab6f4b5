"""A run folder's account of itself, read as data: its config, and the config its checkpoint was written with.

A run folder may come from elsewhere. Its ``config.yaml`` names the task that builds its networks, so
it is read only once that task is one a run folder may name (:mod:`pbt_evo.trusted`: registered by an
installed package, or trusted by the caller); nothing the folder names is imported before that.

A run continues with the config it started with: each checkpoint stores that config (``loop.json``),
and a ``config.yaml`` edited since (population 6 -> 10, tau 0.25 -> 0.5) is refused on resume with
what differs, instead of taking effect half-way. How the run executes may change: ``parallel.*``
(workers, backend, a cluster; the results do not depend on them) and ``output.*`` (checkpoints kept,
TensorBoard).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .config import ConfigError, diff, read, resolve

RUNTIME = ("parallel", "output")  # sections a resumed run may change


def load_saved(run_dir: str | Path, trust: Iterable[str] = (), how: str = "run it with --trust-task {target}",
               data: Mapping[str, Any] | None = None, where: str | None = None) -> dict[str, Any]:
    """A run folder's ``config.yaml`` (or ``data`` read from the folder elsewhere, named ``where``),
    validated, once the task it names is one a run folder may name: registered by an installed package,
    or in ``trust`` (``how`` ends the refusal, :class:`~pbt_evo.trusted.UntrustedTask`).

    >>> load_saved("/nonexistent-run")
    Traceback (most recent call last):
    ...
    pbt_evo.cli.config.ConfigError: config file not found: /nonexistent-run/config.yaml (configs live in spaces/, e.g. spaces/digits.yaml)
    """
    from ..trusted import trusted_record

    path = Path(run_dir) / "config.yaml"
    where = where or str(path)
    data = copy.deepcopy(dict(data)) if data is not None else read(path)
    task = data.get("task")
    if isinstance(task, dict) and isinstance(task.get("target"), str):
        task["target"], _ = trusted_record({"target": task["target"], "args": task.get("args") or {}}, where,
                                           trust, how)
    cfg = resolve(data, where)
    if cfg["name"] is None:
        cfg["name"] = Path(run_dir).name
    return cfg


def differences(run_dir: str | Path, cfg: Mapping[str, Any]) -> list[str]:
    """The keys in which the run in ``run_dir`` differs from ``cfg`` (the config a user gives for it);
    a folder that names another task, one no installed package registers, differs in ``task.target``
    (and is not read further).

    >>> import tempfile
    >>> run = Path(tempfile.mkdtemp()); _ = (run / "config.yaml").write_text("task: {target: 'os:system'}")
    >>> differences(run, {"task": {"target": "tasks.digits:DigitsTask"}})
    ['task.target']
    """
    from ..trusted import UntrustedTask

    try:
        return diff(load_saved(run_dir, [cfg["task"]["target"]]), dict(cfg))  # defaults of keys added since filled in
    except UntrustedTask:
        return ["task.target"]


def check_resume(cfg: Mapping[str, Any], stored: Mapping[str, Any] | None, checkpoint: Path, run_dir: Path) -> None:
    """Refuse (:class:`ConfigError`) to continue ``checkpoint`` under ``cfg`` when the config it was
    written with (``stored``; None: written before checkpoints stored it) differs in what the run searches.

    >>> check_resume({"seed": 1}, None, Path("runs/r/checkpoints/gen_00002"), Path("runs/r"))  # nothing stored
    """
    if stored is None:
        return
    saved = load_saved(run_dir, trust=[cfg["task"]["target"]], data=stored, where=f"{checkpoint}/loop.json")
    changed = [k for k in diff(saved, dict(cfg)) if k.split(".")[0] not in RUNTIME]
    if changed:
        what = ", ".join(f"{k} {_at(saved, k)!r} -> {_at(cfg, k)!r}" for k in changed)
        raise ConfigError(f"{run_dir}/config.yaml differs from the config its checkpoint {checkpoint.name} was written"
                          f" with ({what}): a run continues with the config it started with; undo the edit, or"
                          " start a new run from the edited config with --name NEW")


def _at(cfg: Mapping[str, Any], dotted: str) -> Any:
    node: Any = cfg
    for k in dotted.split("."):
        node = node.get(k) if isinstance(node, Mapping) else None
    return node
