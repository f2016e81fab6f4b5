"""The paper's algorithms as DEAP toolboxes over one loop (see :mod:`pbt_evo.algorithms`).

>>> from tasks.digits import DigitsTask
>>> tb = make_toolbox("searl", DigitsTask().space, population=8)
>>> hasattr(tb, "mutate"), hasattr(tb, "mate")
(True, False)
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from deap import base

from .individual import Individual
from .objectives import Objectives
from .operators import (cx_mix, init_population, mut_searl, pair_random, pair_ranked, pair_self, sel_truncation,
                        sure_survivors)
from .naswot import init_population_naswot, task_scorer
from .oneshot import ONESHOT, init_population_size_proportional, model_size
from .pareto import sel_nsga2, sure_survivors_nsga2
from .space import SearchSpace
from .task import Task
from .train import train_member
from .weights import WIDTH_POLICIES

VARIANTS = ("pbt_nas", "searl", "random", "no_mixing") + ONESHOT  # ONESHOT: bnao, nao (pbt_evo.oneshot, no loop)


def make_toolbox(algorithm: str, space: SearchSpace, population: int, tau: float = 0.25, p: float = 0.25,
                 shrink_perturb: Sequence[float] = (0.4, 0.1), init: str = "balanced",
                 optimizer_policy: str = "reset", task: Task | None = None,
                 naswot_candidates: int = 10, objectives: Objectives | None = None,
                 width_policy: str = "adapt") -> base.Toolbox:
    """A toolbox for one of :data:`VARIANTS`; set ``toolbox.map`` before running the loop.

    - ``pbt_nas``: truncation selection, two distinct parents, mixing with shrink-perturb;
    - ``no_mixing``: the same with a parent mixed with itself;
    - ``searl``: truncation selection, one parent, the SEARL-like mutation;
    - ``random``: no selection: N random networks trained for the whole budget.

    ``width_policy`` (``adapt`` or ``fresh``): what mixing and resampling do with layers whose width a
    child changes (see :mod:`pbt_evo.widths`).

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
    if algorithm in ONESHOT:
        raise ValueError(f"algorithm {algorithm!r} is a one-shot search, not a toolbox of the loop: run it with"
                         " pbt_evo.oneshot.nao_ws or python -m pbt_evo.run")
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
        tb.register("population", init_population, space, population, balanced=(init == "balanced"),
                    container=container)
    tb.register("train", train_member, objectives=objectives if multi else None)
    if algorithm == "random":
        return tb
    tb.register("select", sel_nsga2 if multi else sel_truncation, tau=tau)
    # lets the loop start them before the generation ends
    tb.register("survivors", sure_survivors_nsga2 if multi else sure_survivors, tau=tau)
    if algorithm == "searl":
        tb.register("mutate", mut_searl, space=space, width_policy=width_policy)
        return tb
    tb.register("pair", pair_self if algorithm == "no_mixing" else pair_ranked if multi else pair_random)
    tb.register("mate", cx_mix, p=p, shrink_perturb=tuple(shrink_perturb), optimizer_policy=optimizer_policy,
                base_first=multi, width_policy=width_policy)
    return tb
