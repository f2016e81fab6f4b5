"""Fitness and final scores of a generator: FID (pytorch-fid's Inception), Inception Score, and an
honestly named offline stand-in.

- **FID**: pool3 features (2048) of pytorch-fid's ``InceptionV3`` (the TF 2015-12-05 Inception weights
  ported by pytorch-fid, images resized to 299 bilinearly), mean/covariance, and
  ``pytorch_fid.fid_score.calculate_frechet_distance``. The training-set statistics are computed once and
  cached in an ``.npz`` keyed by dataset, size, channels, image count and extractor.
- **Inception Score**: softmax of the 1008-way logits of the same network (its ``fc`` layer, read from the
  same weights file, applied to the pool3 features, which is what torchvision's Inception does after pool3
  in eval mode), ``exp(E[KL(p(y|x) || p(y))])`` averaged over 10 splits. It follows the original IS
  recipe on the original weights, but pytorch-fid's resizing differs from the TF code, so values are
  close to, not identical with, published TF numbers.
- **Frechet distance in digits-classifier features** (``fd_digits_classifier``): a small CNN trained
  here on scikit-learn's digits; its penultimate 64 features replace Inception's. It runs offline on
  CPU for demos and is *not* FID: its numbers are not comparable with any published FID.

Weights: pytorch-fid loads Inception with ``torch.hub.load_state_dict_from_url``, which first looks for
``$TORCH_HOME/hub/checkpoints/pt_inception-2015-12-05-6726825d.pth``; :func:`load_inception` checks that
file and, when it is missing and cannot be downloaded, raises :class:`InceptionWeightsUnavailable`
naming the file and the folder.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import load_digits_images, to_float

INCEPTION_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
METRICS: tuple[str, ...] = ("fid", "fd_digits_classifier")


class InceptionWeightsUnavailable(RuntimeError):
    """The FID Inception weights are not in the torch hub cache and could not be downloaded."""


class FeatureExtractor(Protocol):
    name: str

    def features(self, images: torch.Tensor) -> np.ndarray:
        """Float images in [-1, 1], ``(B, C, H, W)`` -> ``(B, d)`` float64 features."""


def inception_weights_path() -> Path:
    """Where pytorch-fid's loader looks first: ``$TORCH_HOME/hub/checkpoints/<file>`` (read at call time)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS_FILE


