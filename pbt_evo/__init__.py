"""pbt_evo: neural architecture search by population based training (PBT-NAS) as a DEAP extension.

>>> from deap import base, tools
>>> import pbt_evo
>>> toolbox = base.Toolbox()
>>> toolbox.register("select", pbt_evo.sel_truncation, tau=0.25)
>>> toolbox.register("survivors", pbt_evo.sure_survivors, tau=0.25)  # optional: no barrier for them
"""

import importlib
from typing import Any

# what each name is imported from, on first use (PEP 562): `import pbt_evo` and the command line's config
# checks do not import torch and Ray
_FROM = {
    "algorithms": ("Generation", "LoopState", "ea_pbt", "exploit", "step_at"),
    "export": ("export_module", "load_best", "load_front"),
    "handles": ("FreshState", "Inherit", "MixedState", "MutateWeights", "PerturbAll", "Reinit", "StoredState",
                "TrainResult", "capture", "restore"),
    "hyper": ("HyperparameterTask",),
    "individual": ("FitnessMax", "Individual", "WeightedFitness"),
    "objectives": ("Objectives",),
    "operators": ("cx_mix", "cx_none", "init_population", "mut_explore", "mut_none", "mut_resample", "mut_searl",
                  "mut_shrink_perturb", "mut_weights", "n_selected", "no_survivors", "pair_fitter_of_two",
                  "pair_itself", "pair_one", "pair_random", "pair_ranked", "pair_self", "sel_all", "sel_none",
                  "sel_truncation", "sure_survivors"),
    "parallel": ("BatchMap", "Call", "Context", "MapBase", "RayMap", "SerialMap"),
    "pareto": ("TrainedFront", "hypervolume", "nsga2_order", "sel_nsga2", "sure_survivors_nsga2"),
    "space": ("SearchSpace", "SpaceError", "Variable", "linear_grid", "log_grid"),
    "task": ("Member", "Task", "TaskSpec"),
    "train": ("train_member",),
    "variants": ("VARIANTS", "Variant", "make_toolbox"),
    "weights": ("inherit_model", "searl_weight_mutation", "shrink_perturb"),
}
_MODULE_OF = {name: module for module, names in _FROM.items() for name in names}

__version__ = "0.2.0"
__all__ = list(_MODULE_OF)


def __getattr__(name: str) -> Any:
    """A public name, or a submodule (``pbt_evo.export``), imported when first asked for."""
    if name in _MODULE_OF:
        value = getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)
    else:
        try:
            value = importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_MODULE_OF))
