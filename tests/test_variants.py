"""The variant registry: one entry per algorithm, read by configs, toolboxes, sweep labels and compare."""

from __future__ import annotations

import pytest

from pbt_evo.cli.sweep import algorithm_label, plan


@pytest.mark.parametrize("label", ["pbt_nas_hp_sp10", "pbt_nas_hp_sp01", "pbt_nas_sp10", "no_mixing_sp01",
                                   "random_sp_sp10", "pbt_nas_hp"])
def test_sweep_label_round_trips_for_every_shrink_perturbing_variant(tmp_path, label):
    """Bug (issue 26): pbt_nas_hp with shrink-perturb [1, 0] was labelled pbt_nas_hp, so compare refused the
    co-search ablation on shared seeds and pooled the two as one algorithm."""
    (_, _, cfg, folder), = plan("spaces/mnist1d_hp.yaml", [label], [0], [f"output.dir={tmp_path}"])
    assert algorithm_label(cfg) == label
    assert folder.name == f"mnist1d_hp_{label}_s0"


def test_shrink_perturb_is_not_part_of_a_label_where_nothing_is_shrink_perturbed(tmp_path):
    (_, _, cfg, _), = plan("spaces/mnist1d_hp.yaml", ["pbt"], [0],
                           [f"output.dir={tmp_path}", "algorithm.shrink_perturb=[1.0, 0.0]"])
    assert algorithm_label(cfg) == "pbt"
