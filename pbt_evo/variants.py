"""Every algorithm pbt_evo runs, by name: one registry, :data:`VARIANTS`. Configs (the choices of
``algorithm.name`` and their checks), :func:`make_toolbox`, sweep labels, ``compare`` and ``--keys`` read
it; no other module lists variant names.

A :class:`Variant` is data (what it is, which runner runs it, what it needs) plus, for variants of the
one loop, a builder that registers its ``select``, ``survivors``, ``pair``, ``mate`` and ``mutate``.
Adding one is one entry here (docs/ARCHITECTURE.md has a worked example)::

    VARIANTS["pbt_nas_explore"] = Variant("pbt_nas_explore", "PBT-NAS, then explore", mixing_explore, parents=2,
                                          shrink_perturbs=True, hyperparameters=True)

>>> from tasks.digits import DigitsTask
>>> tb = make_toolbox("searl", DigitsTask().space, population=8)
>>> tb.pair.func.__name__, tb.mate.func.__name__, tb.mutate.func.__name__
('pair_one', 'cx_none', 'mut_searl')
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from deap import base

from .bgpbt import BGPBT
from .fire import Fire
from .history import Memory
from .hyper import fixed_architecture
from .individual import Individual
from .naswot import init_population_naswot, task_scorer
from .objectives import Objectives
from .oneshot import init_population_size_proportional, model_size
from .operators import (
    cx_mix,
    cx_none,
    init_population,
    mut_explore,
    mut_none,
    mut_searl,
    mut_shrink_perturb,
    no_survivors,
    pair_fitter_of_two,
    pair_itself,
    pair_one,
    pair_random,
    pair_ranked,
    pair_self,
    sel_all,
    sel_none,
    sel_truncation,
    sure_survivors,
)
from .pareto import sel_nsga2, sure_survivors_nsga2
from .pb2 import PB2
from .space import SearchSpace
from .task import Task
from .train import train_member
from .weights import OPTIMIZER_POLICIES, SHRINK_PERTURB, WIDTH_POLICIES

INITS = ("balanced", "random", "naswot", "size_proportional")
RUNNER_WORDS = {"loop": "variant of the PBT loop", "tune": "Ray Tune search", "oneshot": "one-shot search"}


class VariantError(ValueError):
    """A variant asked for with settings or a space it cannot use; the message says what to change."""


@dataclass(frozen=True)
class Settings:
    """What a variant's builder reads: the ``algorithm`` section's knobs (defaults: the paper's)."""

    tau: float = 0.25
    p: float = 0.25
    shrink_perturb: tuple[float, float] = SHRINK_PERTURB
    optimizer_policy: str = "reset"
    width_policy: str = "adapt"
    resample_probability: float = 0.25
    explore_probability: float = 1.0
    multi: bool = False                 # several objectives: NSGA-II's order, parents paired by rank
    copied: tuple[str, ...] = ()        # prefixes mixing copies from the donor unperturbed (averaged copies)
    kept_apart: tuple[str, ...] = ()    # prefixes the SEARL weight mutation and random_sp leave alone
    mixing: bool = False                # optional_mixing variants: architectures searched by mixing too
    patience: int = 5                   # bg_pbt: generations without a new best before new architectures


Builder = Callable[[base.Toolbox, SearchSpace, Settings], None]


@dataclass(frozen=True)
class Variant:
    """One algorithm: ``build`` registers its operators on a toolbox (loop variants); the rest says what it
    is and needs, for configs, sweeps and messages.

    - ``runner``: ``loop`` (:func:`~pbt_evo.algorithms.ea_pbt`), ``tune`` (a Ray Tune search) or ``oneshot``;
    - ``parents``: the parents its selection must yield (``round(population * tau)`` at least this);
    - ``min_population``: the smallest population it can run (``why_population`` says why);
    - ``shrink_perturbs``: layers are shrink-perturbed, so ``shrink_perturb`` is part of its sweep label;
    - ``hyperparameters``: it searches hyperparameter variables, so the space must have some;
    - ``one_architecture``: every member has one architecture (classic PBT);
    - ``optional_mixing``: one architecture (as ``one_architecture``) unless ``algorithm.mixing`` is true,
      when PBT-NAS's mixing searches the architecture too (two parents then);
    - ``inits``: the initial populations it accepts; ``multi_objective``: whether it takes several objectives;
    - ``reads``: the ``algorithm`` keys it reads besides population, e_total, e_step and seed;
    - ``research_code``: what ``research_code_compat`` changes in its toolbox (an overlay of registrations);
    - ``options``: runner settings (e.g. a one-shot search's sampling).
    """

    name: str
    summary: str
    build: Builder | None = None
    runner: str = "loop"
    parents: int = 0
    min_population: int = 2
    why_population: str = ""
    shrink_perturbs: bool = False
    hyperparameters: bool = False
    one_architecture: bool = False
    optional_mixing: bool = False
    inits: tuple[str, ...] = INITS
    multi_objective: bool = True
    reads: tuple[str, ...] = ()
    research_code: Callable[[base.Toolbox, Settings], None] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def fixes_architecture(self, mixing: bool = False) -> bool:
        """Whether every member has one architecture (with ``algorithm.mixing`` as given)."""
        return self.one_architecture or (self.optional_mixing and not mixing)

    def min_parents(self, mixing: bool = False) -> int:
        """The parents its selection must yield (with ``algorithm.mixing`` as given)."""
        return 2 if self.optional_mixing and mixing else self.parents


# -- builders: a variant's selection and variation -----------------------------------------------------
def truncation(tb: base.Toolbox, s: Settings) -> None:
    """The best and worst ``tau`` (NSGA-II's order with several objectives); sure survivors start early."""
    tb.register("select", sel_nsga2 if s.multi else sel_truncation, tau=s.tau)
    tb.register("survivors", sure_survivors_nsga2 if s.multi else sure_survivors, tau=s.tau)


def mixing(tb: base.Toolbox, space: SearchSpace, s: Settings, pair: Callable[..., Any] | None = None) -> None:
    """PBT-NAS: truncation, two distinct parents (``pair``), Algorithm 2's mixing with shrink-perturb."""
    truncation(tb, s)
    tb.register("pair", pair or (pair_ranked if s.multi else pair_random))
    tb.register("mate", cx_mix, p=s.p, shrink_perturb=s.shrink_perturb, optimizer_policy=s.optimizer_policy,
                width_policy=s.width_policy, copied=s.copied)
    tb.register("mutate", mut_none)


def no_mixing(tb: base.Toolbox, space: SearchSpace, s: Settings) -> None:
    """The paper's ablation: a parent mixed with itself (its layers still shrink-perturbed)."""
    mixing(tb, space, s, pair=pair_self)


def explore(tb: base.Toolbox, space: SearchSpace, s: Settings) -> None:
    """PBT's explore of the hyperparameter variables (:func:`~pbt_evo.operators.mut_explore`)."""
    tb.register("mutate", mut_explore, space=space, resample_probability=s.resample_probability,
                explore_probability=s.explore_probability)


def mixing_explore(tb: base.Toolbox, space: SearchSpace, s: Settings) -> None:
    """Architecture and hyperparameters: PBT-NAS's mixing, then explore."""
    mixing(tb, space, s)
    explore(tb, space, s)


def one_parent(tb: base.Toolbox, s: Settings) -> None:
    """Truncation and one parent drawn from the best, copied (SEARL, classic PBT's exploit)."""
    truncation(tb, s)
    tb.register("pair", pair_one)
    tb.register("mate", cx_none)


def searl(tb: base.Toolbox, space: SearchSpace, s: Settings) -> None:
    """The SEARL-like baseline: one parent, then resample a variable, SEARL's weight mutation, or nothing."""
    one_parent(tb, s)
    tb.register("mutate", mut_searl, space=space, width_policy=s.width_policy, skip=s.kept_apart)


def pbt(tb: base.Toolbox, space: SearchSpace, s: Settings) -> None:
    """Classic PBT: exploit copies a top member, explore perturbs its hyperparameters."""
    one_parent(tb, s)
    explore(tb, space, s)


def no_exchange(tb: base.Toolbox, space: SearchSpace, s: Settings) -> None:
    """Random search: N networks trained for the whole budget, nothing selected, nothing varied."""
    tb.register("select", sel_none)
    tb.register("survivors", no_survivors)
    tb.register("pair", pair_one)
    tb.register("mate", cx_none)
    tb.register("mutate", mut_none)


def perturb_every(tb: base.Toolbox, space: SearchSpace, s: Settings) -> None:
    """Random search with shrink-perturb (Table 3): each member replaced by its own whole network
    shrink-perturbed, at every generation boundary but the last (the research code's rule)."""
    no_exchange(tb, space, s)
    tb.register("select", sel_all)
    tb.register("pair", pair_itself)
    tb.register("mutate", mut_shrink_perturb, shrink_perturb=s.shrink_perturb, optimizer_policy=s.optimizer_policy,
                copied=s.kept_apart)


# -- the PBT family: explore and select policies with a memory (pbt_evo.history) ------------------------
def exploit(tb: base.Toolbox, space: SearchSpace, s: Settings) -> None:
    """Truncation, then a copy of a top member (one architecture) or, with ``algorithm.mixing``, PBT-NAS's
    mixing of two; the variant's explore follows as ``mutate``."""
    if s.mixing:
        mixing(tb, space, s)
    else:
        one_parent(tb, s)


def pb2_builder(mix: bool) -> Builder:
    """PB2 (``mix=False``) or PB2-Mix: the GP (and bandit) explore of :mod:`pbt_evo.pb2`."""
    def build(tb: base.Toolbox, space: SearchSpace, s: Settings) -> None:
        exploit(tb, space, s)
        tb.memory = model = PB2(space, mix=mix, resample_probability=s.resample_probability,
                                explore_probability=s.explore_probability)
        tb.register("select", model.select, select=tb.select)
        tb.register("mutate", model.explore)
    build.__name__ = "pb2_mix" if mix else "pb2"
    return build


def fire_pbt(tb: base.Toolbox, space: SearchSpace, s: Settings) -> None:
    """FIRE-PBT (:mod:`pbt_evo.fire`): P1, P2 and evaluators; explore is classic PBT's, mixing optional."""
    explore(tb, space, s)
    mix = partial(cx_mix, p=s.p, shrink_perturb=s.shrink_perturb, optimizer_policy=s.optimizer_policy,
                  width_policy=s.width_policy, copied=s.copied) if s.mixing else None
    tb.memory = model = Fire(space, tb.mutate, mix, tau=s.tau)
    tb.register("select", model.select)
    tb.register("survivors", no_survivors)  # the groups' truncations are not the whole population's
    tb.register("pair", model.pair)
    tb.register("mate", model.mate)
    tb.register("mutate", model.mutate)


def bg_pbt(tb: base.Toolbox, space: SearchSpace, s: Settings) -> None:
    """BG-PBT (:mod:`pbt_evo.bgpbt`): trust-region BO explore, new architectures generation by generation."""
    tb.memory = model = BGPBT(space, tau=s.tau, patience=s.patience)
    tb.register("select", model.select)
    tb.register("survivors", no_survivors)  # a new generation replaces more than the worst tau
    tb.register("pair", model.pair)
    tb.register("mate", cx_none)
    tb.register("mutate", model.mutate)


# -- research_code_compat: the research code's choices as overlays (docs/REPRODUCING.md) ---------------
def fitter_of_two(tb: base.Toolbox, s: Settings) -> None:
    tb.register("pair", pair_fitter_of_two)


def keep_moments(tb: base.Toolbox, s: Settings) -> None:
    tb.register("mutate", mut_shrink_perturb, shrink_perturb=s.shrink_perturb, optimizer_policy="donor",
                copied=s.kept_apart)


MIXING_KEYS = ("tau", "p", "shrink_perturb", "optimizer_policy", "width_policy")
EXPLORE_KEYS = ("resample_probability", "explore_probability")
VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("pbt_nas", "PBT-NAS: truncation, two parents, layers mixed with shrink-perturb (Algorithm 2)", mixing,
            parents=2, shrink_perturbs=True, reads=MIXING_KEYS),
    Variant("searl", "SEARL-like: one parent, then resample a variable, mutate weights, or nothing", searl,
            parents=1, reads=("tau", "width_policy"), research_code=fitter_of_two),
    Variant("random", "random search: N networks trained for the whole budget, no exchange", no_exchange),
    Variant("no_mixing", "ablation: a parent mixed with itself (layers still shrink-perturbed)", no_mixing,
            parents=1, shrink_perturbs=True, reads=MIXING_KEYS),
    Variant("random_sp", "random search, each network shrink-perturbed every generation (Table 3)", perturb_every,
            shrink_perturbs=True, reads=("shrink_perturb", "optimizer_policy"), research_code=keep_moments),
    Variant("bohb", "BOHB through Ray Tune (Table 6): a trial per architecture, N x e_total epochs",
            runner="tune", inits=("balanced", "random"), multi_objective=False),
    Variant("pbt", "classic PBT: one architecture; exploit copies a top member, explore its hyperparameters", pbt,
            parents=1, hyperparameters=True, one_architecture=True, inits=("balanced", "random"),
            reads=("tau", "architecture") + EXPLORE_KEYS),
    Variant("pbt_nas_hp", "PBT-NAS's mixing, then explore: architecture and hyperparameters", mixing_explore,
            parents=2, shrink_perturbs=True, hyperparameters=True, reads=MIXING_KEYS + EXPLORE_KEYS),
    Variant("random_hp", "random search over architectures and hyperparameters", no_exchange, hyperparameters=True),
    Variant("bnao", "Balanced NAO: one-shot NAO with size-proportional sampling", runner="oneshot",
            reads=("oneshot",), options={"sampling": "proportional"}),
    Variant("nao", "NAO-WS: one-shot NAO with uniform sampling", runner="oneshot", reads=("oneshot",),
            options={"sampling": "uniform"}),
    Variant("pb2", "PB2: truncation, then a time-varying GP bandit (UCB) chooses the hyperparameters",
            pb2_builder(mix=False), parents=1, hyperparameters=True, optional_mixing=True,
            reads=("tau", "mixing", "architecture") + EXPLORE_KEYS + MIXING_KEYS),
    Variant("pb2_mix", "PB2-Mix: categorical hyperparameters by EXP3, continuous ones by the GP given them",
            pb2_builder(mix=True), parents=1, hyperparameters=True, optional_mixing=True,
            reads=("tau", "mixing", "architecture") + EXPLORE_KEYS + MIXING_KEYS),
    Variant("fire_pbt", "FIRE-PBT: sub-populations; evaluators rank P2 by fitness improvement rate for P1",
            fire_pbt, parents=1, min_population=4, why_population="two P1 members, one P2 member, one evaluator",
            hyperparameters=True, optional_mixing=True, multi_objective=False,
            reads=("tau", "mixing", "architecture") + EXPLORE_KEYS + MIXING_KEYS),
    Variant("bg_pbt", "BG-PBT: trust-region BO explore; new architectures and hyperparameters by generations",
            bg_pbt, parents=1, hyperparameters=True, multi_objective=False, reads=("tau", "patience")),
)}


