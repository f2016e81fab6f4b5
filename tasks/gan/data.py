"""Training images for the GAN task, as one ``uint8`` tensor ``(N, C, H, W)`` per worker.

Keeping uint8 (not float) keeps STL-10 at 48x48 (105,000 images) at ~0.7 GB; batches are scaled to
[-1, 1] with :func:`to_float`.

- ``cifar10``: CIFAR-10 train split, 32x32 (torchvision, ``data_dir/cifar-10-batches-py``).
- ``stl10``: STL-10 ``train+unlabeled``, resized 96 -> ``img_size`` (48) (torchvision, ``data_dir/stl10_binary``).
- ``digits``: scikit-learn's bundled 8x8 digits (1,797 images), bilinearly upsampled; for CPU demos.
- ``synthetic``: random images made locally, for smoke runs of paper configs without the data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

DATASETS: tuple[str, ...] = ("cifar10", "stl10", "digits", "synthetic")


class DataUnavailable(RuntimeError):
    """The dataset is not on disk (and was not downloaded); the message says where to put it."""


def _missing_message(name: str, data_dir: Path, folder: str, ctor: str) -> str:
    return (f"{name} not found: expected the folder {data_dir / folder} (data_dir={str(data_dir)!r}). "
            f"On a machine with internet run:\n"
            f"    python -c \"import torchvision; torchvision.datasets.{ctor.format(root=str(data_dir))}\"\n"
            f"and copy {folder}/ into {data_dir} here, or set task.args.data_dir to where it already is "
            f"(or pass download=True where there is internet).")


def load_cifar10(data_dir: str | Path, download: bool = False) -> torch.Tensor:
    """CIFAR-10 training images, ``(50000, 3, 32, 32)`` uint8."""
    import torchvision

    data_dir = Path(data_dir).expanduser().resolve()
    try:
        ds = torchvision.datasets.CIFAR10(str(data_dir), train=True, download=download)
    except RuntimeError as exc:  # torchvision: "Dataset not found or corrupted"
        raise DataUnavailable(_missing_message(
            "CIFAR-10", data_dir, "cifar-10-batches-py", "CIFAR10({root!r}, train=True, download=True)")) from exc
    return torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))


def load_stl10(data_dir: str | Path, img_size: int = 48, download: bool = False) -> torch.Tensor:
    """STL-10 ``train+unlabeled`` images resized to ``img_size``, ``(105000, 3, s, s)`` uint8."""
    import torchvision

    data_dir = Path(data_dir).expanduser().resolve()
    try:
        ds = torchvision.datasets.STL10(str(data_dir), split="train+unlabeled", download=download)
    except RuntimeError as exc:
        raise DataUnavailable(_missing_message(
            "STL-10", data_dir, "stl10_binary", "STL10({root!r}, split='train+unlabeled', download=True)")) from exc
    data = torch.from_numpy(ds.data)  # (N, 3, 96, 96) uint8
    if data.shape[-1] == img_size:
        return data
    out = torch.empty(data.shape[0], 3, img_size, img_size, dtype=torch.uint8)
    for start in range(0, data.shape[0], 5000):  # chunks bound the float copy's memory
        chunk = data[start:start + 5000].float()
        out[start:start + 5000] = F.interpolate(chunk, size=(img_size, img_size), mode="bilinear",
                                                antialias=True, align_corners=False).round().clamp(0, 255).byte()
    return out


def load_digits_images(img_size: int = 16, channels: int = 1) -> torch.Tensor:
    """scikit-learn's digits (values 0..16 at 8x8) upsampled to ``img_size``, ``(1797, channels, s, s)`` uint8."""
    from sklearn.datasets import load_digits

    x = torch.from_numpy(load_digits().images).float().unsqueeze(1) * (255.0 / 16.0)
    x = F.interpolate(x, size=(img_size, img_size), mode="bilinear", align_corners=False)
    return x.round().clamp(0, 255).byte().expand(-1, channels, -1, -1).contiguous()


def make_synthetic(n: int = 512, img_size: int = 32, channels: int = 3, seed: int = 0) -> torch.Tensor:
    """Smooth random images (low-resolution noise, upsampled), made locally with a fixed seed."""
    gen = torch.Generator().manual_seed(seed)
    low = torch.rand(n, channels, max(1, img_size // 4), max(1, img_size // 4), generator=gen) * 255.0
    return F.interpolate(low, size=(img_size, img_size), mode="bilinear", align_corners=False).round().byte()


def load_images(dataset: str, data_dir: str | Path | None = None, img_size: int = 32, channels: int = 3,
                download: bool = False, n_synthetic: int = 512) -> torch.Tensor:
    """The training images of ``dataset`` as uint8 ``(N, channels, img_size, img_size)``.

    Raises :class:`DataUnavailable` for CIFAR-10 / STL-10 missing under ``data_dir``.
    """
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {DATASETS}")
    if dataset == "digits":
        return load_digits_images(img_size, channels)
    if dataset == "synthetic":
        return make_synthetic(n_synthetic, img_size, channels)
    if data_dir is None:
        raise DataUnavailable(f"dataset {dataset!r} needs task.args.data_dir: the folder holding (or to hold) it")
    if channels != 3:
        raise ValueError(f"{dataset} images have 3 channels, got channels={channels}")
    if dataset == "cifar10":
        if img_size != 32:
            raise ValueError(f"CIFAR-10 images are 32x32, got img_size={img_size}")
        return load_cifar10(data_dir, download)
    return load_stl10(data_dir, img_size, download)


def to_float(batch: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1] (the generator's tanh range)."""
    return batch.float().div_(127.5).sub_(1.0)
