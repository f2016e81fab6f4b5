"""The paper's DrQ-v2 search spaces: 36 variables for pixels, 36 for states.

Breakdown (it matches the paper's count, 36, and its size, ~4.6e21 = 10^3 * 4^29 * 2^4; as in the
authors' code, actor and critic each have their own representation-dimension variable, and each
network's fixed first layer and each trunk also get a searched activation):

=========  =====================================================================  ====
network    variables                                                              n
=========  =====================================================================  ====
encoder    layer1..3 (10 conv options; states: 4 MLP options), act0..3,           8
           spectral_norm
actor      layer1..3 (4 MLP options), act0..3, feature_dim, trunk_act,            10
           spectral_norm
critic     q1.layer1..3, q1.act0..3, q2.layer1..3, q2.act0..3, feature_dim,       18
           trunk_act, q1.spectral_norm, q2.spectral_norm
=========  =====================================================================  ====

``act0`` is the activation of the network's fixed first layer; ``feature_dim`` is the
representation dimension {25, 50, 100, 150}. The state space replaces the encoder's conv options
by the MLP options {identity, linear, residual0.5, residual2.0} (size 4^32 * 2^4 ~ 3.0e20).

Ownership (state-dict prefixes of ``member.model``; see :mod:`tasks.rl.networks` for the layout):

- ``encoder.layerI`` owns ``encoder.net.I``; ``actor.layerI`` owns ``actor.policy.I``;
  ``critic.qJ.layerI`` owns ``critic.QJ.I`` *and* ``critic_target.QJ.I`` (the target network's copy
  of a layer moves with it).
- ``actor.feature_dim`` owns ``actor.trunk`` and ``actor.policy.0``; ``critic.feature_dim`` owns
  ``critic.trunk``, ``critic.Q1.0``, ``critic.Q2.0`` and the same three in ``critic_target``: the
  layers whose shapes depend on it.
- Activations and spectral-norm switches own nothing. Spectral norm keeps the state-dict keys
  identical on and off (:class:`tasks.rl.networks.SNLinear`), so switching it needs no weights;
  its power-iteration vectors ``sn_u`` live inside the layers and move with them.
- With ``hidden_dims`` (``RLTask(hidden_dims=[...])``) two width variables follow the 36:
  ``actor.hidden_dim`` and ``critic.hidden_dim`` (both Q networks and the target). They own nothing;
  :mod:`tasks.rl.widths` declares their units, and a child of other widths gets its parents' layers
  adapted (:mod:`pbt_evo.widths`).
- Not owned, copied from the base parent: ``encoder.net.0``, ``actor.head``, ``critic.Q1_head``,
  ``critic.Q2_head`` (and their targets). Their shapes never depend on the genome (but for the input
  columns a hidden-width variable declares): every searchable layer preserves its input shape.

>>> len(pixel_space()), len(state_space())
(36, 36)
>>> round(pixel_space().log10_size, 2)
21.66
"""

from __future__ import annotations

from collections.abc import Sequence

from pbt_evo.space import SearchSpace, Variable

from .networks import ACTIVATIONS, CONV_OPS, LINEAR_OPS, N_SEARCHABLE

FEATURE_DIMS = (25, 50, 100, 150)
ACTS = tuple(ACTIVATIONS)  # identity, tanh, relu, swish
SPECTRAL = (False, True)


def _space(encoder_ops: tuple[str, ...], hidden_dims: Sequence[int] | None = None) -> SearchSpace:
    layers = range(1, N_SEARCHABLE + 1)
    acts = range(0, N_SEARCHABLE + 1)
    v: list[Variable] = []
    # encoder
    v += [Variable(f"encoder.layer{i}", encoder_ops, owns=(f"encoder.net.{i}",)) for i in layers]
    v += [Variable(f"encoder.act{i}", ACTS) for i in acts]
    v.append(Variable("encoder.spectral_norm", SPECTRAL))
    # actor
    v += [Variable(f"actor.layer{i}", LINEAR_OPS, owns=(f"actor.policy.{i}",)) for i in layers]
    v += [Variable(f"actor.act{i}", ACTS) for i in acts]
    v.append(Variable("actor.feature_dim", FEATURE_DIMS, owns=("actor.trunk", "actor.policy.0")))
    v.append(Variable("actor.trunk_act", ACTS))
    v.append(Variable("actor.spectral_norm", SPECTRAL))
    # critic: two Q networks; every critic layer also owns its copy in the target network
    for j in (1, 2):
        v += [Variable(f"critic.q{j}.layer{i}", LINEAR_OPS, owns=(f"critic.Q{j}.{i}", f"critic_target.Q{j}.{i}"))
              for i in layers]
        v += [Variable(f"critic.q{j}.act{i}", ACTS) for i in acts]
    v.append(Variable("critic.feature_dim", FEATURE_DIMS,
                      owns=tuple(f"{net}.{part}" for net in ("critic", "critic_target")
                                 for part in ("trunk", "Q1.0", "Q2.0"))))
    v.append(Variable("critic.trunk_act", ACTS))
    v += [Variable(f"critic.q{j}.spectral_norm", SPECTRAL) for j in (1, 2)]
    if hidden_dims is not None:  # width variables: they own no layer, tasks.rl.widths declares their units
        v += [Variable(f"{net}.hidden_dim", tuple(hidden_dims)) for net in ("actor", "critic")]
    return SearchSpace(v)


def pixel_space(hidden_dims: Sequence[int] | None = None) -> SearchSpace:
    """The paper's space for pixel observations (36 variables, ~4.6e21 architectures); with
    ``hidden_dims``, two more: the hidden width of the actor and of the critic (both Q networks)."""
    return _space(CONV_OPS, hidden_dims)


def state_space(hidden_dims: Sequence[int] | None = None) -> SearchSpace:
    """The same space for state observations: MLP options in the encoder (36 variables; 38 with
    ``hidden_dims``).

    >>> state_space((64, 128)).names[-2:]
    ['actor.hidden_dim', 'critic.hidden_dim']
    """
    return _space(LINEAR_OPS, hidden_dims)


def drqv2_default(space: SearchSpace) -> list[int]:
    """The genome closest to plain DrQ-v2: encoder of conv 3x3 layers (padded here), actor and
    Q networks with two hidden linear layers, ReLU, tanh trunk, feature_dim 50, no spectral norm.

    >>> pixel_space().decode(drqv2_default(pixel_space()))["encoder.layer3"]
    'conv3'
    """
    values = {}
    for var in space:
        name = var.name
        if name.endswith("feature_dim"):
            values[name] = 50
        elif name.endswith("trunk_act"):
            values[name] = "tanh"
        elif ".act" in name:
            values[name] = "relu"
        elif name.endswith("spectral_norm"):
            values[name] = False
        elif name.endswith("hidden_dim"):
            values[name] = var.options[len(var.options) // 2]
        elif name.startswith("encoder.layer"):
            values[name] = "conv3" if "conv3" in var.options else "linear"
        elif name.endswith("layer1"):
            values[name] = "linear"
        else:
            values[name] = "identity"
    return space.encode(values)
