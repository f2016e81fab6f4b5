"""PBT-NAS operators in DEAP's shapes.

- Initialisers: :func:`init_population` (uniform or balanced).
- Selection (``toolbox.select``: best and worst): :func:`sel_truncation` (``tau`` fractions),
  :func:`sel_none` (random search), :func:`sel_all` (each member replaced by a variation of itself);
  ``toolbox.survivors``: :func:`sure_survivors` (members truncation cannot replace, known before the
  generation ends), :func:`no_survivors`.
- Pairing (``toolbox.pair``: the parents of one child, base parent first): :func:`pair_random`,
  :func:`pair_ranked`, :func:`pair_self` (the "no mixing" ablation mixes a parent with itself),
  :func:`pair_one`, :func:`pair_fitter_of_two`, :func:`pair_itself`.
- Variation of a spawned child (``toolbox.mate``, ``toolbox.mutate``): :func:`cx_mix` (Algorithm 2:
  uniform crossover carrying shrink-perturbed weights), :func:`cx_none`, :func:`mut_searl` (the
  SEARL-like baseline), :func:`mut_resample`, :func:`mut_weights`, :func:`mut_shrink_perturb` (random
  search with shrink-perturb), :func:`mut_explore` (PBT's explore of the hyperparameter variables),
  :func:`mut_none`.

"Nothing" is an operator that does nothing, never a missing toolbox entry. Like DEAP's operators they
use the ``random`` module, change the individuals given and return tuples. Weights are not touched here:
operators only append steps to the child's recipe (:mod:`pbt_evo.handles`), which the worker that
trains the child materialises.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Callable, Mapping, Sequence

from .handles import FreshState, Inherit, MutateWeights, PerturbAll, Reinit, as_recipe
from .individual import Individual
from .space import SearchSpace
from .weights import SHRINK_PERTURB

PERTURBATION_FACTORS = (1.2, 0.8)  # Ray Tune's, for continuous hyperparameters (PBT paper: 0.8 or 1.2)


def init_population(space: SearchSpace, n: int, balanced: bool = True,
                    container: Callable[..., Individual] = Individual,
                    fixed: Mapping[int, int] | None = None) -> list[Individual]:
    """``n`` individuals with ids 0..n-1, fresh weights and origins pointing at themselves.

    Balanced (the research code's default): every option of every variable appears ``n // k`` times.
    ``container`` makes each individual (e.g. ``partial(Individual, weights=(1.0, -1.0))``: two objectives).
    ``fixed`` gives variables one option in every individual (classic PBT's one architecture).

    >>> from pbt_evo.space import Variable
    >>> pop = init_population(SearchSpace([Variable("a", (0, 1))]), 4)
    >>> [ind.id for ind in pop], sorted(ind[0] for ind in pop)
    ([0, 1, 2, 3], [0, 0, 1, 1])
    """
    genomes = space.sample_balanced(n) if balanced else [space.sample() for _ in range(n)]
    pop = []
    for i, g in enumerate(genomes):
        for j, option in (fixed or {}).items():
            g[j] = option
        seed = random.getrandbits(31)
        pop.append(container(g, id=i, handle=FreshState(seed), seed=seed))
    return pop


def n_selected(n: int, tau: float) -> int:
    """Members in each of the best and worst ``tau`` fractions, rounded half up (N=12 -> 3, N=24 -> 6).

    >>> n_selected(12, 0.25), n_selected(24, 0.25), n_selected(10, 0.25)
    (3, 6, 3)
    """
    if not 0 <= tau <= 0.5:
        raise ValueError(f"tau must be in [0, 0.5], got {tau}")
    return min(int(math.floor(tau * n + 0.5)), n // 2)


def sel_truncation(individuals: Sequence[Individual], tau: float = 0.25) -> tuple[list[Individual], list[Individual]]:
    """The best and the worst ``round(tau * N)`` individuals, best first / worst last.

    Non-finite or missing fitness counts as the worst and is never among the best.

    >>> pop = [Individual([0], id=i) for i in range(4)]
    >>> for ind, f in zip(pop, [0.5, float("nan"), 0.9, 0.1]): ind.fitness.values = (f,)
    >>> best, worst = sel_truncation(pop, tau=0.25)
    >>> [b.id for b in best], [w.id for w in worst]
    ([2], [1])
    """
    k = n_selected(len(individuals), tau)
    ranked = sorted(individuals, key=lambda ind: ind.score, reverse=True)
    best = [ind for ind in ranked[:k] if math.isfinite(ind.score)]
    return best, ranked[len(ranked) - k:] if k else []


def sure_survivors(finished: Sequence[Individual], population: int, tau: float = 0.25) -> list[Individual]:
    """Which of the ``finished`` members :func:`sel_truncation` cannot put among the worst, whatever the
    ``population - len(finished)`` members still training score: those with at least ``round(tau * N)``
    finished members strictly worse. The loop starts their next generation at once (no barrier).

    >>> pop = [Individual([0], id=i) for i in range(3)]
    >>> for ind, f in zip(pop, [0.5, 0.9, 0.1]): ind.fitness.values = (f,)
    >>> [ind.id for ind in sure_survivors(pop, population=8)]   # N=8: 2 replaced; member 1 beats 0 and 2
    [1]
    """
    k = n_selected(population, tau)
    scores = sorted(ind.score for ind in finished)
    return [ind for ind in finished if bisect.bisect_left(scores, ind.score) >= k]


def sel_none(individuals: Sequence[Individual]) -> tuple[list[Individual], list[Individual]]:
    """Select no one: random search, N networks trained for the whole budget with no exchange.

    >>> sel_none([Individual([0], id=1)])
    ([], [])
    """
    return [], []


def sel_all(individuals: Sequence[Individual]) -> tuple[list[Individual], list[Individual]]:
    """Every member among the best and the worst: with :func:`pair_itself`, each is replaced by a variation
    of itself (random search with shrink-perturb, ``random_sp``).

    >>> best, worst = sel_all([Individual([0], id=1), Individual([0], id=2)])
    >>> [b.id for b in best], [w.id for w in worst]
    ([1, 2], [1, 2])
    """
    return list(individuals), list(individuals)


def no_survivors(finished: Sequence[Individual], population: int) -> list[Individual]:
    """No member starts its next generation early (the synchronous loop).

    >>> no_survivors([Individual([0], id=1)], population=4)
    []
    """
    return []


def fitter_first(a: Individual, b: Individual) -> tuple[Individual, Individual]:
    """``(a, b)`` with the fitter first (``a`` on a tie): base parent, then donor."""
    return (a, b) if a.score >= b.score else (b, a)


def pair_random(parents: Sequence[Individual], loser: Individual | None = None) -> tuple[Individual, Individual]:
    """Two distinct parents drawn at random (Algorithm 2, line 1), the fitter first: the base parent, then
    the donor. ``loser`` (the member the child replaces) is not used.

    >>> random.seed(0)
    >>> pop = [Individual([0], id=i) for i in range(4)]
    >>> for ind in pop: ind.fitness.values = (ind.id / 4,)
    >>> [ind.id for ind in pair_random(pop)]
    [3, 1]
    """
    if len(parents) < 2:
        raise ValueError(f"mixing needs at least 2 parents, got {len(parents)}: raise the population size or tau"
                         " (population * tau must round to >= 2)")
    a, b = random.sample(list(parents), 2)
    return fitter_first(a, b)


def pair_ranked(parents: Sequence[Individual], loser: Individual | None = None) -> tuple[Individual, Individual]:
    """Two distinct parents drawn at random, in the order of ``parents`` (best first, as selections return
    them): the first ranks higher and is the base parent, the second the donor, when no one number says
    which is fitter (several objectives).

    >>> random.seed(0)
    >>> pop = [Individual([0], id=i) for i in range(4)]
    >>> [ind.id for ind in pair_ranked(pop)]
    [1, 3]
    """
    if len(parents) < 2:
        pair_random(parents)  # the same error
    i, j = sorted(random.sample(range(len(parents)), 2))
    return parents[i], parents[j]


def pair_one(parents: Sequence[Individual], loser: Individual | None = None) -> tuple[Individual]:
    """One parent drawn uniformly (the SEARL-like baseline, classic PBT's exploit).

    >>> random.seed(0)
    >>> [ind.id for ind in pair_one([Individual([0], id=i) for i in range(3)])]
    [1]
    """
    return (random.choice(list(parents)),)


def pair_fitter_of_two(parents: Sequence[Individual], loser: Individual | None = None) -> tuple[Individual]:
    """The fitter of two distinct members drawn at random (the first drawn on a tie; the only one if there
    is one): the research code's SEARL-like parent (``research_code_compat``), where pbt_evo draws one
    uniformly.

    >>> random.seed(0)
    >>> pop = [Individual([0], id=i) for i in range(3)]
    >>> for ind, f in zip(pop, [0.9, 0.5, 0.1]): ind.fitness.values = (f,)
    >>> [pair_fitter_of_two(pop)[0].id for _ in range(6)]   # never the worst of three
    [1, 0, 1, 1, 1, 0]
    """
    if len(parents) < 2:
        return (parents[0],)
    a, b = random.sample(list(parents), 2)
    return (b if b.score > a.score else a,)


def pair_self(parents: Sequence[Individual], loser: Individual | None = None) -> tuple[Individual, Individual]:
    """One parent twice: the paper's "no mixing" ablation (layers still shrink-perturbed)."""
    a = random.choice(list(parents))
    return a, a


def pair_itself(parents: Sequence[Individual], loser: Individual) -> tuple[Individual]:
    """The member being replaced is its own parent (with :func:`sel_all`: ``random_sp``); the loop keeps
    its identity (id, seed), as it stays the same network.

    >>> ind = Individual([0], id=5)
    >>> pair_itself([], ind)[0] is ind
    True
    """
    return (loser,)


def cx_none(child: Individual, *donors: Individual) -> tuple[Individual]:
    """No crossover: the child stays its base parent's copy (one-parent variants: SEARL, classic PBT).

    >>> child = Individual([1], id=9)
    >>> cx_none(child)[0] is child
    True
    """
    return (child,)


def mut_none(individual: Individual) -> tuple[Individual]:
    """No mutation.

    >>> ind = Individual([1], id=9)
    >>> mut_none(ind)[0] is ind
    True
    """
    return (individual,)


def cx_mix(child: Individual, donor: Individual, p: float = 0.25,
           shrink_perturb: Sequence[float] = SHRINK_PERTURB, optimizer_policy: str = "reset",
           width_policy: str = "adapt", copied: Sequence[str] = ()) -> tuple[Individual]:
    """Mix a donor into a child (Algorithm 2): ``child`` is the base parent's spawn
    (:meth:`~pbt_evo.individual.Individual.spawn`), ``donor`` the less fit parent.

    Each variable is taken from the donor with probability ``p``; layers of taken variables get
    ``shrink * w_donor + perturb * w_fresh`` (also when both parents agree on the value, as in the research
    code). ``shrink_perturb=(1, 0)`` copies exactly, ``(0, 1)`` re-initialises. Layers whose width the
    child changes are adapted (``width_policy="adapt"``, see :mod:`pbt_evo.widths`) or freshly initialised
    (``"fresh"``). Taken layers under a ``copied`` prefix (averaged copies: an EMA generator, a target
    network) are the donor's unperturbed, as in the research code (``research_code_compat``).

    >>> from pbt_evo.handles import StoredState
    >>> a, b = Individual([0, 0], id=1, handle=StoredState({})), Individual([1, 1], id=2, handle=StoredState({}))
    >>> child, = cx_mix(a.spawn(3), b, p=1.0)
    >>> list(child), child.parents, child.origin, child.taken, child.handle.steps[0].variables
    ([1, 1], (1, 2), [2, 2], (0, 1), (0, 1))
    """
    taken = tuple(i for i in range(len(child)) if random.random() < p)
    for i in taken:
        child[i] = donor[i]
        child.origin[i] = donor.origin[i]
    step = Inherit(donor.handle, taken, (float(shrink_perturb[0]), float(shrink_perturb[1])), optimizer_policy,
                   tuple(copied))
    child.handle = as_recipe(child.handle).then(step, seed=random.getrandbits(31), width_policy=width_policy)
    child.parents = (child.parents[0], donor.id)
    child.taken = taken
    del child.fitness.values
    return (child,)


def mut_resample(individual: Individual, space: SearchSpace, width_policy: str = "adapt") -> tuple[Individual]:
    """Resample one variable to a different value; its layers are freshly initialised and the gene now
    originates in this individual. Layers whose width the new value changes (a width variable's, see
    :mod:`pbt_evo.widths`) are adapted to it (``width_policy="adapt"``) or freshly initialised (``"fresh"``).

    >>> from pbt_evo.space import Variable
    >>> from pbt_evo.handles import StoredState
    >>> ind, = mut_resample(Individual([0], id=3, handle=StoredState({})), SearchSpace([Variable("w", (4, 8))]))
    >>> list(ind), ind.origin, ind.handle.steps, ind.handle.width_policy
    ([1], [3], (Reinit(variables=(0,)),), 'adapt')
    """
    choices = [i for i, v in enumerate(space) if v.n_options > 1 or v.continuous]
    if not choices:
        return (individual,)
    i = random.choice(choices)
    if space[i].continuous:
        individual[i] = space[i].sample(random)
    else:
        individual[i] = random.choice([o for o in range(space[i].n_options) if o != individual[i]])
    individual.origin[i] = individual.id
    individual.handle = as_recipe(individual.handle).then(Reinit((i,)), seed=random.getrandbits(31),
                                                          width_policy=width_policy)
    del individual.fitness.values
    return (individual,)


def mut_weights(individual: Individual, skip: Sequence[str] = ()) -> tuple[Individual]:
    """SEARL weight mutation of the individual's weights (applied in the worker, seeded here); tensors
    under a ``skip`` prefix are left alone.

    >>> from pbt_evo.handles import StoredState
    >>> random.seed(0)
    >>> mut_weights(Individual([0], id=3, handle=StoredState({})))[0].handle.steps[0].seed
    1813382118
    """
    recipe = as_recipe(individual.handle)
    step = MutateWeights(random.getrandbits(31), tuple(skip))
    individual.handle = recipe.then(step, seed=recipe.seed or random.getrandbits(31))
    del individual.fitness.values
    return (individual,)


def mut_shrink_perturb(individual: Individual, shrink_perturb: Sequence[float] = SHRINK_PERTURB,
                       optimizer_policy: str = "reset", copied: Sequence[str] = ()) -> tuple[Individual]:
    """Shrink-perturb the whole network (every tensor but those under a ``copied`` prefix, against a fresh
    initialisation drawn in the worker under a seed drawn here): random search with shrink-perturb
    (``random_sp``, the paper's Table 3). Its moments follow ``optimizer_policy`` (``reset``: Adam
    restarts, as for shrink-perturbed layers in mixing; ``donor``: the member keeps its own, as the
    research code did).

    >>> from pbt_evo.handles import StoredState
    >>> ind, = mut_shrink_perturb(Individual([0], id=3, handle=StoredState({})))
    >>> ind.handle.steps, ind.fitness.valid
    ((PerturbAll(shrink_perturb=(0.4, 0.1), optimizer_policy='reset', copied=()),), False)
    """
    step = PerturbAll((float(shrink_perturb[0]), float(shrink_perturb[1])), optimizer_policy, tuple(copied))
    individual.handle = as_recipe(individual.handle).then(step, seed=random.getrandbits(31))
    del individual.fitness.values
    return (individual,)


def mut_searl(individual: Individual, space: SearchSpace, width_policy: str = "adapt",
              skip: Sequence[str] = ()) -> tuple[Individual]:
    """The SEARL-like baseline: with probability 1/3 each, resample one variable (fresh layers; layers of
    a changed width as ``width_policy`` says), mutate the weights SEARL's way (not those under a ``skip``
    prefix), or change nothing.

    >>> from pbt_evo.space import Variable
    >>> from pbt_evo.handles import StoredState
    >>> random.seed(1)
    >>> ind = Individual([0], id=3, handle=StoredState({}))
    >>> mut_searl(ind, SearchSpace([Variable("a", (0, 1))]))[0] is ind
    True
    """
    r = random.random()
    if r < 1 / 3:
        return mut_resample(individual, space, width_policy)
    if r < 2 / 3:
        return mut_weights(individual, skip)
    return (individual,)


def mut_explore(individual: Individual, space: SearchSpace, resample_probability: float = 0.25,
                explore_probability: float = 1.0) -> tuple[Individual]:
    """PBT's explore (Jaderberg et al. 2017) as Ray Tune's ``PopulationBasedTraining`` does it: each
    hyperparameter variable, with probability ``explore_probability``, is resampled uniformly with
    probability ``resample_probability``; else a grid gene moves one option down or up (equally likely),
    clamped at the grid's ends, and a continuous gene is multiplied by 1.2 or 0.8 (Tune's perturbation
    factors, equally likely), clipped to its bounds (where Tune does not clip). Architecture variables are
    not touched; the weights and optimizer state are the parent's (or the mixed child's) unchanged: a new
    learning rate keeps Adam's moments.

    >>> from pbt_evo.space import Variable
    >>> random.seed(0)
    >>> space = SearchSpace([Variable("act", ("relu", "tanh")), Variable("lr", (0.1, 0.2, 0.3), hyper=True),
    ...                      Variable("wd", bounds=(0.0, 0.1), hyper=True)])
    >>> ind, = mut_explore(Individual([1, 0, 0.05], id=3), space, resample_probability=0.0)
    >>> ind[:2], round(ind[2], 12)   # the grid gene one option up, the continuous one times 0.8
    ([1, 1], 0.04)
    """
    for i in space.hyperparameters:
        if explore_probability < 1 and random.random() >= explore_probability:
            continue
        v = space[i]
        if v.continuous:
            if random.random() < resample_probability:
                individual[i] = v.sample(random)
            else:
                individual[i] = v.clip(individual[i] * random.choice(PERTURBATION_FACTORS))
            continue
        k = v.n_options
        if random.random() < resample_probability:
            individual[i] = random.randrange(k)
        else:
            individual[i] = min(max(individual[i] + random.choice((-1, 1)), 0), k - 1)
    del individual.fitness.values
    return (individual,)
