"""NAO's controller on a categorical genome: encoder, performance predictor and decoder (Luo et al.
2018, the NAO of Balanced NAO's Algorithm 1).

- encoder E: each variable's option is a token (one vocabulary, variable by variable); an LSTM (NAO's
  cell) or an MLP on the concatenated token embeddings (``cell="mlp"``, several times faster on a CPU)
  reads the genome's tokens, and its L2-normalised outputs, one vector per variable, are the continuous
  embedding ``e_x`` of the architecture;
- predictor f: an MLP on the mean of ``e_x``, a sigmoid: the (min-max normalised) score it predicts;
- decoder D: an LSTM (or MLP) reads ``e_x`` and a linear layer gives, per variable, logits over that
  variable's options only (a decoded genome is always valid).

Trained on (architecture, score) pairs with NAO's combined loss ``lambda * MSE(f(E(x)), s) + (1 -
lambda) * CE(D(E(x)), x)``. A new candidate comes from a gradient step of size eta on the predictor,
``e' = e + eta * df/de``, decoded by D; when the decoded genome is not new, the step is taken again
from ``e'`` (NAO_pytorch grows the step the same way until a new architecture appears).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..rng import kept_rng, seed_everything

CELLS = ("lstm", "mlp")


class SeqLSTM(nn.Module):
    """(B, L, d_in) -> (B, L, d_out): an LSTM's outputs."""

    def __init__(self, length: int, d_in: int, d_out: int, width: int):
        super().__init__()
        self.lstm = nn.LSTM(d_in, d_out, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lstm(x)[0]


class SeqMLP(nn.Module):
    """(B, L, d_in) -> (B, L, d_out): one hidden layer of ``width`` on the whole flattened sequence."""

    def __init__(self, length: int, d_in: int, d_out: int, width: int):
        super().__init__()
        self.length, self.d_out = length, d_out
        self.net = nn.Sequential(nn.Linear(length * d_in, width), nn.ReLU(), nn.Linear(width, length * d_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1)).view(len(x), self.length, self.d_out)


class NAOController(nn.Module):
    """Encoder, predictor and decoder for genomes with ``options[i]`` options at variable ``i``.

    >>> ctl = NAOController([3, 2])
    >>> e = ctl.encode([[2, 1], [0, 0]])
    >>> tuple(e.shape), tuple(ctl.predict(e).shape), len(ctl.decode(e))
    ((2, 2, 32), (2,), 2)
    """

    def __init__(self, options: Sequence[int], embedding: int = 16, hidden: int = 32, mlp: int = 64,
                 cell: str = "lstm"):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"cell {cell!r}: allowed values are {', '.join(CELLS)}")
        self.options = tuple(int(n) for n in options)
        self.offsets = tuple(int(x) for x in np.cumsum((0,) + self.options[:-1]))
        seq = SeqLSTM if cell == "lstm" else SeqMLP
        self.embed = nn.Embedding(sum(self.options), embedding)
        self.encoder = seq(len(self.options), embedding, hidden, 4 * mlp)
        self.predictor = nn.Sequential(nn.Linear(hidden, mlp), nn.ReLU(), nn.Linear(mlp, 1))
        self.decoder = seq(len(self.options), hidden, hidden, 4 * mlp)
        self.out = nn.Linear(hidden, sum(self.options))

    def encode(self, genomes: Sequence[Sequence[int]]) -> torch.Tensor:
        """``e_x``: (B, variables, hidden), each vector of unit length."""
        tokens = torch.as_tensor(np.asarray(genomes, dtype=np.int64)) + torch.tensor(self.offsets)
        return nn.functional.normalize(self.encoder(self.embed(tokens)), dim=-1)

    def predict(self, e: torch.Tensor) -> torch.Tensor:
        """f(e): the predicted normalised score in (0, 1), one per architecture."""
        return torch.sigmoid(self.predictor(e.mean(1))).squeeze(-1)

    def logits(self, e: torch.Tensor) -> list[torch.Tensor]:
        """The decoder's logits, one (B, options[i]) tensor per variable."""
        z = self.out(self.decoder(e))
        return [z[:, i, o:o + n] for i, (o, n) in enumerate(zip(self.offsets, self.options))]

    def decode(self, e: torch.Tensor) -> list[list[int]]:
        """D(e): the most likely genome of each embedding."""
        with torch.no_grad():
            cols = [z.argmax(-1).tolist() for z in self.logits(e)]
        return [list(g) for g in zip(*cols)]


