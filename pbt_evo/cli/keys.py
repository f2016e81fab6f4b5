"""What a config key is: its default, its kind, what values it allows, and the checks of a value (for
:mod:`.config`'s schema). A default or a set of allowed values may be a name the library defines
(:class:`Library`), read only when needed, so that the rest of a config is checked without torch.

>>> type_ok(Key(None, "pair", ""), [0.4, 0.1]), type_ok(Key(None, "int", ""), True)
(True, False)
"""

from __future__ import annotations

import copy
import importlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

REQUIRED = object()


@dataclass(frozen=True)
class Library:
    """A name the library defines (``pbt_evo.<module>.<name>``), read when first needed: the variant registry,
    policies, the paper's defaults. The library imports torch, so the schema's other checks run first and a
    config that fails them stops at once (:func:`pbt_evo.cli.config.resolve`).

    >>> Library("weights", "WIDTH_POLICIES").get()
    ('adapt', 'fresh')
    """

    module: str
    name: str

    def get(self) -> Any:
        return getattr(importlib.import_module(f"pbt_evo.{self.module}"), self.name)


@dataclass(frozen=True)
class Key:
    default: Any  # a value, or a Library name (copied as a list when it is a tuple)
    kind: str  # int, float, str, bool, map, e_step, pair, str_or_none, int_or_none, float_or_none, choice,
    #            objectives, numbers_or_none
    doc: str
    choices: tuple | Library = ()
    check: Callable[[Any], bool] | None = None
    rule: str = ""

    def default_value(self) -> Any:
        value = self.default.get() if isinstance(self.default, Library) else self.default
        return list(value) if isinstance(value, tuple) else copy.deepcopy(value)

    def options(self) -> Any:
        return self.choices.get() if isinstance(self.choices, Library) else self.choices


def type_ok(key: Key, value: Any) -> bool:
    kind = key.kind
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if kind == "str":
        return isinstance(value, str) and value != ""
    if kind == "float_or_none":
        return value is None or type_ok(Key(None, "float", ""), value)
    if kind == "int_or_none":
        return value is None or (isinstance(value, int) and not isinstance(value, bool))
    if kind == "str_or_none":
        return value is None or (isinstance(value, str) and value != "")
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "map":
        return isinstance(value, Mapping)
    if kind == "choice":
        return value in key.options()
    if kind == "pair":
        return (isinstance(value, (list, tuple)) and len(value) == 2
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value))
    if kind == "objectives":
        return isinstance(value, list) and len(value) > 0
    if kind == "numbers_or_none":
        return value is None or (isinstance(value, list) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value))
    if kind == "e_step":
        if isinstance(value, int) and not isinstance(value, bool):
            return value > 0
        return (isinstance(value, Mapping) and 0 in value and all(
            isinstance(k, int) and k >= 0 and isinstance(v, int) and not isinstance(v, bool) and v > 0
            for k, v in value.items()))
    raise AssertionError(kind)


EXPECTED = {"int": "an integer", "float": "a number", "str": "a non-empty string", "bool": "true or false",
             "str_or_none": "a string or null", "int_or_none": "an integer or null", "map": "a mapping",
             "float_or_none": "a number or null",
             "pair": "a list of two numbers", "objectives": "a list such as [{fitness: max}, {params: min}]",
             "numbers_or_none": "a list of numbers or null",
             "e_step": "a positive integer or a schedule {0: step, epoch: step, ...}"}


def choice_error(at: str, dotted: str, value: Any, spec: Key) -> str | None:
    """The error of a value that is not one of a choice key's options (None: it is one, or no choice).

    >>> choice_error("c.yaml", "parallel.backend", "dask", Key("ray", "choice", "where", choices=("ray", "serial")))
    "c.yaml: 'parallel.backend' is 'dask'; expected one of ray, serial (where)"
    """
    if spec.kind == "choice" and value not in spec.options():
        return f"{at}: '{dotted}' is {value!r}; expected one of {', '.join(map(str, spec.options()))} ({spec.doc})"
    return None
