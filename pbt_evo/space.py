"""Search spaces whose variables own network layers.

A genome is a list of genes, one per variable, in the space's order: an option index (an ``int``) for a
categorical variable, the value itself (a ``float``) for a continuous one. A variable may own weights:
the state-dict prefixes of the layers it decides. Mixing moves a variable's value from the donor together
with the weights under those prefixes; weightless variables (an activation, a pooling choice) own
nothing. A hyperparameter (``hyper=True``: a learning rate, a batch size) is a weightless variable whose
options are ordered, a grid (:func:`log_grid`, :func:`linear_grid`), or a continuous range with bounds
(``bounds=(low, high)``, ``log=True`` for a log scale); architecture variables are always categorical.
PBT's explore moves a grid gene to a neighbouring option and multiplies a continuous one by 0.8 or 1.2
(:func:`pbt_evo.operators.mut_explore`); to everything else either is one more gene.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

Genome = list[Any]  # option indices (int) and continuous values (float)


class SpaceError(ValueError):
    """A search space or a genome is invalid; the message says what and where."""


@dataclass(frozen=True)
class Variable:
    """One variable: an architecture choice (categorical), or a hyperparameter (``hyper``: ordered options,
    no weights; numeric options must increase), or a continuous hyperparameter (``bounds``, no options;
    ``log``: sampled and normalised on a log scale).

    >>> Variable("layer0", ("identity", "conv3x3"), owns=("cells.0.op",)).n_options
    2
    >>> Variable("adam.lr", log_grid(1e-4, 1e-2, 3), hyper=True).options
    (0.0001, 0.001, 0.01)
    >>> lr = Variable("adam.lr", bounds=(1e-4, 1e-2), log=True, hyper=True)
    >>> lr.continuous, lr.value(0.003), round(lr.to_unit(1e-3), 6), lr.from_unit(1.0)
    (True, 0.003, 0.5, 0.01)
    """

    name: str
    options: tuple[Any, ...] = ()
    owns: tuple[str, ...] = ()
    hyper: bool = False
    bounds: tuple[float, float] | None = None
    log: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise SpaceError(f"variable name must be a non-empty string, got {self.name!r}")
        object.__setattr__(self, "options", tuple(self.options))
        object.__setattr__(self, "owns", tuple(self.owns))
        if self.bounds is not None:
            self._check_continuous()
            return
        if self.log:
            raise SpaceError(f"variable {self.name!r}: log applies to a continuous variable (bounds=(low, high))")
        if len(self.options) < 1:
            raise SpaceError(f"variable {self.name!r}: needs at least one option")
        if len(set(map(repr, self.options))) != len(self.options):
            raise SpaceError(f"variable {self.name!r}: options repeat: {list(self.options)}")
        if self.hyper:
            if self.owns:
                raise SpaceError(f"variable {self.name!r}: a hyperparameter owns no weights, got owns {list(self.owns)}")
            numeric = [isinstance(o, (int, float)) and not isinstance(o, bool) for o in self.options]
            if all(numeric) and any(b <= a for a, b in zip(self.options, self.options[1:])):
                raise SpaceError(f"variable {self.name!r}: a hyperparameter's options must be in increasing order"
                                 f" (its neighbours are the next smaller and larger), got {list(self.options)}")

    def _check_continuous(self) -> None:
        if not self.hyper or self.owns or self.options:
            raise SpaceError(f"variable {self.name!r}: a continuous variable (bounds) is a hyperparameter with no"
                             " options and no weights (hyper=True); architecture variables are categorical")
        bounds = tuple(self.bounds)  # type: ignore[arg-type]
        check_bounds(bounds, self.log)
        object.__setattr__(self, "bounds", (float(bounds[0]), float(bounds[1])))

    @property
    def continuous(self) -> bool:
        """A continuous hyperparameter: its gene is its value, a float within ``bounds``."""
        return self.bounds is not None

    @property
    def n_options(self) -> int:
        """Options of a categorical variable (0 for a continuous one)."""
        return len(self.options)

    @property
    def numeric(self) -> bool:
        """Its values are numbers (a continuous variable, or numeric options)."""
        return self.continuous or all(isinstance(o, (int, float)) and not isinstance(o, bool) for o in self.options)

    def owns_key(self, key: str) -> bool:
        """True when state-dict ``key`` lies under one of this variable's prefixes."""
        return any(key == p or key.startswith(p + ".") for p in self.owns)

    # -- genes -----------------------------------------------------------------------------------------
    def valid(self, gene: Any) -> bool:
        """Whether ``gene`` is an option index (categorical) or a finite number within the bounds."""
        if isinstance(gene, bool) or not isinstance(gene, (int, float)):
            return False
        if self.bounds is None:
            return isinstance(gene, int) and 0 <= gene < self.n_options
        return math.isfinite(gene) and self.bounds[0] <= gene <= self.bounds[1]

    def allowed(self) -> str:
        """What a gene of this variable may be, for messages."""
        if self.bounds is None:
            return f"an option index 0..{self.n_options - 1} of {list(self.options)}"
        return f"a number in [{self.bounds[0]:g}, {self.bounds[1]:g}]"

    def value(self, gene: Any) -> Any:
        """The value a gene stands for (the option, or the continuous value itself)."""
        return float(gene) if self.bounds is not None else self.options[gene]

    def gene(self, value: Any) -> Any:
        """The gene of a value (inverse of :meth:`value`); :class:`SpaceError` when it is not allowed."""
        if self.bounds is None:
            try:
                return self.options.index(value)
            except ValueError:
                raise SpaceError(f"{self.name}: {value!r} is not one of {list(self.options)}") from None
        if not self.valid(value):
            raise SpaceError(f"{self.name}: {value!r} is not {self.allowed()}")
        return float(value)

    def clip(self, value: float) -> float:
        """A continuous value clipped to the bounds."""
        low, high = self.bounds  # type: ignore[misc]
        return float(min(max(value, low), high))

    def sample(self, rng: Any = random) -> Any:
        """A uniformly random gene (log-uniform for a ``log`` continuous variable)."""
        if self.bounds is None:
            return rng.randrange(self.n_options)
        return self.from_unit(rng.random())

    def to_unit(self, gene: Any) -> float:
        """A gene as a point of [0, 1]: a continuous value on its (log) scale between the bounds, an option
        index as ``index / (n - 1)`` (0.5 for a single option); what a model of hyperparameters fits."""
        if self.bounds is None:
            return gene / (self.n_options - 1) if self.n_options > 1 else 0.5
        low, high = self.bounds
        if self.log:
            return (math.log(gene) - math.log(low)) / (math.log(high) - math.log(low))
        return (gene - low) / (high - low)

    def from_unit(self, u: float) -> Any:
        """The gene at point ``u`` of [0, 1] (inverse of :meth:`to_unit`; the nearest option of a grid)."""
        u = min(max(float(u), 0.0), 1.0)
        if self.bounds is None:
            return int(round(u * (self.n_options - 1)))
        low, high = self.bounds
        if self.log:
            return self.clip(math.exp(math.log(low) + u * (math.log(high) - math.log(low))))
        return self.clip(low + u * (high - low))


