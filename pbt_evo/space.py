"""Categorical search spaces whose variables own network layers.

A genome is a list of option indices, one per variable, in the space's order. A variable may own
weights: the state-dict prefixes of the layers it decides. Mixing moves a variable's value from the
donor together with the weights under those prefixes; weightless variables (an activation, a pooling
choice) own nothing.
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
    """One categorical architecture variable.

    >>> Variable("layer0", ("identity", "conv3x3"), owns=("cells.0.op",)).n_options
    2
    """

    name: str
    options: tuple[Any, ...]
    owns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise SpaceError(f"variable name must be a non-empty string, got {self.name!r}")
        if len(self.options) < 1:
            raise SpaceError(f"variable {self.name!r}: needs at least one option")
        if len(set(map(repr, self.options))) != len(self.options):
            raise SpaceError(f"variable {self.name!r}: options repeat: {list(self.options)}")
        object.__setattr__(self, "options", tuple(self.options))
        object.__setattr__(self, "owns", tuple(self.owns))

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
        """Build from ``{name: {options: [...], owns: [...]}}`` or a list of ``{name, options, owns}``.

        >>> SearchSpace.from_dict({"act": {"options": ["relu", "tanh"]}}).names
        ['act']
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
            unknown = set(body) - {"options", "owns"}
            if unknown:
                raise SpaceError(f"{where}.{name}: unknown key(s) {sorted(unknown)}; allowed: options, owns")
            options = body.get("options")
            if not isinstance(options, Sequence) or isinstance(options, str) or not options:
                raise SpaceError(f"{where}.{name}.options: must be a non-empty list")
            owns = body.get("owns", []) or []
            if isinstance(owns, str):
                owns = [owns]
            variables.append(Variable(str(name), tuple(options), tuple(owns)))
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

    def to_dict(self) -> dict[str, dict[str, list]]:
        return {v.name: {"options": list(v.options), "owns": list(v.owns)} for v in self.variables}