@dataclass(frozen=True)
class FitResult:
    """The last epoch's mean losses and how many genomes the decoder reconstructs exactly afterwards."""

    mse: float
    ce: float
    reconstructed: float


def normalise(scores: Sequence[float]) -> np.ndarray:
    """Min-max normalised scores (NAO's targets); all equal: 0.5 each.

    >>> normalise([1, 2, 3]).tolist()
    [0.0, 0.5, 1.0]
    """
    s = np.asarray(scores, dtype=float)
    span = s.max() - s.min()
    return np.full_like(s, 0.5) if span <= 0 else (s - s.min()) / span


def fit(controller: NAOController, genomes: Sequence[Sequence[int]], scores: Sequence[float], epochs: int = 200,
        trade_off: float = 0.8, lr: float = 1e-3, batch_size: int = 32, seed: int = 0) -> FitResult:
    """Train the controller on (genome, score) pairs with the combined loss (``trade_off`` = lambda,
    NAO's 0.8); minibatches shuffled under ``seed``, the caller's random streams kept."""
    x = np.asarray(genomes, dtype=np.int64)
    target = torch.tensor(normalise(scores), dtype=torch.float32)
    opt = torch.optim.Adam(controller.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(int(seed))
    controller.train()
    mse = ce = 0.0
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        mse = ce = 0.0
        for start in range(0, len(x), batch_size):
            idx = perm[start:start + batch_size]
            e = controller.encode(x[idx.numpy()])
            loss_p = nn.functional.mse_loss(controller.predict(e), target[idx])
            loss_d = sum(nn.functional.cross_entropy(z, torch.as_tensor(x[idx.numpy(), i]))
                         for i, z in enumerate(controller.logits(e))) / len(controller.options)
            loss = trade_off * loss_p + (1 - trade_off) * loss_d
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            mse, ce = mse + loss_p.item() * len(idx) / len(x), ce + loss_d.item() * len(idx) / len(x)
    controller.eval()
    with torch.no_grad():
        decoded = controller.decode(controller.encode(x))
    exact = float(np.mean([list(d) == list(g) for d, g in zip(decoded, x.tolist())]))
    return FitResult(mse, ce, exact)


def new_controller(options: Sequence[int], seed: int, **kwargs: int | str) -> NAOController:
    """A controller initialised under ``seed`` (the caller's random streams kept); ``kwargs`` go to
    :class:`NAOController`."""
    with kept_rng():
        seed_everything(seed)
        return NAOController(options, **kwargs)


def gradient(controller: NAOController, e: torch.Tensor) -> torch.Tensor:
    """The gradient of the predictor's logit (f = sigmoid(logit)) at ``e``, each row its own: f's
    direction, without the sigmoid's flattening near 1, where the seeds, the best candidates, lie."""
    e = e.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(controller.predictor(e.mean(1)).sum(), e)
    return grad


def ascend(controller: NAOController, e: torch.Tensor, eta: float) -> torch.Tensor:
    """One gradient step of size ``eta`` on the predictor: ``e + eta * grad`` (:func:`gradient`).

    >>> ctl = new_controller([3, 2], seed=0)
    >>> e = ctl.encode([[1, 1]]).detach()
    >>> bool(ctl.predict(ascend(ctl, e, 0.1)) > ctl.predict(e))
    True
    """
    return (e.detach() + eta * gradient(controller, e)).detach()


def propose(controller: NAOController, seeds: Sequence[Sequence[int]], eta: float, known: Collection[tuple],
            max_steps: int = 20) -> list[list[int]]:
    """New genomes from the seed architectures: each seed's embedding ``e`` moved to ``e + t * eta *
    grad`` for t = 1, 2, ... (NAO's growing step size) until the decoder gives a genome that is neither
    in ``known`` nor proposed already (at most ``max_steps`` sizes; a seed that yields nothing new
    yields nothing)."""
    seen = {tuple(g) for g in known}
    out: list[list[int]] = []
    e = controller.encode(seeds).detach()
    grad = gradient(controller, e)
    for i in range(len(seeds)):
        for t in range(1, max_steps + 1):
            g = controller.decode(e[i:i + 1] + t * eta * grad[i:i + 1])[0]
            if tuple(g) not in seen:
                seen.add(tuple(g))
                out.append(g)
                break
    return out
