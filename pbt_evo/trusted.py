"""Which tasks a run folder may name: the task entry points the installation declares.

A run folder records the task that built it (``config.yaml``'s ``task``, ``best/genome.json``'s
``task``) as ``package.module:Class`` plus arguments. Building it imports that module and calls that
class: code. A folder from elsewhere must not choose the code that runs, so a reader of a run folder
builds only a task that an installed package declares in its entry points, group ``pbt_evo.tasks``
(pbt_evo declares its bundled tasks and :class:`pbt_evo.hyper.HyperparameterTask`; a package of your
own adds its tasks in its ``setup.cfg``, then ``pip install -e .``)::

    [options.entry_points]
    pbt_evo.tasks =
        my_task = my_package.tasks:MyTask

A folder may name a registered target or its entry point's name. Anything else is refused with
:class:`UntrustedTask`, one line that says how to trust it explicitly: pass the task yourself
(``load_best(folder, task=MyTask())``) or name the target you trust (``trust=["my.module:MyTask"]``,
``--trust-task my.module:MyTask`` on the command line). A config file given to ``python -m
pbt_evo.run`` is the user's own and is not checked. A task that wraps another lists, in its class
attribute ``task_arguments``, the arguments that name a task; those are checked the same way.

>>> entries = {"digits": "tasks.digits:DigitsTask"}
>>> trusted_spec({"target": "digits", "args": {"channels": 4}}, "genome.json", entries=entries).target
'tasks.digits:DigitsTask'
>>> trusted_spec({"target": "os:system", "args": {}}, "genome.json", entries=entries)
Traceback (most recent call last):
...
pbt_evo.trusted.UntrustedTask: genome.json names the task 'os:system', which no installed package registers (registered: digits = tasks.digits:DigitsTask); a run folder may only name registered tasks: if you trust where this folder comes from, pass trust=['os:system'], or pass the task yourself
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when a spec is made: checking a config's task before that needs no torch
    from .task import TaskSpec

GROUP = "pbt_evo.tasks"


class UntrustedTask(ValueError):
    """A run folder names a task that is neither registered nor trusted by the caller; says how to trust it."""


def registered() -> dict[str, str]:
    """The registered tasks, ``{entry point name: "package.module:Class"}``, from every installed package.

    >>> # registered()["digits"] == "tasks.digits:DigitsTask"  (once pbt_evo is installed with pip)
    """
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


def trusted_spec(record: Any, where: str, trust: Iterable[str] = (), how: str = "pass trust=[{target!r}], or pass the"
                 " task yourself", entries: Mapping[str, str] | None = None) -> TaskSpec:
    """The spec of a task record ``{"target": ..., "args": {...}}`` read from a run folder (``where``
    names the file), when its target (and each target its class's ``task_arguments`` name) is registered
    or in ``trust``; :class:`UntrustedTask` otherwise, whose line ends with ``how`` (``{target}`` is
    filled in). ``entries`` replaces the installation's registry (tests).
    """
    from .task import TaskSpec

    return TaskSpec(*trusted_record(record, where, trust, how, entries))


def trusted_record(record: Any, where: str, trust: Iterable[str] = (), how: str = "pass trust=[{target!r}]",
                   entries: Mapping[str, str] | None = None) -> tuple[str, dict[str, Any]]:
    """:func:`trusted_spec`'s target and arguments (entry point names replaced by their targets).

    >>> trusted_record({"target": "x:Y", "args": {"n": 1}}, "config.yaml", trust=["x:Y"], entries={})
    ('x:Y', {'n': 1})
    """
    entries = registered() if entries is None else dict(entries)
    if not isinstance(record, Mapping) or not isinstance(record.get("target"), str) \
            or not isinstance(record.get("args") or {}, Mapping):
        raise UntrustedTask(f"{where}: the task record is malformed (expected {{target: 'package.module:Class',"
                            f" args: {{...}}}}, got {record!r})")
    trusted = set(trust)
    target = _checked(record["target"], where, trusted, how, entries)
    args = dict(record.get("args") or {})
    for name in _task_arguments(target):
        if isinstance(args.get(name), str):
            args[name] = _checked(args[name], where, trusted, how, entries)
        elif name in args:
            raise UntrustedTask(f"{where}: the task's argument {name!r} must name a task, got {args[name]!r}")
    return target, args


def _checked(target: str, where: str, trusted: set[str], how: str, entries: Mapping[str, str]) -> str:
    """The target a folder's ``target`` stands for, if registered or trusted."""
    if target in entries:  # an entry point's name
        return entries[target]
    if target in trusted or target in entries.values():
        return target
    known = ", ".join(f"{n} = {t}" for n, t in sorted(entries.items()))
    why = (f"registered: {known}" if entries else
           f"no task is registered at all: pbt_evo's entry points ({GROUP}) are missing, as when its source is"
           " used without `pip install -e .`; install it with pip")
    raise UntrustedTask(f"{where} names the task {target!r}, which no installed package registers ({why}); a run"
                        f" folder may only name registered tasks: if you trust where this folder comes from,"
                        f" {how.format(target=target)}")


def _task_arguments(target: str) -> tuple[str, ...]:
    """The arguments of a registered or trusted task class that name another task (its ``task_arguments``)."""
    module, _, attr = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError):
        return ()  # building it will say what is missing
    return tuple(getattr(cls, "task_arguments", ()))
