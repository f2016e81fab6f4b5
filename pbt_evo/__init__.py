"""pbt_evo: neural architecture search by population based training (PBT-NAS) as a DEAP extension.

>>> from deap import base, tools
>>> import pbt_evo
>>> toolbox = base.Toolbox()
>>> toolbox.register("select", pbt_evo.sel_truncation, tau=0.25)
>>> toolbox.register("survivors", pbt_evo.sure_survivors, tau=0.25)  # optional: no barrier for them
"""

from .algorithms import Generation, LoopState, ea_pbt, exploit, step_at
from .export import export_module, load_best, load_front
from .handles import (FreshState, Inherit, MixedState, MutateWeights, PerturbAll, Reinit, StoredState, TrainResult,
                      capture, restore)
from .hyper import HyperparameterTask
from .individual import FitnessMax, Individual, WeightedFitness
from .objectives import Objectives
from .operators import (cx_mix, cx_none, init_population, mut_explore, mut_none, mut_resample, mut_searl,
                        mut_shrink_perturb, mut_weights, n_selected, no_survivors, pair_fitter_of_two, pair_itself,
                        pair_one, pair_random, pair_ranked, pair_self, sel_all, sel_none, sel_truncation,
                        sure_survivors)
from .parallel import BatchMap, Call, Context, MapBase, RayMap, SerialMap
from .pareto import TrainedFront, hypervolume, nsga2_order, sel_nsga2, sure_survivors_nsga2
from .space import SearchSpace, SpaceError, Variable, linear_grid, log_grid
from .task import Member, Task, TaskSpec
from .train import train_member
from .variants import VARIANTS, Variant, make_toolbox
from .weights import inherit_model, searl_weight_mutation, shrink_perturb

__version__ = "0.2.0"
__all__ = [
    "Generation", "LoopState", "ea_pbt", "exploit", "step_at",
    "export_module", "load_best", "load_front",
    "FreshState", "Inherit", "MixedState", "MutateWeights", "PerturbAll", "Reinit", "StoredState", "TrainResult",
    "capture", "restore", "HyperparameterTask",
    "FitnessMax", "Individual", "WeightedFitness", "Objectives",
    "cx_mix", "cx_none", "init_population", "mut_explore", "mut_none", "mut_resample", "mut_searl",
    "mut_shrink_perturb", "mut_weights", "n_selected", "no_survivors", "pair_fitter_of_two", "pair_itself",
    "pair_one", "pair_random", "pair_ranked", "pair_self", "sel_all", "sel_none", "sel_truncation", "sure_survivors",
    "BatchMap", "Call", "Context", "MapBase", "RayMap", "SerialMap",
    "TrainedFront", "hypervolume", "nsga2_order", "sel_nsga2", "sure_survivors_nsga2",
    "SearchSpace", "SpaceError", "Variable", "linear_grid", "log_grid",
    "Member", "Task", "TaskSpec",
    "train_member",
    "VARIANTS", "Variant", "make_toolbox",
    "inherit_model", "searl_weight_mutation", "shrink_perturb",
]
