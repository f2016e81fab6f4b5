"""PBT-NAS operators in DEAP's shapes.

- Initialisers: :func:`init_population` (uniform or balanced).
- Selection: :func:`sel_truncation` (best and worst ``tau`` fractions), :func:`sure_survivors`
  (members that truncation cannot replace, known before the generation ends), :func:`pair_random`,
  :func:`pair_self` (the "no mixing" ablation mixes a parent with itself).
- Variation: :func:`cx_mix` (Algorithm 2: uniform crossover carrying shrink-perturbed weights),
  :func:`mut_searl` (the SEARL-like baseline), :func:`mut_resample`, :func:`mut_weights`,
  :func:`mut_shrink_perturb` (random search with shrink-perturb), :func:`mut_explore` (PBT's explore of
  the hyperparameter variables).

Like DEAP's operators they use the ``random`` module, change the individuals given (pass clones) and
return tuples. Weights are not touched here: operators only write recipes into handles, which the
worker that trains the child materialises.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Callable, Mapping, Sequence

from .handles import FreshState, as_recipe
from .individual import Individual
from .space import SearchSpace


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


def pair_random(parents: Sequence[Individual]) -> tuple[Individual, Individual]:
    """Two distinct parents drawn at random (Algorithm 2, line 1)."""
    if len(parents) < 2:
        raise ValueError(f"mixing needs at least 2 parents, got {len(parents)}: raise the population size or tau"
                         " (population * tau must round to >= 2)")
    a, b = random.sample(list(parents), 2)
    return a, b


def pair_ranked(parents: Sequence[Individual]) -> tuple[Individual, Individual]:
    """Two distinct parents drawn at random, in the order of ``parents`` (best first, as selections return
    them): the first ranks higher. With ``cx_mix(base_first=True)`` the second is the donor, the parent that
    ranks lower, when no one number says which is fitter (several objectives).

    >>> random.seed(0)
    >>> pop = [Individual([0], id=i) for i in range(4)]
    >>> [ind.id for ind in pair_ranked(pop)]
    [1, 3]
    """
    if len(parents) < 2:
        pair_random(parents)  # the same error
    i, j = sorted(random.sample(range(len(parents)), 2))
    return parents[i], parents[j]


def sel_fitter_of_two(parents: Sequence[Individual]) -> Individual:
    """The fitter of two distinct members drawn at random (the first drawn on a tie; the only one if there
    is one): the research code's SEARL-like parent (``research_code_compat``), where pbt_evo draws one
    uniformly.

    >>> random.seed(0)
    >>> pop = [Individual([0], id=i) for i in range(3)]
    >>> for ind, f in zip(pop, [0.9, 0.5, 0.1]): ind.fitness.values = (f,)
    >>> [sel_fitter_of_two(pop).id for _ in range(6)]   # never the worst of three
    [1, 0, 1, 1, 1, 0]
    """
    if len(parents) < 2:
        return parents[0]
    a, b = random.sample(list(parents), 2)
    return b if b.score > a.score else a


def pair_self(parents: Sequence[Individual]) -> tuple[Individual, Individual]:
    """One parent twice: the paper's "no mixing" ablation (layers still shrink-perturbed)."""
    a = random.choice(list(parents))
    return a, a


def cx_mix(ind1: Individual, ind2: Individual, p: float = 0.25,
           shrink_perturb: Sequence[float] = (0.4, 0.1), optimizer_policy: str = "reset",
           base_first: bool = False, width_policy: str = "adapt", copied: Sequence[str] = ()) -> tuple[Individual]:
    """Mix two parents into one child (Algorithm 2); pass clones, the fitter one becomes the child.

    Each variable is taken from the less fit parent (the donor) with probability ``p``; layers of taken
    variables get ``shrink * w_donor + perturb * w_fresh`` (also when both parents agree on the value,
    as in the research code). ``shrink_perturb=(1, 0)`` copies exactly, ``(0, 1)`` re-initialises.
    ``base_first``: ``ind1`` is the base parent and ``ind2`` the donor, whatever their scores (for a
    pairing that orders them by rank, :func:`pair_ranked`, with several objectives).
    Layers whose width the child changes are adapted (``width_policy="adapt"``, see
    :mod:`pbt_evo.widths`) or freshly initialised (``"fresh"``). Taken layers under a ``copied`` prefix
    (averaged copies: an EMA generator, a target network) are the donor's unperturbed, as in the research
    code (``research_code_compat``).

    >>> a, b = Individual([0, 0], id=1), Individual([1, 1], id=2)
    >>> a.fitness.values, b.fitness.values = (0.9,), (0.5,)
    >>> from pbt_evo.handles import StoredState
    >>> a.handle, b.handle = StoredState({}), StoredState({})
    >>> child, = cx_mix(a, b, p=1.0)
    >>> list(child), child.parents, child.origin, child.taken
    ([1, 1], (1, 2), [2, 2], (0, 1))
    """
    base, donor = (ind1, ind2) if base_first or ind1.score >= ind2.score else (ind2, ind1)
    taken = tuple(i for i in range(len(base)) if random.random() < p)
    for i in taken:
        base[i] = donor[i]
        base.origin[i] = donor.origin[i]
    base.handle = as_recipe(base.handle).with_(
        donor=donor.handle, taken=taken, shrink_perturb=tuple(float(c) for c in shrink_perturb),
        optimizer_policy=optimizer_policy, seed=random.getrandbits(31), width_policy=width_policy,
        copied=tuple(copied))
    base.parents = (base.id, donor.id)
    base.taken = taken
    del base.fitness.values
    return (base,)


