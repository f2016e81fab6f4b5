"""The names a config chooses from, importable without torch or Ray: a config is checked against them
before the heavy imports, so that a bad one fails at once (``python -m pbt_evo.run``).

>>> "pbt_nas" in VARIANTS and set(ONESHOT) <= set(VARIANTS)
True
"""

ONESHOT = ("bnao", "nao")  # the one-shot algorithms' names (bnao: size-proportional sampling, nao: uniform)
# the loop's variants (pbt_evo.variants), Ray Tune's BOHB, and the one-shot searches
VARIANTS = ("pbt_nas", "searl", "random", "no_mixing", "random_sp", "bohb", "pbt", "pbt_nas_hp", "random_hp") + ONESHOT
HP_VARIANTS = ("pbt", "pbt_nas_hp", "random_hp")  # search hyperparameter variables: the space must have some
WIDTH_POLICIES = ("adapt", "fresh")  # layers whose width a child changes: adapted, or re-initialised
