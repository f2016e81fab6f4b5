"""Where the hidden units of DrQ-v2's actor and critic are, for the width variables ``actor.hidden_dim``
and ``critic.hidden_dim`` (:func:`tasks.rl.spaces.state_space` with ``hidden_dims``).

One width group per MLP: ``actor.policy``, ``critic.Q1``, ``critic.Q2``. A Q network's group holds the
same slices of its copy in ``critic_target``, so the target's units are mapped exactly as the critic's
are and the soft update keeps pairing each target unit with its critic unit. In each MLP (layout in
:mod:`tasks.rl.networks`):

- the fixed first layer ``<mlp>.0`` makes the units (rows, bias and spectral-norm vector ``sn_u``);
- a ``linear`` layer makes them and reads them; a ``residualM`` block reads them (``linear1``'s columns),
  normalises them (``norm``) and adds to them (``linear2``'s rows), and its inner ``int(M * hidden)``
  units form a group of their own (``scale=M``);
- the head reads them.

A widening that gives every unit the same number of copies (e.g. 64 -> 128) keeps the networks' function
exactly, LayerNorm included; spectral norm is not kept (the normalised matrix has other singular values).

>>> from tasks.rl.spaces import drqv2_default, state_space
>>> space = state_space((64, 128))
>>> axes = unit_axes(space.decode(drqv2_default(space)))
>>> sorted(axes), axes["critic.Q1"].split
(['actor.policy', 'critic.Q1', 'critic.Q2'], (('critic.Q1.1.linear.weight', 1), ('critic_target.Q1.1.linear.weight', 1), ('critic.Q1_head.weight', 1), ('critic_target.Q1_head.weight', 1)))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pbt_evo.widths import UnitAxis

from .networks import N_SEARCHABLE

SN = ("weight", "bias", "sn_u")  # a SNLinear's slices indexed by its output units


def _rows(layer: str) -> list[str]:
    return [f"{layer}.{k}" for k in SN]


def mlp_axes(variable: str, arch: Mapping[str, Any], genes: str, copies: Sequence[str],
             heads: Sequence[str]) -> dict[str, UnitAxis]:
    """The groups of one MLP whose ``layerI`` genes are ``<genes>.layerI``, present at each of ``copies``
    (state-dict prefixes, e.g. the critic's and the target's), read by ``heads``.

    >>> arch = {"actor.layer1": "residual0.5", "actor.layer2": "identity", "actor.layer3": "linear"}
    >>> axes = mlp_axes("actor.hidden_dim", arch, "actor", ["actor.policy"], ["actor.head"])
    >>> sorted(axes), axes["actor.policy.1.mid"].scale
    (['actor.policy', 'actor.policy.1.mid'], 0.5)
    """
    copy: list[str | tuple[str, int]] = [r for p in copies for r in _rows(f"{p}.0.linear")]
    split: list[str | tuple[str, int]] = []
    inner: dict[str, UnitAxis] = {}
    for i in range(1, N_SEARCHABLE + 1):
        op = arch[f"{genes}.layer{i}"]
        if op == "linear":
            copy += [r for p in copies for r in _rows(f"{p}.{i}.linear")]
            split += [f"{p}.{i}.linear.weight" for p in copies]
        elif op.startswith("residual"):
            copy += [f"{p}.{i}.{k}" for p in copies for k in ("norm.weight", "norm.bias", *_rows("linear2"))]
            split += [f"{p}.{i}.linear1.weight" for p in copies]
            inner[f"{copies[0]}.{i}.mid"] = UnitAxis(
                variable, copy=[r for p in copies for r in _rows(f"{p}.{i}.linear1")],
                split=[f"{p}.{i}.linear2.weight" for p in copies], scale=float(op[len("residual"):]))
    split += [f"{h}.weight" for h in heads]
    return {copies[0]: UnitAxis(variable, copy=tuple(copy), split=tuple(split)), **inner}


def unit_axes(arch: Mapping[str, Any]) -> dict[str, UnitAxis]:
    """The unit axes of a decoded architecture; none when the space has no hidden-width variables."""
    axes: dict[str, UnitAxis] = {}
    if "actor.hidden_dim" in arch:
        axes.update(mlp_axes("actor.hidden_dim", arch, "actor", ["actor.policy"], ["actor.head"]))
    if "critic.hidden_dim" in arch:
        for j in (1, 2):
            axes.update(mlp_axes("critic.hidden_dim", arch, f"critic.q{j}", [f"critic.Q{j}", f"critic_target.Q{j}"],
                                 [f"critic.Q{j}_head", f"critic_target.Q{j}_head"]))
    return axes
