"""Categorical search spaces whose variables own network layers.

A genome is a list of option indices, one per variable, in the space's order. A variable may own
weights: the state-dict prefixes of the layers it decides. Mixing moves a variable's value from the
donor together with the weights under those prefixes; weightless variables (an activation, a pooling
choice) own nothing. A hyperparameter (``hyper=True``: a learning rate, a batch size) is a weightless
variable whose options are ordered, a grid (:func:`log_grid`, :func:`linear_grid`): PBT's explore moves it
to a neighbouring option (:func:`pbt_evo.hyper.mut_explore`); to everything else it is one more gene.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

Genome = list[int]


class SpaceError(ValueError):
    """A search space or a genome is invalid; the message says what and where."""


@dataclass(frozen=True)
class Variable:
    """One categorical variable: an architecture choice, or a hyperparameter (``hyper``: ordered options,
    no weights; numeric options must increase).

    >>> Variable("layer0", ("identity", "conv3x3"), owns=("cells.0.op",)).n_options
    2
    >>> Variable("adam.lr", log_grid(1e-4, 1e-2, 3), hyper=True).options
    (0.0001, 0.001, 0.01)
    """

    name: str
    options: tuple[Any, ...]
    owns: tuple[str, ...] = ()
    hyper: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise SpaceError(f"variable name must be a non-empty string, got {self.name!r}")
        if len(self.options) < 1:
            raise SpaceError(f"variable {self.name!r}: needs at least one option")
        if len(set(map(repr, self.options))) != len(self.options):
            raise SpaceError(f"variable {self.name!r}: options repeat: {list(self.options)}")
        object.__setattr__(self, "options", tuple(self.options))
        object.__setattr__(self, "owns", tuple(self.owns))
        if self.hyper:
            if self.owns:
                raise SpaceError(f"variable {self.name!r}: a hyperparameter owns no weights, got owns {list(self.owns)}")
            numeric = [isinstance(o, (int, float)) and not isinstance(o, bool) for o in self.options]
            if all(numeric) and any(b <= a for a, b in zip(self.options, self.options[1:])):
                raise SpaceError(f"variable {self.name!r}: a hyperparameter's options must be in increasing order"
                                 f" (its neighbours are the next smaller and larger), got {list(self.options)}")

    @property
    def n_options(self) -> int:
        return len(self.options)

    def owns_key(self, key: str) -> bool:
        """True when state-dict ``key`` lies under one of this variable's prefixes."""
        return any(key == p or key.startswith(p + ".") for p in self.owns)


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
        """log10 of the number of architectures (product of option counts)."""
        return sum(math.log10(v.n_options) for v in self.variables)

    @property
    def hyperparameters(self) -> list[int]:
        """Indices of the hyperparameter variables."""
        return [i for i, v in enumerate(self.variables) if v.hyper]

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
    def validate(self, genome: Sequence[int]) -> None:
        """Raise SpaceError naming the first bad position of ``genome``."""
        if len(genome) != len(self):
            raise SpaceError(f"genome has {len(genome)} values, the space has {len(self)} variables")
        for i, (g, v) in enumerate(zip(genome, self.variables)):
            if isinstance(g, bool) or not isinstance(g, int) or not 0 <= g < v.n_options:
                raise SpaceError(
                    f"genome[{i}] ({v.name}) = {g!r}: must be an option index 0..{v.n_options - 1}"
                    f" of {list(v.options)}")

    def decode(self, genome: Sequence[int]) -> dict[str, Any]:
        """Option values by variable name."""
        self.validate(genome)
        return {v.name: v.options[g] for g, v in zip(genome, self.variables)}

    def encode(self, values: Mapping[str, Any]) -> Genome:
        """Inverse of :meth:`decode`: option indices from option values by name."""
        genome = []
        for v in self.variables:
            if v.name not in values:
                raise SpaceError(f"no value for variable {v.name!r}")
            try:
                genome.append(v.options.index(values[v.name]))
            except ValueError:
                raise SpaceError(f"{v.name}: {values[v.name]!r} is not one of {list(v.options)}") from None
        return genome

    def sample(self, rng: random.Random | None = None) -> Genome:
        """A uniformly random genome (``rng`` defaults to the ``random`` module, as in DEAP)."""
        rng = rng or random
        return [rng.randrange(v.n_options) for v in self.variables]

    def sample_balanced(self, n: int, rng: random.Random | None = None) -> list[Genome]:
        """``n`` genomes in which each option of each variable appears ``n // k`` times (k options),
        the remaining ``n % k`` values drawn at random, then shuffled per variable.

        >>> space = SearchSpace([Variable("a", (0, 1, 2))])
        >>> sorted(g[0] for g in space.sample_balanced(6, random.Random(0)))
        [0, 0, 1, 1, 2, 2]
        """
        if n < 1:
            raise SpaceError(f"population size must be >= 1, got {n}")
        rng = rng or random
        columns = []
        for v in self.variables:
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
        ``linear: [low, high, n]``.

        >>> SearchSpace.from_dict({"act": {"options": ["relu", "tanh"]}}).names
        ['act']
        >>> SearchSpace.from_dict({"lr": {"hyper": True, "log": [0.001, 0.1, 3]}})["lr"].options
        (0.001, 0.01, 0.1)
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
            unknown = set(body) - {"options", "owns", "hyper", "log", "linear"}
            if unknown:
                raise SpaceError(f"{where}.{name}: unknown key(s) {sorted(unknown)}; allowed: options, owns,"
                                 " hyper, log, linear")
            hyper = body.get("hyper", False)
            if not isinstance(hyper, bool):
                raise SpaceError(f"{where}.{name}.hyper: must be true or false, got {hyper!r}")
            options = grid_options(body, f"{where}.{name}")
            owns = body.get("owns", []) or []
            if isinstance(owns, str):
                owns = [owns]
            variables.append(Variable(str(name), tuple(options), tuple(owns), hyper=hyper))
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
        return {v.name: {"options": list(v.options), "owns": list(v.owns), **({"hyper": True} if v.hyper else {})}
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
