"""One-shot, weight-sharing NAS for any pbt_evo task: Balanced NAO (Luo, Qin and Chen) and NAO-WS.

- :mod:`.bank`: the supernet's weights, one set per (variable, option) plus the shared layers;
- :mod:`.supernet`: one one-shot step (sample, load, train a few minibatches, write back), evaluation
  with shared weights;
- :mod:`.sampling`: uniform or size-proportional sampling (BNAO's equation 3), the
  ``size_proportional`` initial population;
- :mod:`.controller`: NAO's encoder, performance predictor and decoder on categorical genomes;
- :mod:`.nao`: Algorithm 1 (candidate pool, supernet training, evaluation, controller, new candidates);
- :mod:`.budget`: the budget rule in member-epochs, comparable with PBT-NAS;
- :mod:`.ranking`: BNAO's ranking experiment (pairwise accuracy, Kendall tau).

The run folder and the ``rank`` command are in :mod:`pbt_evo.cli.oneshot`.
"""

from .bank import WeightBank
from .sampling import (
           SAMPLINGS,
           init_population_size_proportional,
           model_size,
           sampling_probabilities,
)
from .supernet import Supernet

__all__ = ["SAMPLINGS", "Supernet", "WeightBank", "init_population_size_proportional",
           "model_size", "sampling_probabilities"]