class InceptionFeatures(nn.Module):
    """pytorch-fid's ``InceptionV3`` (pool3 block) plus the 1008-way ``fc`` of the same weights for IS."""

    name = "inception_pool3"

    def __init__(self, allow_download: bool = True):
        super().__init__()
        from pytorch_fid.inception import InceptionV3

        path = inception_weights_path()
        if not path.is_file() and not allow_download:
            raise InceptionWeightsUnavailable(_weights_message(path, None))
        try:
            self.net = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]], resize_input=True, normalize_input=True)
        except Exception as exc:  # urllib / hub errors when offline
            if path.is_file():
                raise
            raise InceptionWeightsUnavailable(_weights_message(path, exc)) from exc
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.fc = nn.Linear(2048, state["fc.weight"].shape[0])
        self.fc.load_state_dict({"weight": state["fc.weight"], "bias": state["fc.bias"]})
        self.eval().requires_grad_(False)

    @torch.no_grad()
    def pool_and_logits(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images in [-1, 1] (1 or 3 channels) -> (pool3 features ``(B, 2048)``, logits ``(B, 1008)``)."""
        x = (images.clamp(-1, 1) + 1) / 2  # pytorch-fid expects [0, 1]
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        pool = self.net(x)[0].flatten(1)
        return pool, self.fc(pool)

    def features(self, images: torch.Tensor) -> np.ndarray:
        return self.pool_and_logits(images)[0].double().cpu().numpy()


def _weights_message(path: Path, exc: Exception | None) -> str:
    why = f" and downloading it failed ({type(exc).__name__}: {exc})" if exc else ""
    return (f"FID needs the Inception weights file {path.name} in the folder {path.parent} "
            f"(= $TORCH_HOME/hub/checkpoints; TORCH_HOME={os.environ.get('TORCH_HOME', '<unset, ~/.cache/torch>')})"
            f": it is missing{why}. On a machine with internet run\n"
            f"    python -c \"from pytorch_fid.inception import fid_inception_v3; fid_inception_v3()\"\n"
            f"and copy ~/.cache/torch/hub/checkpoints/{path.name} to {path.parent}/ here. For an offline demo "
            f"use fitness 'fd_digits_classifier' (not FID).")


def load_inception(device: torch.device | str = "cpu", allow_download: bool = True) -> InceptionFeatures:
    """The FID/IS network on ``device``; raises :class:`InceptionWeightsUnavailable` when offline without weights."""
    return InceptionFeatures(allow_download).to(device)


class DigitsClassifierFeatures(nn.Module):
    """Penultimate features of a small CNN trained on scikit-learn's digits at a given size/channels.

    Trained once (a few seconds on CPU, seeded, without touching the caller's RNG) and cached.
    """

    name = "digits_classifier"

    def __init__(self, img_size: int, channels: int, cache_dir: str | Path, epochs: int = 8):
        super().__init__()
        # features are taken before the last ReLU: dead ReLU units would make the covariance singular
        self.body = nn.Sequential(
            nn.AdaptiveAvgPool2d(16), nn.Conv2d(channels, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
            nn.Linear(32 * 16, 64))
        self.classify = nn.Sequential(nn.ReLU(), nn.Linear(64, 10))
        path = Path(cache_dir) / f"digits_classifier_{img_size}px_{channels}ch.pt"
        if path.is_file():
            self.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        else:
            self._fit(img_size, channels, epochs)
            _atomic_save(lambda f: torch.save(self.state_dict(), f), path)
        self.eval().requires_grad_(False)
        # Workers that train the classifier at the same time may end with slightly different weights;
        # naming the features by a hash of the weights keys cached statistics to exactly this network.
        digest = hashlib.sha1(b"".join(t.detach().cpu().numpy().tobytes() for t in self.state_dict().values()))
        self.name = f"digits_classifier_{digest.hexdigest()[:10]}"

    def _fit(self, img_size: int, channels: int, epochs: int) -> None:
        from sklearn.datasets import load_digits

        x = to_float(load_digits_images(img_size, channels))
        y = torch.from_numpy(load_digits().target).long()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            opt = torch.optim.Adam(self.parameters(), lr=3e-3)
            for _ in range(epochs):
                for idx in torch.randperm(len(x)).split(64):
                    loss = F.cross_entropy(self.classify(self.body(x[idx])), y[idx])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> np.ndarray:
        return self.body(images).double().cpu().numpy()


def activation_statistics(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of features ``(n, d)``, as pytorch-fid computes them."""
    return np.mean(feats, axis=0), np.cov(feats, rowvar=False)


def frechet_distance(feats: np.ndarray, mu_ref: np.ndarray, sigma_ref: np.ndarray) -> float:
    """Frechet distance of ``feats`` to reference statistics, by pytorch-fid's ``calculate_frechet_distance``."""
    from pytorch_fid.fid_score import calculate_frechet_distance

    mu, sigma = activation_statistics(feats)
    return float(calculate_frechet_distance(mu, sigma, mu_ref, sigma_ref))


@torch.no_grad()
def extract_features(extractor: FeatureExtractor, images: torch.Tensor, batch_size: int = 100,
                     device: torch.device | str = "cpu") -> np.ndarray:
    """Features of uint8 (or [-1, 1] float) images, in batches."""
    out = []
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size]
        batch = to_float(batch) if batch.dtype == torch.uint8 else batch
        out.append(extractor.features(batch.to(device)))
    return np.concatenate(out)


@torch.no_grad()
def generate(G: nn.Module, n: int, batch_size: int = 100, device: torch.device | str = "cpu") -> torch.Tensor:
    """``n`` images of ``G`` (in eval mode, restored afterwards) from standard normal latents."""
    was_training = G.training
    G.eval()
    try:
        return torch.cat([G(torch.randn(min(batch_size, n - s), G.latent_dim, device=device)).cpu()
                          for s in range(0, n, batch_size)])
    finally:
        G.train(was_training)


def reference_statistics(images: torch.Tensor, extractor: FeatureExtractor, cache_file: str | Path,
                         batch_size: int = 100, device: torch.device | str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Training-set feature statistics, computed once and cached in ``cache_file`` (an ``.npz``)."""
    cache_file = Path(cache_file)
    if cache_file.is_file():
        with np.load(cache_file) as f:
            return f["mu"], f["sigma"]
    mu, sigma = activation_statistics(extract_features(extractor, images, batch_size, device))
    _atomic_save(lambda f: np.savez(f, mu=mu, sigma=sigma), cache_file)
    return mu, sigma


def stats_cache_name(dataset: str, img_size: int, channels: int, n_images: int, extractor_name: str) -> str:
    """File name of cached statistics; every input that changes them is in the key."""
    return f"stats_{dataset}_{img_size}px_{channels}ch_{n_images}img_{extractor_name}.npz"


def inception_score(logits: torch.Tensor | np.ndarray, splits: int = 10) -> tuple[float, float]:
    """Inception Score (mean, std over ``splits``) from 1008-way Inception logits."""
    probs = torch.softmax(torch.as_tensor(logits, dtype=torch.float64), dim=1)
    scores = []
    for part in probs.chunk(splits):
        p_y = part.mean(dim=0, keepdim=True)
        kl = (part * (torch.log(part + 1e-12) - torch.log(p_y + 1e-12))).sum(dim=1).mean()
        scores.append(float(torch.exp(kl)))
    return float(np.mean(scores)), float(np.std(scores))


def _atomic_save(write, path: Path) -> None:
    """Write to a temporary file and rename: workers computing the same cache never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=path.suffix)
    os.close(fd)
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
