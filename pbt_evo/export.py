"""The trained networks, usable without retraining: in memory, and as a run folder's ``best/``.

``best/`` holds ``model.safetensors`` (the model's state dict), ``genome.json`` (the genome, its
architecture, fitness and the task that builds it) and a README on how to load it; a multi-objective
run's also holds its Pareto front, ``front/<k>/`` in the same layout, and ``front.md``, a table of its
members. Weights are written and read as safetensors (:func:`save_weights`, :func:`load_weights`):
loading runs no code from the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from .individual import Individual
from .task import Task
from .trusted import trusted_spec
from .weights import as_tensor


def export_module(task: Task, individual: Individual) -> torch.nn.Module:
    """The individual's trained network as a working ``nn.Module`` (no retraining).

    >>> # model = export_module(task, halloffame[0]); model.eval()
    """
    return individual.handle.materialise(task, individual).model


WEIGHTS = "model.safetensors"


def save_weights(path: str | Path, weights: Mapping[str, Any]) -> Path:
    """Write a state dict (tensors or arrays by name) as a safetensors file; returns the path.

    >>> import tempfile
    >>> path = save_weights(Path(tempfile.mkdtemp()) / WEIGHTS, {"w": torch.ones(2)})
    >>> load_weights(path)["w"].tolist()
    [1.0, 1.0]
    """
    from safetensors.torch import save_file

    # clone: safetensors refuses tensors that share memory, and state dicts may hold views
    tensors = {k: as_tensor(v).detach().cpu().contiguous().clone() for k, v in weights.items()}
    save_file(tensors, str(path))
    return Path(path)


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file (see :func:`save_weights`); an old ``model.pt`` is refused."""
    path = Path(path)
    if not path.is_file():
        old = path.with_name("model.pt")
        if old.is_file():
            raise ValueError(f"{old} is an old pickle file, which can execute code when loaded; if you trust its"
                             f" source, convert its run folder once: python -m pbt_evo.convert {old.parents[1]}")
        raise FileNotFoundError(f"{path} not found")
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except SafetensorError as exc:
        raise ValueError(f"{path}: not a readable safetensors file ({exc})") from None


def save_best(folder: str | Path, model: torch.nn.Module, info: Mapping[str, Any], run_name: str) -> Path:
    """Write ``best/``: the model's state dict, ``info`` (with ``genome`` and ``task``) and how to load them.

    >>> # save_best("runs/digits/best", model, {"genome": [0, 1], "task": {...}, "fitness": 0.9}, "digits")
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_weights(folder / WEIGHTS, model.state_dict())
    (folder / "genome.json").write_text(json.dumps(dict(info), indent=2))
    (folder / "README.md").write_text(
        f"# Best network of run `{run_name}`\n\n"
        f"Fitness {info.get('fitness')} after {info.get('epochs')} epochs (member {info.get('id')}).\n\n"
        "Load it, trained, in two lines:\n\n```python\nimport pbt_evo\n"
        f"model, info = pbt_evo.load_best(\"{folder}\")\n```\n\n"
        "or by hand: build the task from `genome.json`'s `task` entry, then\n"
        "`task.build_model(info['genome']).load_state_dict(safetensors.torch.load_file('model.safetensors'))`.\n")
    return folder


def load_best(run_dir: str | Path, task: Task | None = None,
              trust: Iterable[str] = ()) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The best network of a finished run as a trained ``nn.Module`` (in eval mode), and its record;
    ``run_dir`` may also be a folder in ``best/``'s layout itself (``best/``, a member of ``best/front/``).

    The network is built by ``task`` when given; else by the task ``genome.json`` names, if an installed
    package registers it or ``trust`` names its target (:mod:`pbt_evo.trusted`: a run folder from
    elsewhere chooses no code).

    >>> # model, info = load_best("runs/digits"); model(x)
    """
    folder = best_folder(run_dir)
    info = json.loads((folder / "genome.json").read_text())
    if task is None:
        how = (f"pass trust=[{{target!r}}] to load_best, or the task itself: load_best({str(run_dir)!r},"
               " task=MyTask(...))")
        task = trusted_spec(info.get("task"), f"{folder}/genome.json", trust, how).build()
    model = task.build_model(info["genome"])
    model.load_state_dict(load_weights(folder / WEIGHTS))
    model.eval()
    return model, info


def best_folder(run_dir: str | Path) -> Path:
    """The folder in ``best/``'s layout that ``run_dir`` stands for: ``run_dir/best``, or ``run_dir`` itself;
    FileNotFoundError says what ``run_dir`` is instead (missing, unfinished, a front member's wrong name).

    >>> best_folder("/nonexistent/best/front/0")
    Traceback (most recent call last):
    ...
    FileNotFoundError: /nonexistent/best/front/0 does not exist
    """
    run = Path(run_dir)
    if (run / "best" / "genome.json").is_file():
        return run / "best"
    if (run / "genome.json").is_file():
        return run
    if not run.exists():
        members = sorted(p.name for p in run.parent.iterdir() if (p / "genome.json").is_file()) \
            if run.parent.name == "front" and run.parent.is_dir() else []
        raise FileNotFoundError(f"{run} does not exist" + (f"; the front's members are {', '.join(members)}"
                                                           f" (in {run.parent})" if members else ""))
    if (run / "config.yaml").is_file():
        raise FileNotFoundError(f"{run}/best/genome.json not found: the run has not finished; resume it with"
                                f" `python -m pbt_evo.run {run} --resume`")
    raise FileNotFoundError(f"{run} is neither a run folder (no config.yaml) nor a best/ folder (no genome.json)")


def load_front(run_dir: str | Path, task: Task | None = None,
               trust: Iterable[str] = ()) -> list[tuple[torch.nn.Module, dict[str, Any]]]:
    """Every trained network of a multi-objective run's Pareto front (``best/front/``, highest fitness
    first), each with its record (``objectives``: its value of each); ``task`` and ``trust`` as in
    :func:`load_best`.

    >>> # for model, info in load_front("runs/mnist1d_multiobj"): print(info["objectives"])
    """
    root = Path(run_dir) / "best" / "front"
    if not root.is_dir():
        raise FileNotFoundError(f"{root} not found: not a finished multi-objective run (algorithm.objectives)")
    return [load_best(member, task, trust) for member in sorted(p for p in root.iterdir()
                                                                 if (p / "genome.json").is_file())]