def check_bounds(bounds: Any, log: bool) -> None:
    """Raise :class:`SpaceError` unless ``bounds`` is ``[low, high]``: finite numbers, low < high (and low > 0
    on a log scale).

    >>> check_bounds([0.0, 0.1], log=True)
    Traceback (most recent call last):
    pbt_evo.space.SpaceError: a loguniform range needs [low, high] with 0 < low < high, got [0.0, 0.1]
    """
    kind = "loguniform" if log else "uniform"
    numbers = (isinstance(bounds, Sequence) and not isinstance(bounds, str) and len(bounds) == 2
               and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in bounds))
    if not numbers or bounds[0] >= bounds[1] or (log and bounds[0] <= 0):
        shown = list(bounds) if isinstance(bounds, Sequence) and not isinstance(bounds, str) else bounds
        need = "0 < low < high" if log else "low < high"
        raise SpaceError(f"a {kind} range needs [low, high] with {need}, got {shown!r}")


class SearchSpace:
    """Ordered categorical variables; samples, validates and decodes genomes.

    >>> space = SearchSpace([Variable("act", ("relu", "tanh")), Variable("width", (8, 16, 32))])
    >>> space.decode([1, 2])
    {'act': 'tanh', 'width': 32}
    >>> round(space.log10_size, 3)
    0.778
    """

    def __init__(self, variables: Sequence[Variable]):
        self.variables: tuple[Variable, ...] = tuple(variables)
        if not self.variables:
            raise SpaceError("a search space needs at least one variable")
        names = [v.name for v in self.variables]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise SpaceError(f"variable names repeat: {dup}")
        self._index = {n: i for i, n in enumerate(names)}

    # -- structure -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.variables)

    def __iter__(self):
        return iter(self.variables)

    def __getitem__(self, key: int | str) -> Variable:
        return self.variables[self.index(key) if isinstance(key, str) else key]

    def __repr__(self) -> str:
        return f"SearchSpace({len(self)} variables, 10^{self.log10_size:.1f} architectures)"

    @property
    def names(self) -> list[str]:
        return [v.name for v in self.variables]

    def index(self, name: str) -> int:
        try:
            return self._index[name]
        except KeyError:
            raise SpaceError(f"unknown variable {name!r}; the space has: {', '.join(self.names)}") from None

    @property
    def log10_size(self) -> float:
        """log10 of the number of architectures (product of option counts; continuous variables left out)."""
        return sum(math.log10(v.n_options) for v in self.variables if not v.continuous)

    @property
    def hyperparameters(self) -> list[int]:
        """Indices of the hyperparameter variables."""
        return [i for i, v in enumerate(self.variables) if v.hyper]

    @property
    def continuous(self) -> list[int]:
        """Indices of the continuous (hyperparameter) variables."""
        return [i for i, v in enumerate(self.variables) if v.continuous]

    @property
    def layer_variables(self) -> list[int]:
        """Indices of the variables that own weights."""
        return [i for i, v in enumerate(self.variables) if v.owns]

    def owner(self, key: str) -> int | None:
        """Index of the variable that owns state-dict ``key`` (longest prefix wins), or None."""
        best, best_len = None, -1
        for i, v in enumerate(self.variables):
            for p in v.owns:
                if (key == p or key.startswith(p + ".")) and len(p) > best_len:
                    best, best_len = i, len(p)
        return best

    # -- genomes ---------------------------------------------------------------------------------
    def validate(self, genome: Sequence[Any]) -> None:
        """Raise SpaceError naming the first bad position of ``genome``."""
        if len(genome) != len(self):
            raise SpaceError(f"genome has {len(genome)} values, the space has {len(self)} variables")
        for i, (g, v) in enumerate(zip(genome, self.variables)):
            if not v.valid(g):
                raise SpaceError(f"genome[{i}] ({v.name}) = {g!r}: must be {v.allowed()}")

    def decode(self, genome: Sequence[Any]) -> dict[str, Any]:
        """Values by variable name (the option, or a continuous variable's value)."""
        self.validate(genome)
        return {v.name: v.value(g) for g, v in zip(genome, self.variables)}

    def encode(self, values: Mapping[str, Any]) -> Genome:
        """Inverse of :meth:`decode`: genes from values by name."""
        genome = []
        for v in self.variables:
            if v.name not in values:
                raise SpaceError(f"no value for variable {v.name!r}")
            genome.append(v.gene(values[v.name]))
        return genome

    def first(self) -> Genome:
        """The genome of first options (a continuous variable at its lower bound): a valid genome of any
        space, e.g. to build a member before any real one.

        >>> SearchSpace([Variable("op", ["a", "b"]), Variable("lr", bounds=(1e-4, 0.1), log=True, hyper=True)]).first()
        [0, 0.0001]
        """
        return [0 if v.bounds is None else float(v.bounds[0]) for v in self.variables]

    def sample(self, rng: random.Random | None = None) -> Genome:
        """A uniformly random genome (``rng`` defaults to the ``random`` module, as in DEAP)."""
        rng = rng or random
        return [v.sample(rng) for v in self.variables]

    def sample_balanced(self, n: int, rng: random.Random | None = None) -> list[Genome]:
        """``n`` genomes in which each option of each variable appears ``n // k`` times (k options),
        the remaining ``n % k`` values drawn at random, then shuffled per variable; a continuous variable
        has one value drawn in each of ``n`` equal strata of its (log) range (below: one per decade).

        >>> space = SearchSpace([Variable("a", (0, 1, 2))])
        >>> sorted(g[0] for g in space.sample_balanced(6, random.Random(0)))
        [0, 0, 1, 1, 2, 2]
        >>> lr = SearchSpace([Variable("lr", bounds=(1e-4, 1e-1), log=True, hyper=True)])
        >>> [f"{g[0]:.1e}" for g in sorted(lr.sample_balanced(3, random.Random(0)))]
        ['7.0e-04', '5.7e-03', '2.6e-02']
        """
        if n < 1:
            raise SpaceError(f"population size must be >= 1, got {n}")
        rng = rng or random
        columns = []
        for v in self.variables:
            if v.continuous:
                col = [v.from_unit((j + rng.random()) / n) for j in range(n)]
                rng.shuffle(col)
                columns.append(col)
                continue
            k = v.n_options
            col = [o for o in range(k) for _ in range(n // k)]
            col += [rng.randrange(k) for _ in range(n - len(col))]
            rng.shuffle(col)
            columns.append(col)
        return [[col[j] for col in columns] for j in range(n)]

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, spec: Mapping[str, Any] | Sequence[Mapping[str, Any]], where: str = "space") -> "SearchSpace":
        """Build from ``{name: {options: [...], owns: [...]}}`` or a list of ``{name, options, owns}``;
        a hyperparameter has ``hyper: true`` and its options, or a grid instead: ``log: [low, high, n]`` or
        ``linear: [low, high, n]``, or a continuous range: ``uniform: [low, high]``, ``loguniform: [low, high]``.

        >>> SearchSpace.from_dict({"act": {"options": ["relu", "tanh"]}}).names
        ['act']
        >>> SearchSpace.from_dict({"lr": {"hyper": True, "log": [0.001, 0.1, 3]}})["lr"].options
        (0.001, 0.01, 0.1)
        >>> SearchSpace.from_dict({"lr": {"hyper": True, "loguniform": [0.001, 0.1]}})["lr"].bounds
        (0.001, 0.1)
        """
        items: list[tuple[str, Any]]
        if isinstance(spec, Mapping):
            items = list(spec.items())
        elif isinstance(spec, Sequence) and not isinstance(spec, str):
            items = []
            for j, entry in enumerate(spec):
                if not isinstance(entry, Mapping) or "name" not in entry:
                    raise SpaceError(f"{where}[{j}]: each variable needs a 'name', 'options' and optional 'owns'")
                items.append((entry["name"], {k: x for k, x in entry.items() if k != "name"}))
        else:
            raise SpaceError(f"{where}: expected a mapping of variables, got {type(spec).__name__}")
        variables = []
        for name, body in items:
            if isinstance(body, Sequence) and not isinstance(body, str):
                body = {"options": body}
            if not isinstance(body, Mapping):
                raise SpaceError(f"{where}.{name}: expected 'options: [...]' (and optional 'owns: [...]')")
            unknown = set(body) - {"options", "owns", "hyper", *KINDS}
            if unknown:
                raise SpaceError(f"{where}.{name}: unknown key(s) {sorted(unknown)}; allowed: options, owns,"
                                 f" hyper, {', '.join(KINDS[1:])}")
            hyper = body.get("hyper", False)
            if not isinstance(hyper, bool):
                raise SpaceError(f"{where}.{name}.hyper: must be true or false, got {hyper!r}")
            owns = body.get("owns", []) or []
            if isinstance(owns, str):
                owns = [owns]
            try:
                variables.append(Variable(str(name), owns=tuple(owns), hyper=hyper, **values_of(body, f"{where}.{name}")))
            except SpaceError as exc:
                if not str(exc).startswith(("variable ", where)):
                    raise SpaceError(f"{where}.{name}: {exc}") from None
                raise
        return cls(variables)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "SearchSpace":
        path = Path(path)
        if not path.is_file():
            raise SpaceError(f"search space file not found: {path}")
        data = yaml.safe_load(path.read_text())
        if isinstance(data, Mapping) and "space" in data:
            data = data["space"]
        return cls.from_dict(data, where=f"{path}: space")

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """The space as :meth:`from_dict` reads it (``space.json`` of a run folder)."""
        return {v.name: {("loguniform" if v.log else "uniform"): list(v.bounds), "owns": [], "hyper": True}
                if v.continuous else
                {"options": list(v.options), "owns": list(v.owns), **({"hyper": True} if v.hyper else {})}
                for v in self.variables}


def _grid_args(low: Any, high: Any, n: Any, kind: str) -> None:
    numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in (low, high))
    if not numbers or isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise SpaceError(f"a {kind} grid needs [low, high, n]: two finite numbers and a count >= 1,"
                         f" got [{low!r}, {high!r}, {n!r}]")
    if high < low or (n > 1 and high == low):
        raise SpaceError(f"a {kind} grid needs low < high, got low {low!r}, high {high!r}")


