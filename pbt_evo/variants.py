"""The paper's algorithms as DEAP toolboxes over one loop (see :mod:`pbt_evo.algorithms`).

>>> from tasks.digits import DigitsTask
>>> tb = make_toolbox("searl", DigitsTask().space, population=8)
>>> hasattr(tb, "mutate"), hasattr(tb, "mate")
(True, False)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from deap import base

from .hyper import fixed_architecture
from .individual import Individual
from .names import HP_VARIANTS, VARIANTS
from .naswot import init_population_naswot, task_scorer
from .objectives import Objectives
from .operators import (
    cx_mix,
    init_population,
    mut_explore,
    mut_searl,
    mut_shrink_perturb,
    pair_random,
    pair_ranked,
    pair_self,
    sel_fitter_of_two,
    sel_truncation,
    sure_survivors,
)
from .oneshot import ONESHOT, init_population_size_proportional, model_size
from .pareto import sel_nsga2, sure_survivors_nsga2
from .space import SearchSpace
from .task import Task
from .train import train_member
from .weights import WIDTH_POLICIES

# VARIANTS, HP_VARIANTS: pbt_evo.names (a config is checked against them before torch is imported)
NOT_A_TOOLBOX = {"bohb": "BOHB is Ray Tune's search, not a toolbox of the loop: see pbt_evo.bohb.run_bohb",
                 **{name: f"algorithm {name!r} is a one-shot search, not a toolbox of the loop: run it with"
                          " pbt_evo.oneshot.nao_ws or python -m pbt_evo.run" for name in ONESHOT}}


def make_toolbox(algorithm: str, space: SearchSpace, population: int, tau: float = 0.25, p: float = 0.25,
                 shrink_perturb: Sequence[float] = (0.4, 0.1), init: str = "balanced",
                 optimizer_policy: str = "reset", task: Task | None = None,
                 naswot_candidates: int = 10, objectives: Objectives | None = None,
                 width_policy: str = "adapt", research_code_compat: bool = False,
                 resample_probability: float = 0.25, explore_probability: float = 1.0,
                 architecture: Mapping[str, Any] | None = None) -> base.Toolbox:
    """A toolbox for one of :data:`VARIANTS`; set ``toolbox.map`` before running the loop.

    - ``pbt_nas``: truncation selection, two distinct parents, mixing with shrink-perturb;
    - ``no_mixing``: the same with a parent mixed with itself;
    - ``searl``: truncation selection, one parent, the SEARL-like mutation;
    - ``random``: no selection: N random networks trained for the whole budget;
    - ``random_sp``: the same, each network shrink-perturbed (``shrink_perturb``) at every generation
      boundary but the last (the paper's Table 3, the research code's rule);
    - ``bohb`` is a name of :data:`VARIANTS` but not a toolbox: Ray Tune's BOHB (:mod:`pbt_evo.bohb`).

    With hyperparameter variables in the space (:mod:`pbt_evo.hyper`, ``Variable(hyper=True)``):

    - ``pbt``: classic PBT (Jaderberg et al. 2017): every member has one architecture (``architecture``:
      values by name, else the task's ``default_architecture``, else each variable's first option);
      exploit copies a top member's weights, optimizer state and hyperparameters, explore
      (:func:`~pbt_evo.operators.mut_explore`: neighbouring option, or a resample with
      ``resample_probability``) perturbs the hyperparameters;
    - ``pbt_nas_hp``: ``pbt_nas``'s mixing (hyperparameter genes inherited like any weightless
      variable), then explore;
    - ``random_hp``: ``random`` over architectures and hyperparameters (the space's every variable).

    ``width_policy`` (``adapt`` or ``fresh``): what mixing and resampling do with layers whose width a
    child changes (see :mod:`pbt_evo.widths`).

    ``research_code_compat``: the research code's choices (docs/REPRODUCING.md): the SEARL-like parent is
    the fitter of two top-tau members; mixing copies the donor's averaged layers (``task.averaged_prefixes``:
    EMA generator, target network) unperturbed; the SEARL weight mutation and ``random_sp`` leave what the
    research code kept apart (``task.research_code_kept_apart``: the EMA generator) alone, and
    ``random_sp`` keeps the members' Adam moments.

    ``init="naswot"`` needs ``task`` (its ``naswot_batch()``): the population is the best N of
    ``naswot_candidates * N`` candidates by the training-free score (:mod:`pbt_evo.naswot`).
    ``init="size_proportional"`` (needs ``task``) draws N of ``naswot_candidates * N`` balanced candidates
    with probability proportional to their parameter counts, Balanced NAO's sampling (:mod:`pbt_evo.oneshot`).

    ``objectives`` other than the fitness alone (:mod:`pbt_evo.objectives`) make the same variant
    multi-objective: individuals with one weight per objective, the values computed in the workers,
    truncation and sure survivors by NSGA-II's order (:mod:`pbt_evo.pareto`), and the parent that ranks
    lower as the donor (``pair_ranked``, ``cx_mix(base_first=True)``).

    >>> from tasks.digits import DigitsTask
    >>> tb = make_toolbox("pbt_nas", DigitsTask().space, 8, objectives=Objectives(("fitness", "params"), (1.0, -1.0)))
    >>> tb.select.func.__name__, tb.pair.func.__name__, tb.population()[0].fitness.weights
    ('sel_nsga2', 'pair_ranked', (1.0, -1.0))
    """
    if algorithm not in VARIANTS:
        raise ValueError(f"algorithm {algorithm!r}: allowed values are {', '.join(VARIANTS)}")
    if algorithm in NOT_A_TOOLBOX:
        raise ValueError(NOT_A_TOOLBOX[algorithm])
    if algorithm in HP_VARIANTS and not space.hyperparameters:
        raise ValueError(f"algorithm {algorithm!r} searches hyperparameters, but the space has none: name some in"
                         " task.hyperparameters (e.g. adam: {lr: {log: [1.0e-4, 1.0e-2, 5]}})")
    if width_policy not in WIDTH_POLICIES:
        raise ValueError(f"width_policy {width_policy!r}: allowed values are {', '.join(WIDTH_POLICIES)}")
    multi = objectives is not None and not objectives.single
    container = partial(Individual, weights=objectives.weights) if multi else Individual
    tb = base.Toolbox()
    if init == "naswot":
        if task is None:
            raise ValueError("init 'naswot' scores candidate networks: pass task= to make_toolbox")
        tb.register("population", init_population_naswot, space, population, task_scorer(task), k=naswot_candidates,
                    container=container)
    elif init == "size_proportional":
        if task is None:
            raise ValueError("init 'size_proportional' counts the candidates' parameters: pass task= to make_toolbox")
        tb.register("population", init_population_size_proportional, space, population, partial(model_size, task),
                    k=naswot_candidates, container=container)
    else:
        fixed = (fixed_architecture(space, architecture or {}, task.default_architecture if task else {})
                 if algorithm == "pbt" else None)
        tb.register("population", init_population, space, population, balanced=(init == "balanced"),
                    container=container, fixed=fixed)
    tb.register("train", train_member, objectives=objectives if multi else None)
    compat = research_code_compat and task is not None
    averaged = tuple(task.averaged_prefixes) if compat else ()
    kept_apart = tuple(task.research_code_kept_apart) if compat else ()
    if algorithm in ("random", "random_sp", "random_hp"):
        if algorithm == "random_sp":  # the research code's rule: whole networks, every generation boundary
            tb.register("perturb", mut_shrink_perturb, shrink_perturb=tuple(shrink_perturb),
                        optimizer_policy="donor" if compat else optimizer_policy, copied=kept_apart)
        return tb
    tb.register("select", sel_nsga2 if multi else sel_truncation, tau=tau)
    # lets the loop start them before the generation ends
    tb.register("survivors", sure_survivors_nsga2 if multi else sure_survivors, tau=tau)
    if algorithm == "searl":
        tb.register("mutate", mut_searl, space=space, width_policy=width_policy, skip=kept_apart)
        if research_code_compat:
            tb.register("parent", sel_fitter_of_two)
        return tb
    if algorithm in ("pbt", "pbt_nas_hp"):
        tb.register("mutate", mut_explore, space=space, resample_probability=resample_probability,
                    explore_probability=explore_probability)
    if algorithm == "pbt":
        return tb
    tb.register("pair", pair_self if algorithm == "no_mixing" else pair_ranked if multi else pair_random)
    tb.register("mate", cx_mix, p=p, shrink_perturb=tuple(shrink_perturb), optimizer_policy=optimizer_policy,
                base_first=multi, width_policy=width_policy, copied=averaged)
    return tb
