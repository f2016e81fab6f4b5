"""``GanTask``: the AdversarialNAS Gan / GanHard search spaces as a pbt_evo task, scored by -FID.

Training follows AdversarialNAS: hinge loss; Adam (betas 0.0, 0.9; lr 2e-4 for both networks); a
discriminator step on every batch and a generator step (on twice the batch) every ``n_critic`` = 5th
step; an EMA of the generator (decay 0.999); Xavier init. One epoch is one pass over the training set
in discriminator batches (``steps_per_epoch`` overrides it for small demos). The step counter travels
in the member's extras, so ``n_critic`` keeps its rhythm across generations.

Inheritance (what pbt_evo's mixing does with a member's state): ``member.model`` holds ``G``, ``D`` and
``G_ema``; every search variable owns its layer in ``G`` *and* in ``G_ema`` (see :mod:`tasks.gan.space`),
so a child that takes a donor's edge takes the donor's trained and EMA weights for it, both
shrink-perturbed by the core; all other weights (and EMA weights) come from the base parent. The two
optimizers ("gen" over ``G``, "dis" over ``D``) are over named parameters of ``member.model`` and follow
the core's optimizer-state policy; ``G_ema`` has no optimizer. Spectral-norm power-iteration vectors
(``weight_u``/``weight_v``) are float buffers of the owning layer and move with it; their scale does not
matter because training-mode power iteration renormalises them.

Fitness: ``-FID`` of ``G_ema`` on ``n_fid`` images against cached training-set statistics
(``fitness="fid"``, the default), or ``-FD`` in digits-classifier features (``fitness="fd_digits_classifier"``,
an offline CPU stand-in that is *not* FID). :meth:`GanMember.final_scores` gives FID on 50,000 images and
the Inception Score for the final report.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pbt_evo.task import Member, Task
from tasks.device import resolve_device

from .data import DATASETS, load_images, to_float
from .metrics import (METRICS, DigitsClassifierFeatures, FeatureExtractor, extract_features, frechet_distance,
                      generate, inception_score, load_inception, reference_statistics, stats_cache_name)
from .model import GanModel, build_gan_model, discriminator_step, generator_step, make_optimizers
from .space import PROJECTIONS, SPACES, build_space


def default_cache_dir(data_dir: str | Path | None) -> Path:
    """``$PBT_EVO_CACHE/gan``, else ``<data_dir>/pbt_evo_cache``, else ``~/.cache/pbt_evo/gan``."""
    if os.environ.get("PBT_EVO_CACHE"):
        return Path(os.environ["PBT_EVO_CACHE"]) / "gan"
    if data_dir is not None:
        return Path(data_dir).expanduser() / "pbt_evo_cache"
    return Path.home() / ".cache" / "pbt_evo" / "gan"


class GanTask(Task):
    """AdversarialNAS GAN search. Paper values: CIFAR-10 img 32, batch 40, gf 256, df 128, latent 120,
    bottom width 4; STL-10 img 48, batch 128, gf 270, bottom width 6.

    ``projections="stl10"``: the research code's fixed STL-10 latent projections (Gan space;
    :data:`tasks.gan.space.STL10_PROJECTIONS`). ``adam_eps`` (1e-8; the research code 1e-4) and
    ``d_branch2`` (True; False: the research code's GanHard cell, which lost its second branch) are what
    ``algorithm.research_code_compat`` sets (:attr:`research_code_args`).

    >>> task = GanTask(space="gan", dataset="synthetic", img_size=16, bottom_width=2, gf_dim=8, df_dim=8,
    ...                latent_dim=12, batch_size=4, fitness="fd_digits_classifier")
    >>> len(task.space)
    21
    """

    epoch_unit = "epoch"
    averaged_prefixes = ("G_ema.",)  # the EMA generator: an average of G's layers
    research_code_kept_apart = ("G_ema.",)  # the research code's EMA generator lived outside its model state
    # the research code's choices (algorithm.research_code_compat): Adam eps, the GanHard cell's lost branch
    research_code_args = {"adam_eps": 1e-4, "d_branch2": False}

    def __init__(self, space: str = "gan", dataset: str = "cifar10", data_dir: str | None = None,
                 n_fid: int = 5000, fitness: str = "fid", steps_per_epoch: int | None = None,
                 batch_size: int = 40, gf_dim: int = 256, df_dim: int = 128, latent_dim: int = 120,
                 bottom_width: int = 4, img_size: int = 32, channels: int = 3, n_critic: int = 5,
                 g_batch_multiplier: int = 2, lr_g: float = 2e-4, lr_d: float = 2e-4,
                 betas: Sequence[float] = (0.0, 0.9), ema_decay: float = 0.999, d_spectral_norm: bool = True,
                 cache_dir: str | None = None, download: bool = False, n_synthetic: int = 512,
                 eval_batch_size: int = 100, device: str | None = None, adam_eps: float = 1e-8,
                 d_branch2: bool = True, projections: str = "default"):
        if projections not in PROJECTIONS:
            raise ValueError(f"task.args.projections: {projections!r} is not one of {PROJECTIONS}")
        if space not in SPACES:
            raise ValueError(f"task.args.space: {space!r} is not one of {SPACES}")
        if dataset not in DATASETS:
            raise ValueError(f"task.args.dataset: {dataset!r} is not one of {DATASETS}")
        if fitness not in METRICS:
            raise ValueError(f"task.args.fitness: {fitness!r} is not one of {METRICS}")
        if img_size != 8 * bottom_width:
            raise ValueError(f"task.args: three x2 cells need img_size == 8 * bottom_width, "
                             f"got img_size={img_size}, bottom_width={bottom_width}")
        if latent_dim < 3:
            raise ValueError(f"task.args.latent_dim must be >= 3 (projections may read a third), got {latent_dim}")
        self.space_name, self.dataset, self.fitness = space, dataset, fitness
        self.space = build_space(space)
        self.dims = dict(gf_dim=gf_dim, df_dim=df_dim, latent_dim=latent_dim, bottom_width=bottom_width,
                         channels=channels, d_spectral_norm=d_spectral_norm, d_branch2=d_branch2,
                         projections=projections)
        self.adam_eps = adam_eps
        self.img_size, self.channels = img_size, channels
        self.n_fid, self.batch_size, self.n_critic = n_fid, batch_size, n_critic
        self.g_batch_multiplier, self.ema_decay = g_batch_multiplier, ema_decay
        self.lr_g, self.lr_d, self.betas = lr_g, lr_d, (float(betas[0]), float(betas[1]))
        self.eval_batch_size = eval_batch_size
        self.device = resolve_device(device)  # None: "auto", CUDA when torch sees a GPU
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir(data_dir)
        # Data first: a missing dataset should stop the worker before anything slow happens.
        self.images = load_images(dataset, data_dir, img_size, channels, download, n_synthetic)
        self.steps_per_epoch = steps_per_epoch or max(1, len(self.images) // batch_size)
        self._extractor: FeatureExtractor | None = None
        self._ref_stats: tuple[np.ndarray, np.ndarray] | None = None

    # -- pbt_evo interface ----------------------------------------------------------------------
    def build(self, genome: Sequence[int]) -> "GanMember":
        model = build_gan_model(self.space, genome, **self.dims).to(self.device)
        return GanMember(self, model)

    def cost(self, genome: Sequence[int]) -> float:
        """Relative training cost, in GFLOPs: one forward pass of ``G`` and of ``D`` on one sample, counted
        by ``torch.utils.flop_counter`` (a build without initialisation; the caller's generators are
        left alone), weighted as an epoch uses them: every step generates a batch and scores a real and a
        fake one, every ``n_critic``-th also a generator step on twice the batch. The scheduler uses it
        before a member's training time has been measured (the first generation).

        >>> task = GanTask(space="gan", dataset="synthetic", img_size=16, bottom_width=2, gf_dim=8, df_dim=8,
        ...                latent_dim=12, batch_size=4, fitness="fd_digits_classifier")
        >>> light = [0] * len(task.space)                          # nearest upsampling, no ops, ...
        >>> heavy = [len(v.options) - 1 for v in task.space]        # transposed convs, dilated 5x5 convs, ...
        >>> 0 < task.cost(light) < task.cost(heavy)
        True
        """
        from torch.utils.flop_counter import FlopCounterMode

        from pbt_evo.rng import kept_rng, skip_init

        with kept_rng(), skip_init():
            model = build_gan_model(self.space, genome, **self.dims)
        def flops(net: torch.nn.Module, x: torch.Tensor) -> tuple[int, torch.Tensor]:
            counter = FlopCounterMode(display=False)
            with torch.no_grad(), counter:
                out = net(x)
            return counter.get_total_flops(), out

        g_flops, fake = flops(model.G, torch.zeros(1, model.G.latent_dim))
        d_flops, _ = flops(model.D, fake)
        k = self.n_critic
        return ((k + 2) * g_flops + (2 * k + 2) * d_flops) / k / 1e9

    # -- fitness --------------------------------------------------------------------------------
    def extractor(self) -> FeatureExtractor:
        """The fitness feature extractor, built on first use (Inception loading is slow)."""
        if self._extractor is None:
            # building a network draws from torch's RNG; fork it so fitness does not depend on whether
            # this worker built the extractor before (pbt_evo seeds right before evaluate)
            with torch.random.fork_rng(devices=[]):
                if self.fitness == "fid":
                    self._extractor = load_inception(self.device)
                else:
                    self._extractor = DigitsClassifierFeatures(self.img_size, self.channels,
                                                               self.cache_dir).to(self.device)
        return self._extractor

    def reference_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Training-set statistics in the fitness features (cached on disk and in memory)."""
        if self._ref_stats is None:
            extractor = self.extractor()
            name = stats_cache_name(self.dataset, self.img_size, self.channels, len(self.images), extractor.name)
            self._ref_stats = reference_statistics(self.images, extractor, self.cache_dir / name,
                                                   self.eval_batch_size, self.device)
        return self._ref_stats

    def sample_batch(self) -> torch.Tensor:
        idx = torch.randint(len(self.images), (self.batch_size,))
        return to_float(self.images[idx]).to(self.device)


class GanMember(Member):
    """A generator/discriminator pair with its EMA generator and two Adam optimizers."""

    def __init__(self, task: GanTask, model: GanModel):
        self.task = task
        self.model = model
        self.optimizers = make_optimizers(model, task.lr_g, task.lr_d, task.betas, task.adam_eps)
        self.step = 0

    def train(self, epochs: int) -> dict[str, float]:
        """``epochs`` x ``steps_per_epoch`` discriminator steps, a generator step every ``n_critic``-th."""
        t = self.task
        self.model.train()
        d_losses, g_losses = [], []
        start = time.perf_counter()
        # Batches are drawn with replacement per step (not a shuffled pass): epochs of any length, same statistics.
        for _ in range(epochs * t.steps_per_epoch):
            d_losses.append(discriminator_step(self.model, self.optimizers["dis"], t.sample_batch()))
            if self.step % t.n_critic == 0:
                g_losses.append(generator_step(self.model, self.optimizers["gen"], t.batch_size * t.g_batch_multiplier,
                                               t.ema_decay, t.device))
            self.step += 1
        return {"d_loss": float(np.mean(d_losses)) if d_losses else float("nan"),
                "g_loss": float(np.mean(g_losses)) if g_losses else float("nan"),
                "train_seconds": time.perf_counter() - start}

    def evaluate(self) -> float:
        """``-FID`` (or ``-FD`` in digits-classifier features) of ``G_ema`` on ``n_fid`` images."""
        t = self.task
        mu, sigma = t.reference_stats()
        images = generate(self.model.G_ema, t.n_fid, t.eval_batch_size, t.device)
        return -frechet_distance(extract_features(t.extractor(), images, t.eval_batch_size, t.device), mu, sigma)

    def final_scores(self, n: int = 50000, splits: int = 10) -> dict[str, float]:
        """FID on ``n`` images of ``G_ema`` and the Inception Score (needs the Inception weights)."""
        t = self.task
        with torch.random.fork_rng(devices=[]):  # keep the caller's seed for the latents
            inception = load_inception(t.device)
        name = stats_cache_name(t.dataset, t.img_size, t.channels, len(t.images), inception.name)
        mu, sigma = reference_statistics(t.images, inception, t.cache_dir / name, t.eval_batch_size, t.device)
        pools, logits = [], []
        for start in range(0, n, t.eval_batch_size):
            images = generate(self.model.G_ema, min(t.eval_batch_size, n - start), t.eval_batch_size, t.device)
            pool, logit = inception.pool_and_logits(images.to(t.device))
            pools.append(pool.double().cpu().numpy())
            logits.append(logit.cpu())
        is_mean, is_std = inception_score(torch.cat(logits), splits)
        return {"fid": frechet_distance(np.concatenate(pools), mu, sigma), "is_mean": is_mean, "is_std": is_std}

    def extras_state(self) -> dict[str, Any]:
        return {"step": np.int64(self.step)}

    def load_extras(self, extras: Mapping[str, Any]) -> None:
        self.step = int(extras.get("step", 0))
