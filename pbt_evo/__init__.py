"""pbt_evo: neural architecture search by population based training (PBT-NAS) as a DEAP extension.

>>> from deap import base, tools
>>> import pbt_evo
>>> toolbox = base.Toolbox()
>>> toolbox.register("select", pbt_evo.sel_truncation, tau=0.25)
>>> toolbox.register("survivors", pbt_evo.sure_survivors, tau=0.25)  # optional: no barrier for them
"""

from .algorithms import Generation, LoopState, ea_pbt, exploit, step_at
from .export import export_module, load_best, load_front
from .handles import FreshState, MixedState, StoredState, TrainResult, capture, restore
from .hyper import HyperparameterTask
from .individual import FitnessMax, Individual, WeightedFitness
from .objectives import Objectives
from .operators import (cx_mix, init_population, mut_explore, mut_resample, mut_searl, mut_weights, n_selected,
                        pair_random, pair_ranked, pair_self, sel_truncation, sure_survivors)
from .parallel import BatchMap, MapBase, RayMap, SerialMap
from .pareto import TrainedFront, hypervolume, nsga2_order, sel_nsga2, sure_survivors_nsga2
from .space import SearchSpace, SpaceError, Variable, linear_grid, log_grid
from .task import Member, Task, TaskSpec
from .train import train_member
from .variants import VARIANTS, make_toolbox
from .weights import inherit_model, searl_weight_mutation, shrink_perturb

__version__ = "0.2.0"
__all__ = [
    "Generation", "LoopState", "ea_pbt", "exploit", "step_at",
    "export_module", "load_best", "load_front",
    "FreshState", "MixedState", "StoredState", "TrainResult", "capture", "restore", "HyperparameterTask",
    "FitnessMax", "Individual", "WeightedFitness", "Objectives",
    "cx_mix", "init_population", "mut_explore", "mut_resample", "mut_searl", "mut_weights", "n_selected",
    "pair_random", "pair_ranked", "pair_self", "sel_truncation", "sure_survivors",
    "BatchMap", "MapBase", "RayMap", "SerialMap",
    "TrainedFront", "hypervolume", "nsga2_order", "sel_nsga2", "sure_survivors_nsga2",
    "SearchSpace", "SpaceError", "Variable", "linear_grid", "log_grid",
    "Member", "Task", "TaskSpec",
    "train_member",
    "VARIANTS", "make_toolbox",
    "inherit_model", "searl_weight_mutation", "shrink_perturb",
]
