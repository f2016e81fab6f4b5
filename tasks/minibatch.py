"""Members trained by minibatches of cross-entropy: what the bundled classification tasks (digits, MNIST-1D)
share, including the minibatch steps one-shot search needs (:meth:`~pbt_evo.task.Member.train_steps`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch

from pbt_evo.task import Member


def minibatches(n: int, batch_size: int, epochs: int | None = None, steps: int | None = None) -> Iterator[torch.Tensor]:
    """Index minibatches of a training split of ``n`` samples: ``epochs`` passes, each over a new
    permutation (drawn from torch's generator as its pass starts), or the first ``steps`` minibatches of
    such passes; what :meth:`Member.train` and :meth:`Member.train_steps` of the bundled tasks iterate.

    >>> _ = torch.manual_seed(0); [b.tolist() for b in minibatches(4, 3, epochs=1)]
    [[0, 1, 3], [2]]
    >>> len(list(minibatches(10, 3, steps=7)))
    7
    """
    if (epochs is None) == (steps is None):
        raise ValueError("give either epochs or steps")
    done, passes = 0, 0
    while (epochs is None or passes < epochs) and (steps is None or done < steps):
        perm = torch.randperm(n)
        passes += 1
        for start in range(0, n, batch_size):
            if steps is not None and done == steps:
                return
            done += 1
            yield perm[start:start + batch_size]


class MinibatchMember(Member):
    """A member trained by minibatches of cross-entropy on ``self.data["train"]`` (inputs, labels) with
    ``self.optimizers["adam"]``, ``self.batch_size`` samples a minibatch: :meth:`train`, :meth:`train_steps`
    and :meth:`steps_per_epoch` of the bundled classification tasks (digits, MNIST-1D). Subclasses set
    ``model``, ``data``, ``batch_size``, ``optimizers`` and implement :meth:`evaluate`."""

    data: Mapping[str, tuple[torch.Tensor, torch.Tensor]]
    batch_size: int

    def train(self, epochs: int) -> dict[str, float]:
        return self._fit(minibatches(len(self.data["train"][1]), self.batch_size, epochs=epochs))

    def train_steps(self, steps: int) -> dict[str, float]:
        """Train ``steps`` minibatches (one-shot search); each call starts a new permutation of the data."""
        return self._fit(minibatches(len(self.data["train"][1]), self.batch_size, steps=steps))

    def steps_per_epoch(self) -> int:
        return -(-len(self.data["train"][1]) // self.batch_size)

    def _fit(self, batches: Iterator[torch.Tensor]) -> dict[str, float]:
        x, y = self.data["train"]
        opt = self.optimizers["adam"]
        self.model.train()
        total, count = 0.0, 0
        for idx in batches:
            loss = torch.nn.functional.cross_entropy(self.model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, count = total + loss.item() * len(idx), count + len(idx)
        return {"train_loss": total / max(count, 1)}
