"""The weight bank of a supernet: one set of tensors per (variable, option), one shared set for the rest.

A search space already says which variable owns which layers (:attr:`pbt_evo.space.Variable.owns`, by
state-dict prefix). So a supernet for any task is a dictionary: the tensor behind state-dict key ``k`` of
genome ``g``'s network is kept under ``(variable, option, k, shape)`` when variable ``i`` owns ``k``
(option ``g[i]``), else under ``(None, None, k, shape)``: the unowned layers (a stem, a head) are shared
by every architecture. The shape is part of the key because another variable (a width) may change the
shape of a layer it does not own. Optimizer state (e.g. Adam's moments) is kept under the same keys, per
optimizer name, so that a parameter's moments follow the parameter from one sampled network to the next.

A tensor seen for the first time is taken from the member it was built in (its fresh initialisation).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..space import SearchSpace
from ..task import Member

BankKey = tuple[Any, Any, str, tuple[int, ...]]


class WeightBank:
    """Shared tensors by (variable, option, state-dict key, shape), and their optimizer state.

    >>> from pbt_evo.space import Variable
    >>> space = SearchSpace([Variable("op", ("a", "b"), owns=("op",))])
    >>> bank = WeightBank(space)
    >>> bank.key([1], "op.weight", (2, 2)), bank.key([1], "head.bias", (2,))
    (('op', 1, 'op.weight', (2, 2)), (None, None, 'head.bias', (2,)))
    """

    def __init__(self, space: SearchSpace):
        self.space = space
        self.tensors: dict[BankKey, torch.Tensor] = {}
        self.optim: dict[tuple[str, BankKey], dict[str, Any]] = {}
        self._owner: dict[str, int | None] = {}

    def key(self, genome: Sequence[int], name: str, shape: Sequence[int]) -> BankKey:
        """Where state-dict entry ``name`` (of ``shape``) of ``genome``'s network is kept."""
        if name not in self._owner:
            self._owner[name] = self.space.owner(name)
        i = self._owner[name]
        if i is None:
            return (None, None, name, tuple(shape))
        return (self.space[i].name, int(genome[i]), name, tuple(shape))

    def keys_of(self, genome: Sequence[int], model: torch.nn.Module) -> dict[str, BankKey]:
        """Bank keys of every state-dict entry of ``model`` (built for ``genome``)."""
        return {name: self.key(genome, name, t.shape) for name, t in model.state_dict().items()}

    def load(self, genome: Sequence[int], member: Member) -> None:
        """Copy the bank's tensors (and optimizer state) into ``member``; entries the bank has not seen
        are added from the member as they are."""
        with torch.no_grad():
            for name, t in member.model.state_dict().items():
                k = self.key(genome, name, t.shape)
                if k in self.tensors:
                    t.copy_(self.tensors[k])
                else:
                    self.tensors[k] = t.detach().clone()
        for opt_name, opt, name, p in _optimized(member):
            saved = self.optim.get((opt_name, self.key(genome, name, p.shape)))
            if saved is None:
                opt.state.pop(p, None)  # a parameter the bank has no state for starts fresh
            else:
                opt.state[p] = {s: v.clone() if isinstance(v, torch.Tensor) else v for s, v in saved.items()}

    def store(self, genome: Sequence[int], member: Member) -> None:
        """Write ``member``'s tensors and optimizer state back (after training it)."""
        for name, t in member.model.state_dict().items():
            self.tensors[self.key(genome, name, t.shape)] = t.detach().clone()
        for opt_name, opt, name, p in _optimized(member):
            state = opt.state.get(p)
            if state:
                self.optim[(opt_name, self.key(genome, name, p.shape))] = {
                    s: v.detach().clone() if isinstance(v, torch.Tensor) else v for s, v in state.items()}

    def __len__(self) -> int:
        return len(self.tensors)


def _optimized(member: Member) -> list[tuple[str, torch.optim.Optimizer, str, torch.nn.Parameter]]:
    """(optimizer name, optimizer, parameter name, parameter) for every parameter of every optimizer."""
    names = {id(p): n for n, p in member.model.named_parameters(remove_duplicate=False)}
    return [(opt_name, opt, names[id(p)], p) for opt_name, opt in member.optimizers.items()
            for group in opt.param_groups for p in group["params"] if id(p) in names]
