"""``python -m pbt_evo.convert runs/<name>``: rewrite a run folder of an older pbt_evo without pickles.

pbt_evo 0.2 wrote checkpoints (``loop.pkl``, ``states/*.pkl``), ``best/model.pt`` and ``soup*/model.pt``
as pickles, which execute code when they are loaded; pbt_evo now refuses to read them. Converting loads
each of them once, so run it only on a run folder whose origin you trust; it writes the same content as
JSON and safetensors (:mod:`pbt_evo.cli.checkpoint`, :mod:`pbt_evo.export`), then deletes the pickles.
The run then resumes as any other (``python -m pbt_evo.run runs/<name> --resume``).
"""

from __future__ import annotations

import argparse
import pickle
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import torch

from ..export import WEIGHTS, save_weights
from ..handles import Inherit, MixedState, StoredState
from . import checkpoint
from .records import legacy_recipe
from .runlock import RunFolderBusy, RunLock

LOOP_KEYS = ("version", "generation", "population", "halloffame", "random", "numpy")


def load_pickle_checkpoint(folder: str | Path) -> dict[str, Any]:
    """Read a checkpoint in the old pickle format (this executes whatever code its files contain)."""
    folder = Path(folder)
    with open(folder / "loop.pkl", "rb") as f:
        data = pickle.load(f)
    states: dict[str, StoredState] = {}

    def handle_of(h: Any) -> Any:
        if isinstance(h, MixedState) and "steps" not in vars(h):  # pbt_evo 0.2's flat recipe
            fields = dict(vars(h))
            return handle_of(legacy_recipe({**fields, "donor": fields.get("donor")}))
        if isinstance(h, MixedState):
            steps = tuple(replace(s, donor=handle_of(s.donor)) if isinstance(s, Inherit) else s for s in h.steps)
            return replace(h, base=handle_of(h.base), steps=steps)
        if isinstance(h, StoredState) and isinstance(h.ref, str):
            if h.ref not in states:
                with open(folder / h.ref, "rb") as f:
                    states[h.ref] = StoredState(pickle.load(f))
            return states[h.ref]
        return h

    for key in ("population", "halloffame"):
        for ind in data[key]:
            ind.handle = handle_of(ind.handle)
    return data


def convert(run_dir: str | Path, log: Callable[[str], None] = print) -> int:
    """Convert every pickle file of a run folder; returns how many were converted.

    >>> # convert("runs/old_run")
    """
    run = Path(run_dir)
    if not (run / "config.yaml").is_file():
        raise FileNotFoundError(f"{run} is not a pbt_evo run folder (no config.yaml)")
    done = 0
    with RunLock(run):
        for folder in checkpoint.folders(run):
            if (folder / "loop.pkl").is_file() and not (folder / checkpoint.MANIFEST).is_file():
                data = load_pickle_checkpoint(folder)
                payload = {k: v for k, v in data.items() if k not in LOOP_KEYS}
                checkpoint.save(run, data["generation"], data["population"], data["halloffame"], payload, keep=0,
                                rng={"random": data["random"], "numpy": data["numpy"]})
                log(f"converted {folder}")
                done += 1
        for old in [run / "best" / "model.pt", *run.glob("soup*/model.pt")]:
            if old.is_file():
                save_weights(old.with_name(WEIGHTS), torch.load(old, map_location="cpu", weights_only=True))
                old.unlink()
                log(f"converted {old} -> {old.with_name(WEIGHTS)}")
                done += 1
    return done


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pbt_evo.convert", description=__doc__.splitlines()[0])
    p.add_argument("run", help="a run folder written by pbt_evo 0.2 (runs/<name>); only one you trust")
    args = p.parse_args(argv)
    try:
        n = convert(args.run)
    except (FileNotFoundError, RunFolderBusy, checkpoint.WriteError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.run}: {n} file(s) converted" + (f"; resume with python -m pbt_evo.run {args.run} --resume"
                                                   if n else " (nothing in pickle format)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
