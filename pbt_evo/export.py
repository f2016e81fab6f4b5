"""The trained networks, usable without retraining: in memory, and as a run folder's ``best/``.

``best/`` holds ``model.pt`` (the model's state dict), ``genome.json`` (the genome, its architecture,
fitness and the task that builds it) and a README on how to load it; a multi-objective run's also holds
its Pareto front, ``front/<k>/`` in the same layout, and ``front.md``, a table of its members.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .individual import Individual
from .task import Task, TaskSpec


def export_module(task: Task, individual: Individual) -> torch.nn.Module:
    """The individual's trained network as a working ``nn.Module`` (no retraining).

    >>> # model = export_module(task, halloffame[0]); model.eval()
    """
    return individual.handle.materialise(task, individual).model


def save_best(folder: str | Path, model: torch.nn.Module, info: Mapping[str, Any], run_name: str) -> Path:
    """Write ``best/``: the model's state dict, ``info`` (with ``genome`` and ``task``) and how to load them.

    >>> # save_best("runs/digits/best", model, {"genome": [0, 1], "task": {...}, "fitness": 0.9}, "digits")
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), folder / "model.pt")
    (folder / "genome.json").write_text(json.dumps(dict(info), indent=2))
    (folder / "README.md").write_text(
        f"# Best network of run `{run_name}`\n\n"
        f"Fitness {info.get('fitness')} after {info.get('epochs')} epochs (member {info.get('id')}).\n\n"
        "Load it, trained, in two lines:\n\n```python\nimport pbt_evo\n"
        f"model, info = pbt_evo.load_best(\"{folder}\")\n```\n\n"
        "or by hand: build the task from `genome.json`'s `task` entry, then\n"
        "`task.build_model(info['genome']).load_state_dict(torch.load('model.pt'))`.\n")
    return folder


def load_best(run_dir: str | Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The best network of a finished run as a trained ``nn.Module`` (in eval mode), and its record;
    ``run_dir`` may also be a folder in ``best/``'s layout itself (``best/``, a member of ``best/front/``).

    >>> # model, info = load_best("runs/digits"); model(x)
    """
    folder = Path(run_dir) / "best"
    if not (folder / "genome.json").is_file() and (Path(run_dir) / "genome.json").is_file():
        folder = Path(run_dir)
    if not (folder / "genome.json").is_file():
        raise FileNotFoundError(f"{folder}/genome.json not found: the run has not finished; resume it with"
                                f" `python -m pbt_evo.run {run_dir} --resume`")
    info = json.loads((folder / "genome.json").read_text())
    task = TaskSpec(info["task"]["target"], info["task"].get("args", {})).build()
    model = task.build_model(info["genome"])
    model.load_state_dict(torch.load(folder / "model.pt", map_location="cpu"))
    model.eval()
    return model, info


def load_front(run_dir: str | Path) -> list[tuple[torch.nn.Module, dict[str, Any]]]:
    """Every trained network of a multi-objective run's Pareto front (``best/front/``, highest fitness
    first), each with its record (``objectives``: its value of each).

    >>> # for model, info in load_front("runs/mnist1d_multiobj"): print(info["objectives"])
    """
    root = Path(run_dir) / "best" / "front"
    if not root.is_dir():
        raise FileNotFoundError(f"{root} not found: not a finished multi-objective run (algorithm.objectives)")
    return [load_best(member) for member in sorted(p for p in root.iterdir() if (p / "genome.json").is_file())]