def mut_resample(individual: Individual, space: SearchSpace, width_policy: str = "adapt") -> tuple[Individual]:
    """Resample one variable to a different value; its layers are freshly initialised. Layers whose
    width the new value changes (a width variable's, see :mod:`pbt_evo.widths`) are adapted to it
    (``width_policy="adapt"``) or freshly initialised (``"fresh"``).

    The new gene's origin is ``None`` until the loop gives the child its id (then it is the child's).

    >>> from pbt_evo.space import Variable
    >>> from pbt_evo.handles import StoredState
    >>> ind, = mut_resample(Individual([0], id=3, handle=StoredState({})), SearchSpace([Variable("w", (4, 8))]))
    >>> list(ind), ind.handle.reinit, ind.handle.width_policy
    ([1], (0,), 'adapt')
    """
    choices = [i for i, v in enumerate(space) if v.n_options > 1]
    if not choices:
        return (individual,)
    i = random.choice(choices)
    individual[i] = random.choice([o for o in range(space[i].n_options) if o != individual[i]])
    individual.origin[i] = None
    recipe = as_recipe(individual.handle)
    individual.handle = recipe.with_(reinit=tuple(sorted(set(recipe.reinit) | {i})),
                                     taken=tuple(t for t in recipe.taken if t != i),
                                     seed=random.getrandbits(31), width_policy=width_policy)
    del individual.fitness.values
    return (individual,)


def mut_weights(individual: Individual, skip: Sequence[str] = ()) -> tuple[Individual]:
    """SEARL weight mutation of the individual's weights (applied in the worker, seeded here); tensors
    under a ``skip`` prefix are left alone."""
    recipe = as_recipe(individual.handle)
    individual.handle = recipe.with_(searl_seed=random.getrandbits(31),
                                     seed=recipe.seed or random.getrandbits(31), searl_skip=tuple(skip))
    del individual.fitness.values
    return (individual,)


def mut_shrink_perturb(individual: Individual, shrink_perturb: Sequence[float] = (0.4, 0.1),
                       optimizer_policy: str = "reset", copied: Sequence[str] = ()) -> tuple[Individual]:
    """Shrink-perturb the whole network (every tensor but those under a ``copied`` prefix, against a fresh
    initialisation drawn in the worker under a seed drawn here): random search with shrink-perturb
    (``random_sp``, the paper's Table 3). Its moments follow ``optimizer_policy`` (``reset``: Adam
    restarts, as for shrink-perturbed layers in mixing; ``donor``: the member keeps its own, as the
    research code did).

    >>> from pbt_evo.handles import StoredState
    >>> ind, = mut_shrink_perturb(Individual([0], id=3, handle=StoredState({})))
    >>> ind.handle.perturb_all, ind.handle.shrink_perturb, ind.fitness.valid
    (True, (0.4, 0.1), False)
    """
    individual.handle = as_recipe(individual.handle).with_(
        perturb_all=True, shrink_perturb=tuple(float(c) for c in shrink_perturb), optimizer_policy=optimizer_policy,
        seed=random.getrandbits(31), copied=tuple(copied))
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
    """PBT's explore (Jaderberg et al. 2017) as Ray Tune's ``PopulationBasedTraining`` does it for a grid:
    each hyperparameter variable, with probability ``explore_probability``, is resampled uniformly with
    probability ``resample_probability``, else moved one option down or up (equally likely), clamped at
    the grid's ends. Architecture variables are not touched; the weights and optimizer state are the
    parent's (or the mixed child's) unchanged: a new learning rate keeps Adam's moments.

    >>> from pbt_evo.space import Variable
    >>> from pbt_evo.handles import StoredState
    >>> random.seed(0)
    >>> space = SearchSpace([Variable("act", ("relu", "tanh")), Variable("lr", (0.1, 0.2, 0.3), hyper=True)])
    >>> ind, = mut_explore(Individual([1, 0], id=3, handle=StoredState({})), space, resample_probability=0.0)
    >>> list(ind), type(ind.handle).__name__
    ([1, 1], 'MixedState')
    """
    for i in space.hyperparameters:
        if explore_probability < 1 and random.random() >= explore_probability:
            continue
        k = space[i].n_options
        if random.random() < resample_probability:
            individual[i] = random.randrange(k)
        else:
            individual[i] = min(max(individual[i] + random.choice((-1, 1)), 0), k - 1)
    individual.handle = as_recipe(individual.handle)
    del individual.fitness.values
    return (individual,)
