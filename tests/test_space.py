"""Search spaces: sampling counts, size, validation messages, YAML."""

import random
from collections import Counter

import pytest

from pbt_evo.space import SearchSpace, SpaceError, Variable


@pytest.fixture
def space():
    return SearchSpace([Variable("op", ("id", "conv3", "conv5"), owns=("cells.0.op",)),
                        Variable("act", ("relu", "tanh", "swish", "id")),
                        Variable("pool", ("avg",))])


def test_size_and_names(space):
    assert space.names == ["op", "act", "pool"]
    assert space.log10_size == pytest.approx(1.0791812, abs=1e-6)  # log10(12)
    assert space.layer_variables == [0]


def test_balanced_counts(space):
    # N=12: each of 3 ops appears 4 times, each of 4 activations 3 times
    genomes = space.sample_balanced(12, random.Random(1))
    assert Counter(g[0] for g in genomes) == {0: 4, 1: 4, 2: 4}
    assert Counter(g[1] for g in genomes) == {0: 3, 1: 3, 2: 3, 3: 3}
    # N=10: 10 // 3 = 3 of each op, 1 random; 10 // 4 = 2 of each activation, 2 random
    genomes = space.sample_balanced(10, random.Random(2))
    assert all(c >= 3 for c in Counter(g[0] for g in genomes).values())
    assert all(c >= 2 for c in Counter(g[1] for g in genomes).values())
    assert len(genomes) == 10 and all(g[2] == 0 for g in genomes)


def test_owner_longest_prefix():
    space = SearchSpace([Variable("a", ("x",), owns=("enc",)), Variable("b", ("x",), owns=("enc.trunk",))])
    assert space.owner("enc.0.weight") == 0
    assert space.owner("enc.trunk.weight") == 1
    assert space.owner("encoder.weight") is None  # prefixes match whole name components


@pytest.mark.parametrize("genome, message", [
    ([0, 0], "genome has 2 values, the space has 3 variables"),
    ([3, 0, 0], r"genome\[0\] \(op\) = 3: must be an option index 0..2"),
    ([0, "relu", 0], r"genome\[1\] \(act\) = 'relu'"),
])
def test_validate_messages(space, genome, message):
    with pytest.raises(SpaceError, match=message):
        space.validate(genome)


def test_decode_encode_roundtrip(space):
    g = [2, 1, 0]
    assert space.encode(space.decode(g)) == g


def test_from_dict_errors():
    with pytest.raises(SpaceError, match="variable names repeat"):
        SearchSpace([Variable("a", (1,)), Variable("a", (2,))])
    with pytest.raises(SpaceError, match=r"space.a: unknown key\(s\) \['option'\]"):
        SearchSpace.from_dict({"a": {"option": [1]}})
    with pytest.raises(SpaceError, match="options: must be a non-empty list"):
        SearchSpace.from_dict({"a": {"options": []}})


def test_from_yaml(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("space:\n  op: {options: [id, conv], owns: [cells.0.op]}\n  act: [relu, tanh]\n")
    space = SearchSpace.from_yaml(path)
    assert space.names == ["op", "act"] and space["op"].owns == ("cells.0.op",)
    assert space.to_dict()["act"] == {"options": ["relu", "tanh"], "owns": []}
