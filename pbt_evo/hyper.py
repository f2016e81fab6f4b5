"""Optimizer hyperparameters in the genome, for any task: a config names them per optimizer of the member
(``adam.lr``, ``adam.weight_decay``, ``adam.beta1``, ``adam.eps``), each with a grid, and
:class:`HyperparameterTask` adds them to the task's space as hyperparameter variables (ordered, no
weights) and writes the genome's values into the optimizers' parameter groups whenever a member is
built, restored or made from parents (the handles call :meth:`~pbt_evo.task.Task.set_hyperparameters`
after loading a state, whose saved groups would otherwise bring back the parent's values).

Only the parameter groups change: the optimizer's moments stay, so a new learning rate does not reset
Adam (as in Ray Tune's PBT, which restores the checkpoint and then sets the new config).

A task's own hyperparameters (batch size, dropout, an RL discount) are variables of its space with
``hyper=True`` that its ``build`` reads; explore treats both kinds alike (:func:`pbt_evo.operators.mut_explore`).

>>> from tasks.digits import DigitsTask
>>> task = HyperparameterTask(DigitsTask(channels=4), hyperparameters={"adam": {"lr": {"log": [1e-3, 1e-1, 3]}}})
>>> task.space.names[-1], task.space["adam.lr"].options
('adam.lr', (0.001, 0.01, 0.1))
>>> genome = [0] * len(task.space); genome[-1] = 2
>>> task.build(genome).optimizers["adam"].param_groups[0]["lr"]
0.1
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from .rng import kept_rng, skip_init
from .space import SearchSpace, SpaceError, Variable, values_of
from .task import Member, Task, TaskSpec
from .widths import UnitAxis

WHERE = "task.hyperparameters"
BETAS = {"beta1": 0, "beta2": 1}  # names of the two entries of Adam's ``betas``


class HyperparameterError(ValueError):
    """A hyperparameter a config names does not exist (optimizer or parameter) or has a bad grid; the
    message names the key."""


def optimizer_variables(spec: Mapping[str, Any], where: str = WHERE) -> list[Variable]:
    """Hyperparameter variables ``<optimizer>.<parameter>`` from ``{optimizer: {parameter: values}}``, the
    values being a grid (a list of increasing options, ``{log: [low, high, n]}`` or ``{linear: [low, high,
    n]}``) or a continuous range (``{uniform: [low, high]}`` or ``{loguniform: [low, high]}``).

    >>> [(v.name, v.options) for v in optimizer_variables({"adam": {"weight_decay": [0, 1e-4]}})]
    [('adam.weight_decay', (0, 0.0001))]
    >>> [(v.name, v.bounds, v.log) for v in optimizer_variables({"adam": {"lr": {"loguniform": [1e-4, 0.1]}}})]
    [('adam.lr', (0.0001, 0.1), True)]
    """
    if not isinstance(spec, Mapping):
        raise HyperparameterError(f"'{where}' must be a mapping {{optimizer: {{parameter: grid or range}}}}")
    variables = []
    for opt, params in spec.items():
        if not isinstance(params, Mapping) or not params:
            raise HyperparameterError(f"'{where}.{opt}' must map parameter names to grids or ranges, e.g."
                                      f" {{lr: {{log: [1.0e-4, 1.0e-2, 5]}}}} or {{lr: {{loguniform: [1.0e-4, 1.0e-1]}}}},"
                                      f" got {params!r}")
        for param, grid in params.items():
            key = f"{where}.{opt}.{param}"
            body = grid if isinstance(grid, Mapping) else {"options": grid}
            try:
                values = values_of(body, key)
                options = values.get("options", ())
                if not all(isinstance(o, (int, float)) and not isinstance(o, bool) for o in options):
                    raise SpaceError(f"{key}: an optimizer hyperparameter's options must be numbers, got {list(options)}")
                variables.append(Variable(f"{opt}.{param}", hyper=True, **values))
            except SpaceError as exc:  # worded with the config's key: 'task.hyperparameters.adam.lr[.log]': ...
                where_part, _, reason = str(exc).partition(": ")
                if where_part.startswith("variable ") or (where_part == f"{key}.options" and body is not grid):
                    where_part = key
                raise HyperparameterError(f"'{where_part}': {reason}") from None
    return variables


def settable(optimizer: torch.optim.Optimizer) -> list[str]:
    """The numeric hyperparameters of an optimizer's parameter groups (``beta1``, ``beta2`` for ``betas``).

    >>> settable(torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=0.1))[:3]
    ['lr', 'momentum', 'dampening']
    """
    group = optimizer.param_groups[0]
    names = [k for k, v in group.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return names + (list(BETAS) if isinstance(group.get("betas"), (tuple, list)) else [])


def check_names(member: Member, names: Sequence[str], where: str = WHERE) -> None:
    """Raise :class:`HyperparameterError` naming the first ``<optimizer>.<parameter>`` the member lacks."""
    for name in names:
        opt, _, param = name.partition(".")
        if opt not in member.optimizers:
            raise HyperparameterError(f"'{where}.{opt}': the member has no optimizer {opt!r}; it has:"
                                      f" {', '.join(member.optimizers) or 'none'}")
        allowed = settable(member.optimizers[opt])
        if param not in allowed:
            raise HyperparameterError(f"'{where}.{name}': optimizer {opt!r} ({type(member.optimizers[opt]).__name__})"
                                      f" has no hyperparameter {param!r}; allowed: {', '.join(allowed)}")


def set_optimizer_hyperparameters(member: Member, values: Mapping[str, Any]) -> None:
    """Write ``{"<optimizer>.<parameter>": value}`` into every parameter group of the member's optimizers;
    the optimizers' state (moments, step counts) is not touched.

    >>> class M(Member):
    ...     def __init__(self):
    ...         self.model = torch.nn.Linear(1, 1); self.optimizers = {"adam": torch.optim.Adam(self.model.parameters())}
    ...     def train(self, epochs): return {}
    ...     def evaluate(self): return 0.0
    >>> m = M(); set_optimizer_hyperparameters(m, {"adam.lr": 0.01, "adam.beta2": 0.99})
    >>> m.optimizers["adam"].param_groups[0]["lr"], m.optimizers["adam"].param_groups[0]["betas"]
    (0.01, (0.9, 0.99))
    """
    for name, value in values.items():
        opt, _, param = name.partition(".")
        for group in member.optimizers[opt].param_groups:
            if param in BETAS:
                betas = list(group["betas"])
                betas[BETAS[param]] = value
                group["betas"] = tuple(betas)
            else:
                group[param] = value


class HyperparameterTask(Task):
    """A task with optimizer hyperparameters appended to its space (see the module docstring).

    ``target`` is a task or its ``package.module:Class`` (then built with ``args``), so that a
    :class:`~pbt_evo.task.TaskSpec` naming this class builds the same task in every worker.
    ``hyperparameters`` is ``{optimizer: {parameter: grid}}``; the names are checked on one built member
    (:class:`HyperparameterError` names the key). Every other hook is the task's, given the task's part
    of the genome (its variables come first).
    """

    task_arguments = ("target",)  # names another task: a run folder's record is checked for it (pbt_evo.trusted)

    def __init__(self, target: Task | str, args: Mapping[str, Any] | None = None,
                 hyperparameters: Mapping[str, Any] | None = None):
        self.inner = target if isinstance(target, Task) else TaskSpec(target, dict(args or {})).build()
        added = optimizer_variables(hyperparameters or {})
        self.optimizer_names = [v.name for v in added]
        self.space = SearchSpace(list(self.inner.space) + added)
        self.n_inner = len(self.inner.space)
        # every declaration, set here: Task's class defaults would shadow __getattr__'s forwarding
        for name, value in self.inner.declarations().items():
            setattr(self, name, value)
        with kept_rng(), skip_init():
            check_names(self.inner.build([0] * self.n_inner), self.optimizer_names)

    def __getattr__(self, name: str) -> Any:  # a task's own attributes (data, settings) stay reachable
        inner = self.__dict__.get("inner")
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)

    def part(self, genome: Sequence[int]) -> list[int]:
        """The task's own part of a genome."""
        return list(genome)[:self.n_inner]

    def build(self, genome: Sequence[int]) -> Member:
        self.space.validate(genome)
        member = self.inner.build(self.part(genome))
        self.set_hyperparameters(member, genome)
        return member

    def set_hyperparameters(self, member: Member, genome: Sequence[int]) -> None:
        self.inner.set_hyperparameters(member, self.part(genome))
        values = self.space.decode(genome)
        set_optimizer_hyperparameters(member, {n: values[n] for n in self.optimizer_names})

    def build_model(self, genome: Sequence[int]) -> torch.nn.Module:
        return self.inner.build_model(self.part(genome))

    def unit_axes(self, genome: Sequence[int]) -> Mapping[str, UnitAxis]:
        return self.inner.unit_axes(self.part(genome))

    def cost(self, genome: Sequence[int]) -> float:
        return self.inner.cost(self.part(genome))

    def node_services(self, scope: str, node_id: str) -> list[Any]:
        return self.inner.node_services(scope, node_id)

    def close(self) -> None:
        self.inner.close()

    def naswot_batch(self) -> torch.Tensor | None:
        return self.inner.naswot_batch()

    def example_input(self) -> torch.Tensor | None:
        return self.inner.example_input()


