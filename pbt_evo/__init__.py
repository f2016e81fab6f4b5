"""pbt_evo: neural architecture search by population based training (PBT-NAS) as a DEAP extension.

>>> from deap import base, tools
>>> import pbt_evo
>>> toolbox = base.Toolbox()
>>> toolbox.register("select", pbt_evo.sel_truncation, tau=0.25)
>>> toolbox.register("survivors", pbt_evo.sure_survivors, tau=0.25)  # optional: no barrier for them
"""

from .algorithms import Generation, LoopState, ea_pbt, exploit, step_at
from .handles import FreshState, MixedState, StoredState, TrainResult, capture, restore
from .individual import FitnessMax, Individual
from .operators import (cx_mix, init_population, mut_resample, mut_searl, mut_weights, n_selected, pair_random,
                        pair_self, sel_truncation, sure_survivors)
from .parallel import RayMap, SerialMap
from .report import load_best
from .space import SearchSpace, SpaceError, Variable
from .task import Member, Task, TaskSpec
from .train import export_module, train_member
from .weights import inherit_model, searl_weight_mutation, shrink_perturb

__version__ = "0.1.0"
__all__ = [
    "Generation", "LoopState", "ea_pbt", "exploit", "step_at",
    "FreshState", "MixedState", "StoredState", "TrainResult", "capture", "restore",
    "FitnessMax", "Individual",
    "cx_mix", "init_population", "mut_resample", "mut_searl", "mut_weights", "n_selected", "pair_random",
    "pair_self", "sel_truncation", "sure_survivors",
    "RayMap", "SerialMap", "load_best",
    "SearchSpace", "SpaceError", "Variable",
    "Member", "Task", "TaskSpec",
    "export_module", "train_member",
    "inherit_model", "searl_weight_mutation", "shrink_perturb",
]
