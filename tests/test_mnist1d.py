"""MNIST-1D task: splits, every op in every slot, reproducible offline generation, the held-out score."""

import random
import socket

import numpy as np
import pytest
import torch
from torch import nn

import tasks.mnist1d as m1d
from pbt_evo.rng import kept_rng, seed_everything
from pbt_evo.weights import inherit_model
from tasks.mnist1d import MNIST1DTask


@pytest.fixture(scope="module")
def task():
    torch.set_num_threads(1)
    return MNIST1DTask(channels=8)


def rows(x: torch.Tensor) -> set[bytes]:
    return {r.tobytes() for r in x.flatten(1).numpy()}


def mnist1d_reference() -> dict:
    """The dataset as mnist1d itself makes it with its default arguments (generated here, not cached)."""
    from mnist1d.data import get_dataset_args, make_dataset

    with kept_rng():
        return make_dataset(get_dataset_args())


def test_split_sizes_and_no_overlap(task):
    sizes = {k: (tuple(x.shape), tuple(y.shape)) for k, (x, y) in task.data.items()}
    assert sizes == {"train": ((3000, 1, 40), (3000,)), "val": ((1000, 1, 40), (1000,)),
                     "test": ((1000, 1, 40), (1000,))}
    train, val, test = (rows(task.data[k][0]) for k in ("train", "val", "test"))
    assert len(train) == 3000 and len(val) == 1000 and len(test) == 1000  # no repeated signal either
    assert not train & val and not train & test and not val & test
    # train + validation are exactly mnist1d's training samples, the test split exactly its test samples
    (x, _), (x_test, _) = m1d.generate()
    assert train | val == rows(x) and test == rows(x_test)


def test_every_option_builds_and_trains_a_step(task):
    genomes = task.space.sample_balanced(10, random.Random(0))  # 10 = the most options of a variable
    seen = {v.name: {task.space.decode(g)[v.name] for g in genomes} for v in task.space}
    assert seen == {v.name: set(v.options) for v in task.space}
    x, y = task.data["train"][0][:16], task.data["train"][1][:16]
    for genome in genomes:
        member = task.build(genome)
        member.model.train()
        out = member.model(x)
        assert out.shape == (16, 10)
        loss = nn.functional.cross_entropy(out, y)
        member.optimizers["adam"].zero_grad()
        loss.backward()
        member.optimizers["adam"].step()
        assert torch.isfinite(loss) and all(torch.isfinite(p).all() for p in member.model.parameters())


def test_mixing_any_two_architectures_fits_the_child(task):
    # a child takes some variables from a donor of another architecture: every key whose shape
    # depends on a variable must be owned by it (inherit_model raises and names the key otherwise)
    genomes = task.space.sample_balanced(10, random.Random(1))
    rng = random.Random(2)
    for base, donor in zip(genomes, genomes[1:]):
        taken = [i for i in range(len(task.space)) if rng.random() < 0.5]
        child = [donor[i] if i in taken else base[i] for i in range(len(base))]
        state = inherit_model(task.build_model(base).state_dict(), task.build_model(donor).state_dict(),
                              task.build_model(child).state_dict(), task.space, taken=taken)
        task.build_model(child).load_state_dict(state)


def test_data_follow_data_seed_and_keep_the_callers_rng():
    m1d.clear_cache()
    random.seed(7), np.random.seed(7), torch.manual_seed(7)
    before = random.getstate(), np.random.get_state(), torch.get_rng_state()
    a = MNIST1DTask(data_seed=0)  # generates: mnist1d seeds random and numpy's global generators
    assert random.getstate() == before[0]
    assert all(np.array_equal(s, t) for s, t in zip(np.random.get_state(), before[1]))
    assert torch.equal(torch.get_rng_state(), before[2])

    m1d.clear_cache()
    b, c = MNIST1DTask(data_seed=0), MNIST1DTask(data_seed=1)  # b generated again, c from the cache
    for split in ("train", "val", "test"):
        assert all(torch.equal(s, t) for s, t in zip(a.data[split], b.data[split]))
    assert not torch.equal(a.data["train"][0], c.data["train"][0])
    assert rows(a.data["val"][0]) != rows(c.data["val"][0])
    assert rows(a.data["train"][0]) | rows(a.data["val"][0]) == rows(c.data["train"][0]) | rows(c.data["val"][0])
    assert torch.equal(a.data["test"][0], c.data["test"][0])  # the held-out samples never move


def test_generated_without_network(monkeypatch):
    def blocked(*args, **kwargs):
        raise OSError("network access during MNIST-1D generation")

    monkeypatch.setattr(socket, "socket", blocked)
    monkeypatch.setattr(socket, "create_connection", blocked)
    m1d.clear_cache()
    task = MNIST1DTask(dataset_seed=3)
    assert len(task.data["train"][1]) == 3000


