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


def test_a_variant_is_one_registry_entry(monkeypatch, tmp_path):
    """docs/ARCHITECTURE.md's worked example, run as written: configs, make_toolbox, sweep labels and the
    loop then know the new variant."""
    import re
    import textwrap
    from pathlib import Path

    import pbt_evo
    from pbt_evo.cli import config
    from pbt_evo.variants import VARIANTS

    text = Path("docs/ARCHITECTURE.md").read_text()
    block = textwrap.dedent(re.search(r"```python\n( *from pbt_evo.operators import mut_weights.*?)```", text,
                                      re.S).group(1))
    monkeypatch.setitem(VARIANTS, "pbt_nas_mw", None)  # the test's entry goes with the test
    exec(compile(block, "docs/ARCHITECTURE.md", "exec"), {})
    assert VARIANTS["pbt_nas_mw"].build.__name__ == "mixing_then_searl"
    (_, _, cfg, _), = plan("spaces/digits.yaml", ["pbt_nas_mw_sp10"], [0], [f"output.dir={tmp_path}"])
    assert algorithm_label(cfg) == "pbt_nas_mw_sp10" and cfg["algorithm"]["shrink_perturb"] == [1.0, 0.0]
    assert "pbt_nas_mw" in config.describe()
    from tasks.digits import DigitsTask

    task = DigitsTask(channels=4)
    tb = pbt_evo.make_toolbox("pbt_nas_mw", task.space, 4, tau=0.5)
    tb.map = pbt_evo.SerialMap(task, num_threads=1)
    children = []
    pbt_evo.ea_pbt(tb.population(), tb, e_total=2, e_step=1,
                   hook=lambda g: children.extend((type(c.handle.steps[-1]).__name__, c.parents) for _, c in g.replaced))
    assert children and all(step == "MutateWeights" and len(parents) == 2 for step, parents in children)


def test_no_other_module_lists_variant_names():
    """Outside the registry no code compares an algorithm's name with a variant's (``alg["name"] == "bohb"``,
    ``name in ("pbt", ...)``) or lists several variant names in a tuple, list, set or dict (the knowledge of what
    a variant is lives in its entry; a default such as ``--baseline pbt_nas`` is a use of a name, not a list)."""
    import ast
    from pathlib import Path

    from pbt_evo.variants import VARIANTS

    def constants(nodes):
        return [n.value for n in nodes if isinstance(n, ast.Constant) and n.value in VARIANTS]

    def is_name(node):  # x["name"] or x.name
        return (isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and node.slice.value == "name"
                or isinstance(node, ast.Attribute) and node.attr == "name")

    for path in Path("pbt_evo").rglob("*.py"):
        if path.name == "variants.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                sides = [node.left, *node.comparators]
                named = any(is_name(n) for n in sides)
                found = constants(sides) + [v for n in sides if isinstance(n, (ast.Tuple, ast.List, ast.Set))
                                            for v in constants(n.elts)]
                assert not (named and found), f"{path}:{node.lineno} compares with variant {found[0]!r}"
            elif isinstance(node, (ast.Tuple, ast.List, ast.Set, ast.Dict)):
                found = constants(node.values if isinstance(node, ast.Dict) else node.elts)
                assert len(found) < 2, f"{path}:{node.lineno} lists variants {found}; ask pbt_evo.variants"