def task_spec(target: str, args: Mapping[str, Any], hyperparameters: Mapping[str, Any] | None) -> TaskSpec:
    """The spec of a task, with ``hyperparameters`` (if any) through :class:`HyperparameterTask`; what
    workers build, and what a run's ``best/genome.json`` records to load its network again.

    >>> task_spec("tasks.digits:DigitsTask", {}, {"adam": {"lr": [0.001, 0.01]}}).target
    'pbt_evo.hyper:HyperparameterTask'
    """
    if not hyperparameters:
        return TaskSpec(target, dict(args))
    return TaskSpec("pbt_evo.hyper:HyperparameterTask",
                    {"target": target, "args": dict(args), "hyperparameters": dict(hyperparameters)})


def fixed_architecture(space: SearchSpace, given: Mapping[str, Any], default: Mapping[str, Any],
                       where: str = "algorithm.architecture") -> dict[int, int]:
    """Option indices of every architecture variable (not a hyperparameter) for classic PBT's one
    architecture: ``given`` values by name, else the task's ``default``, else the first option.

    >>> space = SearchSpace([Variable("act", ("relu", "tanh")), Variable("lr", (0.1, 0.2), hyper=True)])
    >>> fixed_architecture(space, {"act": "tanh"}, {})
    {0: 1}
    """
    hyper = {space[i].name for i in space.hyperparameters}
    unknown = [k for k in given if k not in space.names or k in hyper]
    if unknown:
        arch = [n for n in space.names if n not in hyper]
        raise HyperparameterError(f"'{where}.{unknown[0]}': not an architecture variable; the space has: {', '.join(arch)}")
    fixed = {}
    for i, v in enumerate(space):
        if v.hyper:
            continue
        value = given.get(v.name, default.get(v.name, v.options[0]))
        if value not in v.options:
            raise HyperparameterError(f"'{where}.{v.name}' is {value!r}; allowed: {', '.join(map(str, v.options))}")
        fixed[i] = v.options.index(value)
    return fixed
