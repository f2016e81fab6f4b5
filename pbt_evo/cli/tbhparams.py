"""TensorBoard's HParams plugin data of a run: every member a session, with its genome and fitness.

The run's ``tb/`` gets the experiment once (``_hparams_/experiment``): each variable of the search
space as a hyperparameter whose domain is its options (a continuous one's: its bounds), and the metric ``hparams/fitness`` (with several
objectives, ``hparams/<objective>`` each). Each member gets a run of its own, ``tb/members/<id>``: its
session (``_hparams_/session_start_info``: its variables' values) and its fitness after every
generation it trained, at its epochs. TensorBoard's HPARAMS tab then shows the population as a table
and in parallel coordinates, one line per member.

Events are appended synchronously, one small file per member (a writer thread per member would be 512
threads for a population of 512); the files are TensorBoard's record format (``RecordWriter``).

>>> import tempfile
>>> from pbt_evo.individual import Individual
>>> from pbt_evo.space import SearchSpace, Variable
>>> space = SearchSpace([Variable("op", ("conv", "pool")), Variable("lr", (0.01, 0.1), hyper=True),
...                      Variable("wd", bounds=(0.0, 0.1), hyper=True)])
>>> tb = Path(tempfile.mkdtemp())
>>> writer = HParamsWriter(tb, space)
>>> ind = Individual([1, 0, 0.05], id=3); ind.fitness.values = (0.5,); ind.epochs = 2
>>> writer.record([ind])
>>> sorted(str(p.parent.relative_to(tb)) for p in tb.rglob("events.out.tfevents.*"))
['.', 'members/000003']
"""

from __future__ import annotations

import math
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..individual import Individual
from ..objectives import Objectives
from ..space import SearchSpace

METRIC = "hparams/fitness"


def _values(options: Sequence[Any]) -> list[Any]:
    """A variable's options as one of the domain types the plugin takes (all floats, bools or strings).

    >>> _values([1, 2.5]), _values(["relu", 3]), _values([True, False])
    ([1.0, 2.5], ['relu', '3'], [True, False])
    """
    if all(isinstance(o, bool) for o in options):
        return list(options)
    if all(isinstance(o, (int, float)) and not isinstance(o, bool) for o in options):
        return [float(o) for o in options]
    return [str(o) for o in options]


class HParamsWriter:
    """Appends the HParams plugin's summaries for each generation's trained members under ``tb``."""

    def __init__(self, tb: str | Path, space: SearchSpace, objectives: Objectives | None = None):
        from tensorboard.plugins.hparams import summary_v2 as hp

        self.tb = Path(tb)
        self.space = space
        self.domains = [None if v.continuous else _values(v.options) for v in space.variables]
        names = list(objectives.names) if objectives is not None and not objectives.single else []
        self.metrics = [METRIC] + [f"hparams/{n}" for n in names]
        self.objective_names = names
        self._files: dict[int, Path] = {}  # member id -> its event file (this process's)
        config = hp.hparams_config_pb(
            [hp.HParam(v.name, hp.RealInterval(*v.bounds) if d is None else hp.Discrete(d))
             for v, d in zip(space.variables, self.domains)],
            [hp.Metric(m, display_name=m.split("/", 1)[1]) for m in self.metrics])
        self._append(self._new_file(self.tb), [(config, 0)])

    def _new_file(self, folder: Path) -> Path:
        """An event file of this process in ``folder``, opened with TensorBoard's version record."""
        from tensorboard.compat.proto.event_pb2 import Event

        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.pbt_evo_hparams"
        k = 0
        while path.exists():  # a resumed run in the same second
            k += 1
            path = path.with_name(f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.pbt_evo_hparams{k}")
        self._write(path, [Event(wall_time=time.time(), file_version="brain.Event:2")])
        return path

    @staticmethod
    def _write(path: Path, events: list) -> None:
        from tensorboard.summary.writer.record_writer import RecordWriter

        with open(path, "ab") as f:
            writer = RecordWriter(f)
            for event in events:
                writer.write(event.SerializeToString())
            f.flush()

    def _append(self, path: Path, summaries: list[tuple[Any, int]]) -> None:
        from tensorboard.compat.proto.event_pb2 import Event

        now = time.time()
        self._write(path, [Event(wall_time=now, step=step, summary=summary) for summary, step in summaries])

    def record(self, members: Sequence[Individual]) -> None:
        """Each member's session (the first time it is seen) and its fitness (and objectives) now."""
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.plugins.hparams import summary_v2 as hp

        for ind in members:
            summaries: list[tuple[Any, int]] = []
            path = self._files.get(ind.id)
            if path is None:
                path = self._files[ind.id] = self._new_file(self.tb / "members" / f"{ind.id:06d}")
                values = {v.name: float(g) if d is None else d[g] for v, d, g in zip(self.space.variables, self.domains, ind)}
                summaries.append((hp.hparams_pb(values, trial_id=f"member {ind.id}"), ind.epochs))
            values = list(ind.fitness.values) if ind.fitness.valid else []
            if values and all(math.isfinite(v) for v in values):  # a failed member has no fitness to show
                scalars = [Summary.Value(tag=METRIC, simple_value=float(values[0]))]
                scalars += [Summary.Value(tag=f"hparams/{n}", simple_value=float(v))
                            for n, v in zip(self.objective_names, values)]
                summaries.append((Summary(value=scalars), ind.epochs))
            self._append(path, summaries)
