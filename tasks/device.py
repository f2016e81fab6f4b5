"""Where a task puts its data and members: the ``device`` argument of the bundled tasks (digits, MNIST-1D, RL,
GAN), checked when the task is built.
"""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device | None, where: str = "task.args.device") -> torch.device:
    """The device a task argument names: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``, or ``"auto"`` (also ``None``):
    CUDA when torch sees a GPU, else the CPU (a Ray worker sees a GPU only with ``parallel.gpus_per_worker >
    0``). A GPU that torch does not see is an error that says so, raised when the task is built.

    >>> resolve_device("cpu")
    device(type='cpu')
    >>> resolve_device("gpu")
    Traceback (most recent call last):
    ValueError: task.args.device: 'gpu' is not a device; expected 'cpu', 'cuda', 'cuda:N' or 'auto'
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise ValueError(f"{where}: {device!r} is not a device; expected 'cpu', 'cuda', 'cuda:N' or 'auto'")
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"{where}: {device!r}, but torch sees no CUDA device in this process: use 'cpu' or"
                             " 'auto', or run where a GPU is visible (Ray workers need parallel.gpus_per_worker > 0)")
        if dev.index is not None and dev.index >= count:
            raise ValueError(f"{where}: {device!r}, but torch sees {count} CUDA device(s) (cuda:0..cuda:{count - 1})")
    return dev
