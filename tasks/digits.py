"""A small, fast, real task: classify scikit-learn's bundled 8x8 digits (no download).

Network: a fixed 3x3 conv stem (1 -> ``channels``), three searchable cells, global pooling, dropout and
a fixed linear head. Each cell is an op followed by an activation; every op maps ``channels`` to
``channels`` at 8x8, so any op can replace any other (what mixing needs).

Search space (8 variables, 5^3 * 4^3 * 2 * 3 = 48,000 architectures):

==========  =========================================================  ======================
variable    options                                                    owns
==========  =========================================================  ======================
op0..op2    identity, conv3x3, conv5x5, sepconv3x3, resblock3x3 (BN)   ``cells.<i>.op``  
act0..act2  relu, tanh, swish, identity                                nothing
pool        avg, max (width-independent)                               nothing
dropout     0.0, 0.1, 0.25                                             nothing
==========  =========================================================  ======================

The stem and the head belong to no variable: a child takes them from its base parent.
One epoch is one pass over the training split; fitness is validation accuracy.

>>> task = DigitsTask()
>>> len(task.space), round(task.space.log10_size, 2)
(8, 4.68)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from pbt_evo.space import SearchSpace, Variable
from pbt_evo.task import Task
from tasks.device import resolve_device
from tasks.minibatch import MinibatchMember

OPS = ("identity", "conv3x3", "conv5x5", "sepconv3x3", "resblock3x3")
ACTS = ("relu", "tanh", "swish", "identity")
N_CELLS = 3


def make_space(n_cells: int = N_CELLS) -> SearchSpace:
    """The digits search space (see the module docstring)."""
    ops = [Variable(f"op{i}", OPS, owns=(f"cells.{i}.op",)) for i in range(n_cells)]
    acts = [Variable(f"act{i}", ACTS) for i in range(n_cells)]
    return SearchSpace(ops + acts + [Variable("pool", ("avg", "max")), Variable("dropout", (0.0, 0.1, 0.25))])


def make_op(name: str, c: int) -> nn.Module:
    if name == "identity":
        return nn.Identity()
    if name == "conv3x3":
        return nn.Conv2d(c, c, 3, padding=1)
    if name == "conv5x5":
        return nn.Conv2d(c, c, 5, padding=2)
    if name == "sepconv3x3":
        return nn.Sequential(nn.Conv2d(c, c, 3, padding=1, groups=c), nn.Conv2d(c, c, 1))
    if name == "resblock3x3":
        return ResBlock(c)
    raise ValueError(f"unknown op {name!r}; allowed: {', '.join(OPS)}")


def make_act(name: str) -> nn.Module:
    return {"relu": nn.ReLU(), "tanh": nn.Tanh(), "swish": nn.SiLU(), "identity": nn.Identity()}[name]


class ResBlock(nn.Module):
    """conv3x3 -> BatchNorm -> ReLU -> conv3x3, plus the input."""

    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(),
                                  nn.Conv2d(c, c, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Cell(nn.Module):
    def __init__(self, op: str, act: str, c: int):
        super().__init__()
        self.op = make_op(op, c)
        self.act = make_act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.op(x))


class DigitsNet(nn.Module):
    """The searchable classifier for one decoded architecture."""

    def __init__(self, arch: dict, channels: int = 16, n_cells: int = N_CELLS, n_classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, channels, 3, padding=1), nn.ReLU())
        self.cells = nn.ModuleList(Cell(arch[f"op{i}"], arch[f"act{i}"], channels) for i in range(n_cells))
        self.pool = nn.AdaptiveAvgPool2d(1) if arch["pool"] == "avg" else nn.AdaptiveMaxPool2d(1)
        self.dropout = nn.Dropout(arch["dropout"])
        self.head = nn.Linear(channels, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for cell in self.cells:
            x = cell(x)
        return self.head(self.dropout(self.pool(x).flatten(1)))


def load_splits(seed: int = 0, val_fraction: float = 0.15, test_fraction: float = 0.15) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """scikit-learn's digits as (N, 1, 8, 8) floats in [0, 1], split train/val/test by a fixed permutation.

    >>> {k: len(v[0]) for k, v in load_splits().items()}
    {'train': 1257, 'val': 270, 'test': 270}
    """
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(data.target, dtype=torch.long)
    perm = torch.from_numpy(np.random.RandomState(seed).permutation(len(y)))
    n_val, n_test = round(val_fraction * len(y)), round(test_fraction * len(y))
    parts = {"val": perm[:n_val], "test": perm[n_val:n_val + n_test], "train": perm[n_val + n_test:]}
    return {k: (x[idx], y[idx]) for k, idx in (("train", parts["train"]), ("val", parts["val"]), ("test", parts["test"]))}


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


class DigitsMember(MinibatchMember):
    def __init__(self, model: DigitsNet, data: dict, batch_size: int, lr: float):
        self.model = model
        self.data = data
        self.batch_size = batch_size
        self.optimizers = {"adam": torch.optim.Adam(model.parameters(), lr=lr)}

    def evaluate(self) -> float:
        return accuracy(self.model, *self.data["val"])

    def test_accuracy(self) -> float:
        return accuracy(self.model, *self.data["test"])

    def test_score(self) -> float:
        """Accuracy on the held-out test split (never used for fitness)."""
        return self.test_accuracy()


class DigitsTask(Task):
    """Digits classification (see the module docstring); ``channels`` sets the width of every cell.
    ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``; :func:`tasks.device.resolve_device`)
    holds the data and trains the members; a network is initialised on the CPU, then moved, so a fresh
    member has the same weights on every device.

    >>> member = DigitsTask().build([1, 2, 3, 0, 1, 2, 0, 1])
    >>> 0.0 <= member.evaluate() <= 1.0
    True
    """

    reuse_members = True  # a member is its model + optimizer (no other state): RayMap may continue it live

    def __init__(self, channels: int = 16, batch_size: int = 64, lr: float = 3e-3, data_seed: int = 0,
                 device: str = "cpu"):
        if channels < 1 or batch_size < 1 or lr <= 0:
            raise ValueError("channels and batch_size must be >= 1 and lr > 0")
        self.channels, self.batch_size, self.lr = channels, batch_size, lr
        self.device = resolve_device(device)
        self.space = make_space()
        self.data = {k: (x.to(self.device), y.to(self.device)) for k, (x, y) in load_splits(data_seed).items()}

    def build_model(self, genome: Sequence[int]) -> DigitsNet:
        return DigitsNet(self.space.decode(genome), self.channels).to(self.device)

    def build(self, genome: Sequence[int]) -> DigitsMember:
        return DigitsMember(self.build_model(genome), self.data, self.batch_size, self.lr)

    def naswot_batch(self, size: int = 64) -> torch.Tensor:
        """The first ``size`` training images: the fixed minibatch of the NASWOT score."""
        return self.data["train"][0][:size]

    def cost(self, genome: Sequence[int]) -> float:
        weights = {"identity": 0.0, "conv3x3": 1.0, "conv5x5": 2.8, "sepconv3x3": 0.3, "resblock3x3": 2.2}
        return 1.0 + sum(weights[self.space[i].options[genome[i]]] for i in range(N_CELLS))
