"""A member's state as one safetensors file: its arrays as tensors, the rest as JSON in the header.

The header's ``pbt_evo`` entry holds the state's tree (:mod:`pbt_evo.plain`) with each array named
``a00000``, ``a00001``, ...; safetensors parses the file without running code, and the tree is decoded
without looking anything up by name. :func:`to_bytes` returns the file's bytes so that the caller writes
them as it needs (atomically, with a checksum); :func:`read` reads one back.

>>> data = to_bytes({"model": {"w": np.ones(2, np.float32)}, "extras": {"step": np.int64(4)}})
>>> state = from_bytes(data)
>>> state["model"]["w"].tolist(), state["extras"]["step"]
([1.0, 1.0], np.int64(4))
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from . import plain

FORMAT = "pbt_evo.state/1"


class StateFileError(ValueError):
    """A file that is not a state file pbt_evo wrote (damaged, another format, or crafted)."""


def to_bytes(state: Mapping[str, Any]) -> bytes:
    """The safetensors file of ``state`` (a dict tree of arrays, tensors and plain values)."""
    from safetensors.numpy import save

    arrays: dict[str, np.ndarray] = {}

    def put(x: np.ndarray) -> str:
        name = f"a{len(arrays):05d}"
        arrays[name] = x
        return name

    tree = plain.encode(dict(state), put)
    return save(arrays, metadata={"format": FORMAT, "pbt_evo": json.dumps(tree, allow_nan=False)})


def _decode(metadata: Mapping[str, str] | None, get: Any, where: str) -> dict[str, Any]:
    if not metadata or metadata.get("format") != FORMAT or "pbt_evo" not in metadata:
        raise StateFileError(f"{where}: not a pbt_evo state file (format {(metadata or {}).get('format')!r},"
                             f" expected {FORMAT!r})")
    try:
        state = plain.loads(metadata["pbt_evo"], get)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise StateFileError(f"{where}: malformed state ({exc})") from None
    if not isinstance(state, dict):
        raise StateFileError(f"{where}: malformed state (not a dict)")
    return state


def from_bytes(data: bytes, where: str = "state") -> dict[str, Any]:
    """The state in a file's bytes; :class:`StateFileError` if they are not a state file."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    try:
        arrays = load(data)
        metadata = _metadata(data)
    except (SafetensorError, ValueError) as exc:
        raise StateFileError(f"{where}: not a safetensors file ({exc})") from None
    return _decode(metadata, _getter(arrays, where), where)


def read(path: str | Path) -> dict[str, Any]:
    """The state in a state file (its arrays read through a memory map, writable copies).

    >>> # state = read("runs/digits/checkpoints/gen_00006/states/00000.safetensors")
    """
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            metadata = f.metadata()
            names = set(f.keys())

            def get(name: str) -> np.ndarray:
                if name not in names:
                    raise StateFileError(f"{path}: the state names array {name!r}, which the file lacks")
                return f.get_tensor(name)

            return _decode(metadata, get, str(path))
    except (SafetensorError, OSError) as exc:
        raise StateFileError(f"{path}: not a readable safetensors file ({exc})") from None


def _getter(arrays: Mapping[str, np.ndarray], where: str):
    def get(name: str) -> np.ndarray:
        if name not in arrays:
            raise StateFileError(f"{where}: the state names array {name!r}, which the file lacks")
        return arrays[name]

    return get


def _metadata(data: bytes) -> dict[str, str] | None:
    """The ``__metadata__`` of a safetensors header (8-byte length, then JSON)."""
    n = int.from_bytes(data[:8], "little")
    if n <= 0 or 8 + n > len(data):
        raise ValueError("header length out of range")
    return json.loads(data[8:8 + n]).get("__metadata__")
