"""Maps that train a population: ``toolbox.map = RayMap(spec, workers=2)`` or ``SerialMap(task)``.

- :mod:`~pbt_evo.parallel.protocol`: the contract (:class:`Stream`, :class:`MapBase`) and the adapter that
  makes any DEAP map one (:class:`BatchMap`);
- :mod:`~pbt_evo.parallel.serial`: :class:`SerialMap`, everything in this process;
- :mod:`~pbt_evo.parallel.raymap`: :class:`RayMap`, persistent Ray actors (submit, wait, retry, respawn);
- :mod:`~pbt_evo.parallel.scheduler`: which call goes where (no Ray);
- :mod:`~pbt_evo.parallel.worker`: the actor.
"""

from .protocol import BatchMap, MapBase, Progress, Stream, as_stream, map_by_stream
from .raymap import RayMap
from .serial import SerialMap

__all__ = ["BatchMap", "MapBase", "Progress", "RayMap", "SerialMap", "Stream", "as_stream", "map_by_stream"]