def variant(name: str) -> Variant:
    """The registry's entry for ``name``, or a :class:`VariantError` listing the names.

    >>> variant("pbt_nas").parents
    2
    """
    if name not in VARIANTS:
        raise VariantError(f"algorithm {name!r}: allowed values are {', '.join(VARIANTS)}")
    return VARIANTS[name]


def check_space(v: Variant, space: SearchSpace) -> None:
    """A variant that searches hyperparameters needs some in the space (the message starts after the
    variant's name, which callers put first in their own words).

    >>> from pbt_evo.space import Variable
    >>> check_space(variant("pbt"), SearchSpace([Variable("act", ("relu", "tanh"))]))
    Traceback (most recent call last):
    pbt_evo.variants.VariantError: searches hyperparameters, but the space has none: name some in task.hyperparameters, e.g. adam: {lr: {log: [1.0e-4, 1.0e-2, 5]}}
    """
    if v.hyperparameters and not space.hyperparameters:
        raise VariantError("searches hyperparameters, but the space has none: name some in task.hyperparameters,"
                           " e.g. adam: {lr: {log: [1.0e-4, 1.0e-2, 5]}}")


def make_toolbox(algorithm: str, space: SearchSpace, population: int, tau: float = 0.25, p: float = 0.25,
                 shrink_perturb: Sequence[float] = SHRINK_PERTURB, init: str = "balanced",
                 optimizer_policy: str = "reset", task: Task | None = None,
                 naswot_candidates: int = 10, objectives: Objectives | None = None,
                 width_policy: str = "adapt", research_code_compat: bool = False,
                 resample_probability: float = 0.25, explore_probability: float = 1.0,
                 architecture: Mapping[str, Any] | None = None, mixing: bool = False,
                 patience: int = 5) -> base.Toolbox:
    """The toolbox of a loop variant of :data:`VARIANTS` (see each entry's summary); set ``toolbox.map``
    before running the loop. It registers ``population``, ``train`` and the variant's ``select``,
    ``survivors``, ``pair``, ``mate`` and ``mutate``.

    ``init``: ``balanced`` (each option N // k times), ``random``, ``naswot`` (the best N of
    ``naswot_candidates * N`` candidates by the training-free score; needs ``task``), ``size_proportional``
    (Balanced NAO's sampling; needs ``task``). Classic PBT (``pbt``) gives every member one architecture
    (``architecture``: values by name, else the task's ``default_architecture``, else first options), and
    so do the PBT family's ``pb2``, ``pb2_mix`` and ``fire_pbt`` unless ``mixing`` (then PBT-NAS's mixing
    searches the architecture too).

    ``toolbox.memory`` is what the variant remembers between generations (:mod:`pbt_evo.history`; nothing
    for most): a run's checkpoints save its ``state()``.

    ``objectives`` other than the fitness alone (:mod:`pbt_evo.objectives`) make the same variant
    multi-objective: individuals with one weight per objective, the values computed in the workers,
    truncation and sure survivors by NSGA-II's order (:mod:`pbt_evo.pareto`), parents paired by rank.

    ``research_code_compat``: the research code's choices (docs/REPRODUCING.md): mixing copies the task's
    averaged layers (``task.averaged_prefixes``) unperturbed, the SEARL weight mutation and ``random_sp``
    leave ``task.research_code_kept_apart`` alone, and the variant's overlay (SEARL's fitter-of-two parent,
    ``random_sp`` keeping the members' Adam moments).

    >>> from tasks.digits import DigitsTask
    >>> tb = make_toolbox("pbt_nas", DigitsTask().space, 8, objectives=Objectives(("fitness", "params"), (1.0, -1.0)))
    >>> tb.select.func.__name__, tb.pair.func.__name__, tb.population()[0].fitness.weights
    ('sel_nsga2', 'pair_ranked', (1.0, -1.0))
    """
    v = variant(algorithm)
    if v.runner != "loop":
        raise VariantError(f"algorithm {algorithm!r} is a {RUNNER_WORDS[v.runner]}, not a toolbox of the loop"
                           f" ({v.summary}): run it with python -m pbt_evo.run")
    try:
        check_space(v, space)
    except VariantError as exc:
        raise VariantError(f"algorithm {algorithm!r} {exc}") from None
    if width_policy not in WIDTH_POLICIES:
        raise VariantError(f"width_policy {width_policy!r}: allowed values are {', '.join(WIDTH_POLICIES)}")
    if optimizer_policy not in OPTIMIZER_POLICIES:
        raise VariantError(f"optimizer_policy {optimizer_policy!r}: allowed values are {', '.join(OPTIMIZER_POLICIES)}")
    if init not in v.inits:
        raise VariantError(f"algorithm {algorithm!r} takes init {' or '.join(v.inits)}, not {init!r}")
    if population < v.min_population:
        raise VariantError(f"algorithm {algorithm!r} needs a population of at least {v.min_population}"
                           f" ({v.why_population}), got {population}")
    if mixing and not v.optional_mixing:
        raise VariantError(f"algorithm {algorithm!r} does not take mixing ({v.summary}); those that do:"
                           f" {', '.join(n for n, x in VARIANTS.items() if x.optional_mixing)}")
    multi = objectives is not None and not objectives.single
    compat = research_code_compat and task is not None
    settings = Settings(tau, p, (float(shrink_perturb[0]), float(shrink_perturb[1])), optimizer_policy, width_policy,
                        resample_probability, explore_probability, multi,
                        tuple(task.averaged_prefixes) if compat else (),
                        tuple(task.research_code_kept_apart) if compat else (), mixing, patience)
    tb = base.Toolbox()
    tb.memory = Memory()  # a stateful variant's builder puts its model here
    container = partial(Individual, weights=objectives.weights) if multi else Individual
    register_population(tb, v, space, population, init, task, naswot_candidates, container, architecture,
                        v.fixes_architecture(mixing))
    tb.register("train", train_member, objectives=objectives if multi else None)
    v.build(tb, space, settings)
    if research_code_compat and v.research_code is not None:
        v.research_code(tb, settings)
    return tb


def register_population(tb: base.Toolbox, v: Variant, space: SearchSpace, n: int, init: str, task: Task | None,
                        candidates: int, container: Callable[..., Individual],
                        architecture: Mapping[str, Any] | None, one_architecture: bool) -> None:
    """``tb.population``: the initial population ``init`` names."""
    if init in ("naswot", "size_proportional") and task is None:
        raise VariantError(f"init {init!r} scores or measures candidate networks: pass task= to make_toolbox")
    if init == "naswot":
        tb.register("population", init_population_naswot, space, n, task_scorer(task), k=candidates,
                    container=container)
    elif init == "size_proportional":
        tb.register("population", init_population_size_proportional, space, n, partial(model_size, task),
                    k=candidates, container=container)
    else:
        fixed = (fixed_architecture(space, architecture or {}, task.default_architecture if task else {})
                 if one_architecture else None)
        tb.register("population", init_population, space, n, balanced=(init == "balanced"), container=container,
                    fixed=fixed)
