"""Plain values: states and records as JSON plus arrays, the only form pbt_evo writes to disk.

:func:`encode` turns a tree of dicts, lists, tuples, strings, numbers, booleans, None, numpy arrays and
scalars and torch tensors into JSON-ready values in which each array is either inline (base64) or a
reference given by ``put``; :func:`decode` rebuilds the tree exactly (tuples stay tuples, ``-inf`` stays
``-inf``, an ``int64`` scalar stays one). Decoding looks nothing up by name and calls nothing it reads,
so reading a run folder executes no code, unlike pickle. Tags are one-key dicts whose key starts with
``$``; a dict with other keys than plain strings is stored as its list of pairs.

>>> doc = encode({"w": np.arange(3.0), "betas": (0.9, 0.999), "best": -math.inf, 2: "two"})
>>> back = decode(json.loads(json.dumps(doc)))
>>> back["betas"], back["best"], back[2], back["w"].tolist()
((0.9, 0.999), -inf, 'two', [0.0, 1.0, 2.0])
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

DTYPE_KINDS = "biuf"  # booleans, integers, floats: what safetensors stores and numpy reads without code


class PlainError(ValueError):
    """A value that has no plain form, or a document that is not one :func:`encode` wrote."""


def _array(x: Any, path: str) -> np.ndarray:
    if x.dtype.kind not in DTYPE_KINDS or x.dtype.hasobject:
        raise PlainError(f"cannot store {path or 'the value'}: arrays of dtype {x.dtype} are not supported"
                         " (booleans, integers and floats are)")
    return x if x.flags.c_contiguous else np.ascontiguousarray(x)  # (ascontiguousarray makes 0-d arrays 1-d)


def _inline(x: np.ndarray) -> dict[str, Any]:
    return {"dtype": x.dtype.str, "shape": list(x.shape), "b64": base64.b64encode(x.tobytes()).decode()}


def encode(value: Any, put: Callable[[np.ndarray], str] | None = None, path: str = "") -> Any:
    """JSON-ready form of ``value``; ``put(array) -> name`` stores arrays elsewhere (default: inline).

    >>> encode({"n": 3, "x": (1.5, math.nan)})
    {'n': 3, 'x': {'$tuple': [1.5, {'$float': 'nan'}]}}
    """
    def array_ref(x: np.ndarray) -> Any:
        x = _array(x, path)
        return put(x) if put is not None else _inline(x)

    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int) and not isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float) and not isinstance(value, np.floating):
        return float(value) if math.isfinite(value) else {"$float": repr(float(value))}
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu()
        if t.dtype == torch.bfloat16:  # numpy has no bfloat16: its bits travel as int16
            return {"$tensor": array_ref(t.view(torch.int16).numpy()), "dtype": "bfloat16"}
        return {"$tensor": array_ref(t.numpy())}
    if isinstance(value, np.ndarray):
        return {"$array": array_ref(value)}
    if isinstance(value, np.generic):
        return {"$scalar": array_ref(np.asarray(value))}
    if isinstance(value, (list, tuple)):
        items = [encode(v, put, f"{path}[{i}]") for i, v in enumerate(value)]
        return {"$tuple": items} if isinstance(value, tuple) else items
    if isinstance(value, Mapping):
        if all(isinstance(k, str) and not k.startswith("$") for k in value):
            return {k: encode(v, put, f"{path}/{k}" if path else k) for k, v in value.items()}
        return {"$items": [[encode(k, put, path), encode(v, put, f"{path}/{k}")] for k, v in value.items()]}
    raise PlainError(f"cannot store {path or 'the value'} of type {type(value).__name__}: states and records"
                     " hold arrays, tensors, numbers, strings, None, lists, tuples and dicts")


def _read_inline(doc: Any) -> np.ndarray:
    if not isinstance(doc, Mapping) or set(doc) != {"dtype", "shape", "b64"}:
        raise PlainError("malformed inline array")
    dtype = np.dtype(str(doc["dtype"]))
    if dtype.kind not in DTYPE_KINDS:
        raise PlainError(f"arrays of dtype {dtype} are not read")
    return np.frombuffer(base64.b64decode(doc["b64"]), dtype=dtype).reshape([int(n) for n in doc["shape"]]).copy()


def decode(doc: Any, get: Callable[[str], np.ndarray] | None = None) -> Any:
    """The value :func:`encode` made ``doc`` from; ``get(name)`` returns arrays stored by name.

    >>> decode({"$scalar": encode(np.int64(5))["$scalar"]})
    np.int64(5)
    """
    def array(ref: Any) -> np.ndarray:
        if isinstance(ref, str):
            if get is None:
                raise PlainError(f"array {ref!r} is stored elsewhere, but no store was given")
            return get(ref)
        return _read_inline(ref)

    if doc is None or isinstance(doc, (bool, int, float, str)):
        return doc
    if isinstance(doc, list):
        return [decode(v, get) for v in doc]
    if not isinstance(doc, Mapping):
        raise PlainError(f"malformed document: {type(doc).__name__}")
    tag = next(iter(doc), None)
    if isinstance(tag, str) and tag.startswith("$"):
        body = doc[tag]
        if tag == "$float":
            if body not in ("inf", "-inf", "nan"):
                raise PlainError(f"malformed float {body!r}")
            return float(body)
        if tag == "$tuple":
            return tuple(decode(v, get) for v in body)
        if tag == "$items":
            return {_key(decode(k, get)): decode(v, get) for k, v in body}
        if tag == "$array":
            return array(body)
        if tag == "$scalar":
            return array(body)[()]
        if tag == "$tensor":
            t = torch.from_numpy(np.array(array(body)))
            return t.view(torch.bfloat16) if doc.get("dtype") == "bfloat16" else t
        raise PlainError(f"unknown tag {tag!r}")
    return {k: decode(v, get) for k, v in doc.items()}


def _key(k: Any) -> Any:
    if isinstance(k, (list, dict, np.ndarray)):
        raise PlainError(f"malformed dict key {k!r}")
    return k


def dumps(value: Any) -> str:
    """Strict JSON (no NaN or Infinity literals) of ``encode(value)``.

    >>> dumps({"fitness": (-math.inf,)})
    '{"fitness": {"$tuple": [{"$float": "-inf"}]}}'
    """
    return json.dumps(encode(value), allow_nan=False)


def loads(text: str | bytes, get: Callable[[str], np.ndarray] | None = None) -> Any:
    """The value :func:`dumps` (or ``json.dumps(encode(...))``) wrote; ``get`` as in :func:`decode`.
    JSON's NaN/Infinity literals are refused (they are never written).

    >>> loads(dumps({"seed": 3, "pair": (1, 2)}))
    {'seed': 3, 'pair': (1, 2)}
    """
    try:
        return decode(json.loads(text, parse_constant=_refuse), get)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise PlainError(f"not valid JSON ({exc})") from None


def _refuse(name: str) -> Any:
    raise PlainError(f"non-standard JSON constant {name}")
