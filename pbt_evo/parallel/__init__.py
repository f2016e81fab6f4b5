"""Maps that train a population: ``toolbox.map = RayMap(spec, workers=2)`` or ``SerialMap(task)``.

- :mod:`~pbt_evo.parallel.protocol`: the contract (:class:`MapBase`: declared :class:`Call` s in, results
  out, run with a :class:`Context`) and the adapter that makes any DEAP map one (:class:`BatchMap`);
- :mod:`~pbt_evo.parallel.generation`: one generation of a population on a map, early starts included;
- :mod:`~pbt_evo.parallel.serial`: :class:`SerialMap`, everything in this process;
- :mod:`~pbt_evo.parallel.raymap`: :class:`RayMap`, persistent Ray actors (submit, wait, retry, respawn);
- :mod:`~pbt_evo.parallel.scheduler`: which call goes where (no Ray);
- :mod:`~pbt_evo.parallel.worker`: the actor.
"""

from .protocol import BatchMap, Call, Context, MapBase, Progress, as_stream, map_calls
from .raymap import RayMap
from .serial import SerialMap

__all__ = ["BatchMap", "Call", "Context", "MapBase", "Progress", "RayMap", "SerialMap", "as_stream", "map_calls"]