def test_test_score_is_accuracy_on_mnist1d_held_out_samples(task):
    seed_everything(0)
    member = task.build(task.space.encode({"op0": "conv5", "op1": "resblock3", "op2": "maxpool3",
                                           "op3": "conv3", "act0": "relu", "act1": "swish", "act2": "relu",
                                           "act3": "tanh", "pool": "max"}))
    member.train(1)
    ref = mnist1d_reference()
    member.model.eval()
    with torch.no_grad():
        logits = member.model(torch.tensor(ref["x_test"], dtype=torch.float32).unsqueeze(1)).numpy()
    correct = sum(int(np.argmax(row)) == int(label) for row, label in zip(logits, ref["y_test"]))
    assert len(ref["y_test"]) == 1000
    assert member.test_score() == correct / 1000


def test_seeded_member_is_deterministic(task):
    genome = task.space.sample(random.Random(3))

    def trained() -> float:
        seed_everything(11)
        member = task.build(genome)
        member.train(2)
        return member.evaluate()

    first = trained()
    assert first == trained()
    assert 0.2 < first <= 1.0  # better than chance (0.1) after two epochs


def test_cost_counts_each_cells_op(task):
    names = {"op0": "sepconv5", "op1": "identity", "op2": "conv3", "op3": "resblock3"}
    genome = task.space.encode({**names, "act0": "relu", "act1": "tanh", "act2": "swish", "act3": "identity",
                                "pool": "avg"})
    assert task.cost(genome) == pytest.approx(1 + 1.5 + 0 + 0.5 + 1.7)
    assert task.naswot_batch().shape == (100, 1, 40)


@pytest.mark.parametrize("kwargs, message", [
    ({"channels": 0}, "channels must be an integer >= 1"),
    ({"n_cells": 0}, "n_cells must be an integer >= 1"),
    ({"lr": -1.0}, "lr must be a finite number > 0"),
    ({"val_fraction": 1.0}, "val_fraction must be between 0 and 1"),
    ({"num_samples": 5005}, "num_samples must be a multiple of 10"),
    ({"num_samples": 50, "val_fraction": 0.01}, "leaves an empty train or validation split of the 40"),
    ({"dataset_seed": -1}, "dataset_seed must be an integer in 0..2"),
    ({"iid_noise_scale": -0.1}, "iid_noise_scale must be a finite number >= 0"),
])
def test_bad_arguments_name_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MNIST1DTask(**kwargs)


def test_eight_cells_space_network_training_and_mixing():
    task = MNIST1DTask(channels=8, n_cells=8)
    assert len(task.space) == 17  # op0..op7, act0..act7, pool
    assert task.space.names == [f"op{i}" for i in range(8)] + [f"act{i}" for i in range(8)] + ["pool"]
    assert task.space.log10_size == pytest.approx(8 + 8 * np.log10(4) + np.log10(2))
    assert task.default_architecture == {**{f"op{i}": "conv5" for i in range(8)},
                                         **{f"act{i}": "relu" for i in range(8)}, "pool": "avg"}
    assert MNIST1DTask.default_architecture == m1d.make_default_architecture(4)  # the 4-cell one, unchanged
    genomes = task.space.sample_balanced(10, random.Random(0))
    model = task.build_model(genomes[0])
    assert len(model.cells) == 8
    assert [type(c.op).__name__ for c in model.cells][:2] == [
        type(m1d.make_op(task.space.decode(genomes[0])[f"op{i}"], 8)).__name__ for i in range(2)]
    seed_everything(0)
    member = task.build(genomes[0])
    before = member.evaluate()
    member.train(1)
    assert 0.0 <= before <= 1.0 and member.evaluate() > 0.1 and member.evaluate() != before
    # mixing two 8-cell architectures fits the child (each op slot owns its weights, cells 4..7 included)
    child = genomes[1][:4] + genomes[0][4:]
    state = inherit_model(task.build_model(genomes[0]).state_dict(), task.build_model(genomes[1]).state_dict(),
                          task.build_model(child).state_dict(), task.space, taken=[0, 1, 2, 3])
    task.build_model(child).load_state_dict(state)
    names = {**{f"op{i}": "conv3" for i in range(8)}, **{f"act{i}": "relu" for i in range(8)}, "pool": "avg"}
    assert task.cost(task.space.encode(names)) == pytest.approx(1 + 8 * 0.5)


def test_four_cells_is_the_default():
    a, b = MNIST1DTask(channels=8), MNIST1DTask(channels=8, n_cells=4)
    assert a.space.names == b.space.names and len(a.space) == 9
    genome = [1, 4, 6, 7, 0, 1, 2, 3, 1]
    assert list(a.build_model(genome).state_dict()) == list(b.build_model(genome).state_dict())
