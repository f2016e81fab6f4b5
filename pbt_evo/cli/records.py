"""Individuals, weight handles and logbooks as plain records (:mod:`pbt_evo.plain`), for checkpoints.

An individual is its genome, fitness values, handle and every other attribute it carries; a handle is
its class name and fields, with each stored state replaced by the name ``store`` gives it. Reading
builds only the handle classes defined in this process (dataclass subclasses of ``WeightHandle``: the
library's, and a user's own); a record naming any other is refused, so nothing is imported or called
by name.

A recipe's steps (:class:`~pbt_evo.handles.Step` dataclasses) are recorded the same way, by class name
and fields. Checkpoints of pbt_evo 0.2, whose recipes were flat (``donor``, ``taken``, ``reinit``, ...),
are read into steps.

>>> from pbt_evo.handles import Inherit, MixedState, StoredState
>>> recipe = MixedState(StoredState("s0"), (Inherit(StoredState("s1"), (1,)),), seed=9)
>>> ind = Individual([0, 2], id=4, handle=recipe)
>>> ind.fitness.values = (float("-inf"),)
>>> back = individual_from_record(individual_record(ind, lambda h: h.ref), StoredState)
>>> back, back.handle.steps[0].variables, back.handle.steps[0].donor.ref, back.handle.base.ref
(Individual(id=4, genome=[0, 2], fitness=-inf, epochs=0), (1,), 's1', 's0')
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from deap import tools

from .. import plain
from ..handles import Inherit, MutateWeights, PerturbAll, Reinit, Step, StoredState, WeightHandle
from ..individual import Individual, plain_gene


class RecordError(ValueError):
    """A record that is not one this module wrote."""


def handle_classes() -> dict[str, type]:
    """The classes a record may name: dataclass subclasses of ``WeightHandle`` and of ``Step`` defined so far."""
    found: dict[str, type] = {}
    todo = [WeightHandle, Step]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            todo.append(sub)
            if dataclasses.is_dataclass(sub):
                found.setdefault(sub.__name__, sub)
    return found


def handle_record(handle: WeightHandle | None, store: Callable[[StoredState], str]) -> Any:
    """A handle as a record; ``store(stored_state)`` writes a state and returns its name."""
    if handle is None:
        return None
    if isinstance(handle, StoredState):
        return {"handle": "StoredState", "file": store(handle)}
    if not dataclasses.is_dataclass(handle):
        raise RecordError(f"cannot checkpoint a handle of type {type(handle).__name__} (not a dataclass)")
    fields = {}
    for f in dataclasses.fields(handle):
        value = getattr(handle, f.name)
        if isinstance(value, WeightHandle):
            fields[f.name] = {"$handle": handle_record(value, store)}
        elif isinstance(value, tuple) and value and all(isinstance(v, Step) for v in value):
            fields[f.name] = {"$steps": [handle_record(v, store) for v in value]}
        else:
            fields[f.name] = plain.encode(value, path=f"{type(handle).__name__}.{f.name}")
    return {"handle": type(handle).__name__, "fields": fields}


def handle_from_record(record: Any, stored: Callable[[str], StoredState]) -> WeightHandle | None:
    """The handle of a record; ``stored(name)`` gives the stored state written under that name."""
    if record is None:
        return None
    name = record.get("handle") if isinstance(record, dict) else None
    if name == "StoredState":
        return stored(str(record["file"]))
    classes = handle_classes()
    if name not in classes:
        raise RecordError(f"unknown weight handle {name!r} (known: {', '.join(sorted(classes))})")
    cls = classes[name]
    known = {f.name for f in dataclasses.fields(cls)}
    fields = {}
    for key, value in dict(record.get("fields", {})).items():
        tag = next(iter(value)) if isinstance(value, dict) and len(value) == 1 else None
        if tag == "$handle":
            fields[key] = handle_from_record(value["$handle"], stored)
        elif tag == "$steps":
            fields[key] = tuple(handle_from_record(v, stored) for v in value["$steps"])
        else:
            fields[key] = plain.decode(value)
    if name == "MixedState" and set(fields) - known:
        return legacy_recipe(fields)
    unknown = sorted(set(fields) - known)
    if unknown:
        raise RecordError(f"{name} has no field {unknown[0]!r}")
    return cls(**fields)


def legacy_recipe(fields: dict[str, Any]) -> WeightHandle:
    """A child recipe of pbt_evo 0.2 (flat fields) as steps, so its checkpoints resume unchanged."""
    from ..handles import MixedState

    steps: list[Step] = []
    if fields.get("perturb_all"):
        steps.append(PerturbAll(tuple(fields.get("shrink_perturb", (0.4, 0.1))), fields.get("optimizer_policy", "reset"),
                                tuple(fields.get("copied", ()))))
    else:
        if fields.get("taken"):
            steps.append(Inherit(fields["donor"], tuple(fields["taken"]), tuple(fields.get("shrink_perturb", (0.4, 0.1))),
                                 fields.get("optimizer_policy", "reset"), tuple(fields.get("copied", ()))))
        if fields.get("reinit"):
            steps.append(Reinit(tuple(fields["reinit"])))
        if fields.get("searl_seed") is not None:
            steps.append(MutateWeights(int(fields["searl_seed"]), tuple(fields.get("searl_skip", ()))))
    return MixedState(fields["base"], tuple(steps), int(fields.get("seed", 0)), fields.get("width_policy", "adapt"))


def individual_record(ind: Individual, store: Callable[[StoredState], str]) -> dict[str, Any]:
    """An individual as a record (genome, fitness values, handle, every other attribute)."""
    attrs = {k: v for k, v in vars(ind).items() if k not in ("fitness", "handle")}
    return {"genome": [plain_gene(g) for g in ind], "fitness": plain.encode(tuple(ind.fitness.values)),
            "weights": [float(w) for w in ind.fitness.weights],
            "handle": handle_record(ind.handle, store), "attrs": plain.encode(attrs, path=f"individual {ind.id}")}


def individual_from_record(record: Any, stored: Callable[[str], StoredState]) -> Individual:
    """The individual of a record (see :func:`individual_record`)."""
    try:
        weights = record.get("weights")  # several objectives: a WeightedFitness with these directions
        ind = Individual([plain_gene(g) for g in record["genome"]],
                         weights=None if weights in (None, [1.0]) else [float(w) for w in weights])
        values = plain.decode(record["fitness"])
        if values:
            ind.fitness.values = tuple(float(v) for v in values)
        for key, value in plain.decode(record["attrs"]).items():
            if not isinstance(key, str) or key in ("fitness", "handle"):
                raise RecordError(f"bad attribute {key!r}")
            if key == "changed":  # pbt_evo 0.2 stored the lineage diff; it is now derived from the base genome
                base = list(ind)
                for i, old, _ in value:
                    base[i] = old
                key, value = "base_genome", tuple(base) if value else None
            setattr(ind, key, value)
        handle = record["handle"]
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise RecordError(f"malformed individual record ({type(exc).__name__}: {exc})") from None
    ind.handle = handle_from_record(handle, stored)  # outside: what ``stored`` raises is the caller's
    return ind


def logbook_record(logbook: tools.Logbook) -> dict[str, Any]:
    """A DEAP logbook (its records, header and chapters) as a record."""
    return {"records": plain.encode(list(logbook)), "header": plain.encode(logbook.header),
            "log_header": bool(logbook.log_header), "buffindex": int(logbook.buffindex),
            "columns_len": plain.encode(logbook.columns_len),
            "chapters": {name: logbook_record(ch) for name, ch in logbook.chapters.items()}}


def logbook_from_record(record: Any) -> tools.Logbook:
    """The logbook of a record (what ``logbook.stream`` printed already included)."""
    try:
        book = tools.Logbook()
        book.extend(dict(r) for r in plain.decode(record["records"]))
        book.header = plain.decode(record["header"])
        book.log_header = bool(record["log_header"])
        book.buffindex = int(record["buffindex"])
        book.columns_len = plain.decode(record["columns_len"])
        for name, chapter in dict(record["chapters"]).items():
            book.chapters[str(name)] = logbook_from_record(chapter)
    except (KeyError, TypeError, ValueError) as exc:
        raise RecordError(f"malformed logbook record ({type(exc).__name__}: {exc})") from None
    return book