def log_grid(low: float, high: float, n: int) -> tuple[float, ...]:
    """``n`` log-spaced values from ``low`` to ``high`` (both included, > 0), 10 significant digits.

    >>> log_grid(1e-4, 1e-2, 5)
    (0.0001, 0.000316227766, 0.001, 0.00316227766, 0.01)
    """
    _grid_args(low, high, n, "log")
    if low <= 0:
        raise SpaceError(f"a log grid needs low > 0, got [{low!r}, {high!r}, {n!r}]")
    if n == 1:
        return (float(low),)
    step = (math.log(high) - math.log(low)) / (n - 1)
    return tuple(float(f"{math.exp(math.log(low) + k * step):.10g}") for k in range(n))


def linear_grid(low: float, high: float, n: int) -> tuple[float, ...]:
    """``n`` evenly spaced values from ``low`` to ``high`` (both included), 10 significant digits.

    >>> linear_grid(0.0, 0.3, 4)
    (0.0, 0.1, 0.2, 0.3)
    """
    _grid_args(low, high, n, "linear")
    if n == 1:
        return (float(low),)
    return tuple(float(f"{low + k * (high - low) / (n - 1):.10g}") for k in range(n))


KINDS = ("options", "log", "linear", "uniform", "loguniform")


def values_of(body: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A variable's values from its config entry, as :class:`Variable` keywords: ``options`` (a list, or a
    grid ``log: [low, high, n]`` / ``linear: [low, high, n]``), or ``bounds`` and ``log`` (a continuous
    range ``uniform: [low, high]`` / ``loguniform: [low, high]``).

    >>> values_of({"loguniform": [1e-4, 1e-1]}, "lr"), values_of({"linear": [1, 2, 2]}, "x")
    ({'bounds': (0.0001, 0.1), 'log': True}, {'options': (1.0, 2.0)})
    >>> values_of({"uniform": [1, 1]}, "x")
    Traceback (most recent call last):
    pbt_evo.space.SpaceError: x.uniform: a uniform range needs [low, high] with low < high, got [1, 1]
    """
    given = [k for k in KINDS if k in body]
    if len(given) != 1:
        raise SpaceError(f"{where}: give exactly one of options: [...], log: [low, high, n], linear: [low, high, n],"
                         " uniform: [low, high], loguniform: [low, high]")
    if given[0] not in ("uniform", "loguniform"):
        return {"options": grid_options(body, where)}
    bounds, log = body[given[0]], given[0] == "loguniform"
    try:
        check_bounds(bounds, log)
    except SpaceError as exc:
        raise SpaceError(f"{where}.{given[0]}: {exc}") from None
    return {"bounds": (float(bounds[0]), float(bounds[1])), "log": log}


def grid_options(body: Mapping[str, Any], where: str) -> tuple[Any, ...]:
    """A variable's options from ``options: [...]`` or a grid, ``log: [low, high, n]`` or ``linear: [...]``.

    >>> grid_options({"linear": [1, 3, 3]}, "lr")
    (1.0, 2.0, 3.0)
    """
    given = [k for k in ("options", "log", "linear") if k in body]
    if len(given) != 1:
        raise SpaceError(f"{where}: give exactly one of options: [...], log: [low, high, n], linear: [low, high, n]")
    value = body[given[0]]
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        raise SpaceError(f"{where}.{given[0]}: must be a non-empty list")
    if given[0] == "options":
        return tuple(value)
    if len(value) != 3:
        raise SpaceError(f"{where}.{given[0]}: expected [low, high, n], got {list(value)}")
    try:
        return (log_grid if given[0] == "log" else linear_grid)(*value)
    except SpaceError as exc:
        raise SpaceError(f"{where}.{given[0]}: {exc}") from None
