"""tasks.gan: search spaces, networks, training steps, data errors, FID / IS code paths."""

from __future__ import annotations

import random
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tasks.gan import DataUnavailable, GanTask, InceptionWeightsUnavailable
from tasks.gan.data import load_digits_images, load_images, to_float
from tasks.gan.discriminator import DisCell, SearchDiscriminator
from tasks.gan.metrics import (INCEPTION_WEIGHTS_FILE, DigitsClassifierFeatures, extract_features, frechet_distance,
                               generate, inception_score, load_inception, reference_statistics,
                               stats_cache_name)
from tasks.gan.model import build_gan_model, discriminator_step, generator_step, make_optimizers
from tasks.gan.space import build_space

TINY = dict(gf_dim=8, df_dim=8, latent_dim=6, bottom_width=2, channels=3)
IMG = 16
SPACES = Path(__file__).resolve().parent.parent / "spaces"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def genomes(space_name: str) -> list[list[int]]:
    """15 seeded random genomes plus all-first-option and all-last-option ones."""
    space = build_space(space_name)
    rng = random.Random(1234)
    out = [space.sample(rng) for _ in range(15)]
    out.append([0] * len(space))
    out.append([v.n_options - 1 for v in space])
    return out


# -- search spaces ------------------------------------------------------------------------------------
def test_variable_counts_and_breakdown() -> None:
    gan, hard = build_space("gan"), build_space("gan_hard")
    assert len(gan) == 21 and len(hard) == 72
    count = lambda space, prefix: sum(n.startswith(prefix) for n in space.names)
    assert (count(gan, "g.cell"), count(gan, "g.proj"), count(gan, "d.")) == (21, 0, 0)
    assert (count(hard, "g.cell"), count(hard, "g.proj"), count(hard, "d.cell")) == (21, 11, 40)
    assert [v.n_options for v in gan][:7] == [3, 3, 7, 7, 7, 7, 7]
    assert round(gan.log10_size, 2) == 15.54 and round(hard.log10_size, 2) == 52.46
    with pytest.raises(ValueError, match="gan_hard"):
        build_space("hard")


@pytest.mark.parametrize("space_name", ["gan", "gan_hard"])
def test_every_genome_builds_and_takes_a_g_and_d_step(space_name: str) -> None:
    space = build_space(space_name)
    torch.manual_seed(0)
    for genome in genomes(space_name):
        model = build_gan_model(space, genome, **TINY)
        opts = make_optimizers(model)
        real = torch.rand(4, 3, IMG, IMG) * 2 - 1
        d_before = {k: v.clone() for k, v in model.D.state_dict().items()}
        d_loss = discriminator_step(model, opts["dis"], real)
        g_before = [p.clone() for p in model.G.parameters()]
        g_loss = generator_step(model, opts["gen"], 8, 0.999, "cpu")
        assert np.isfinite(d_loss) and np.isfinite(g_loss), genome
        assert model.G(torch.randn(5, TINY["latent_dim"])).shape == (5, 3, IMG, IMG)
        assert model.D(real).shape == (4, 1)
        assert any(not torch.equal(d_before[k], v) for k, v in model.D.state_dict().items()), genome
        assert any(not torch.equal(a, b) for a, b in zip(g_before, model.G.parameters())), genome


@pytest.mark.parametrize("space_name", ["gan", "gan_hard"])
def test_unowned_keys_have_the_same_shapes_in_every_genome(space_name: str) -> None:
    space = build_space(space_name)
    shapes = []
    for genome in genomes(space_name):
        state = build_gan_model(space, genome, **TINY).state_dict()
        shapes.append({k: tuple(v.shape) for k, v in state.items() if space.owner(k) is None})
        # every G key has its G_ema twin with the same owner
        for k in state:
            if k.startswith("G."):
                twin = "G_ema." + k[2:]
                assert twin in state and space.owner(twin) == space.owner(k), k
    assert all(s == shapes[0] for s in shapes)
    assert any(k.startswith("G.to_rgb") for k in shapes[0]) and any(k.startswith("D.head") for k in shapes[0])


def test_variables_own_their_layers() -> None:
    space = build_space("gan_hard")
    values = space.decode(genomes("gan_hard")[0])
    values.update({"g.cell0.c3": "conv_3x3", "d.cell2.down1": "conv_5x5", "g.proj1.linear": "whole/prev"})
    state = build_gan_model(space, space.encode(values), **TINY).state_dict()
    assert space.owner("G.cells.0.c3.1.weight") == space.index("g.cell0.c3")
    assert space.owner("G_ema.cells.0.c3.1.weight") == space.index("g.cell0.c3")
    assert "D.blocks.2.down1.op.1.weight_orig" in state  # conv down edge, spectral norm
    assert space.owner("D.blocks.2.down1.op.1.weight_orig") == space.index("d.cell2.down1")
    # whole latent (6) to the previous width (2x2) of projection 1 with gf_dim 8 channels
    assert tuple(state["G.projections.1.linear.weight"].shape) == (8 * 2 * 2, 6)
    assert space.owner("G.projections.1.linear.weight") == space.index("g.proj1.linear")
    assert space.owner("G.cells.1.skip_in.0.weight") is None


# -- discriminator: both branches reach the output ----------------------------------------------------
def test_discriminator_cell_sums_both_branches() -> None:
    torch.manual_seed(0)
    ops = {"c0": "conv_1x1", "c1": "conv_3x3", "c2": "conv_3x3", "c3": "none", "c4": "none", "c5": "none",
           "c6": "conv_3x3", "downsample": True, "down0": "avg_pool_end", "down1": "conv_3x3"}
    cell = DisCell(4, 4, ops, sn=False, first=False)
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        branch1 = torch.nn.functional.avg_pool2d(cell.c1(x), 2)
        branch2 = cell.down1(cell.c6(cell.c2(x)))
        out = cell(x)
        assert out.shape == (2, 4, 4, 4)
        assert torch.allclose(out, branch1 + branch2, atol=1e-6)
        cell.c6[1].weight.add_(1.0)  # only branch 2 changes
        assert not torch.allclose(cell(x), out)


def test_changing_second_branch_weights_changes_discriminator_output() -> None:
    space = build_space("gan_hard")
    values = space.decode([0] * len(space))
    values.update({"d.cell1.c2": "conv_3x3", "d.cell1.c1": "conv_3x3", "d.cell1.c6": "none", "d.cell1.c4": "none"})
    torch.manual_seed(0)
    model = build_gan_model(space, space.encode(values), **TINY)
    x = torch.randn(3, 3, IMG, IMG)
    model.D.train()  # power iteration on: spectral norm follows the changed weight
    with torch.no_grad():
        before = model.D(x).clone()
        model.D.blocks[1].c2[1].weight_orig.mul_(-3.0)
        after = model.D(x)
    assert isinstance(model.D, SearchDiscriminator)
    assert not torch.allclose(before, after)


# -- training rules ------------------------------------------------------------------------------------
def test_n_critic_generator_batch_and_ema() -> None:
    task = GanTask(space="gan", dataset="synthetic", n_synthetic=16, img_size=IMG, batch_size=4,
                   steps_per_epoch=6, fitness="fd_digits_classifier", **TINY)
    torch.manual_seed(0)
    member = task.build(task.space.sample(random.Random(0)))
    g0 = {k: v.clone() for k, v in member.model.G.state_dict().items()}
    assert all(torch.equal(g0[k], v) for k, v in member.model.G_ema.state_dict().items())
    member.train(1)
    gen_state, dis_state = member.optimizers["gen"].state, member.optimizers["dis"].state
    assert {int(s["step"]) for s in dis_state.values()} == {6}  # D every step
    assert {int(s["step"]) for s in gen_state.values()} == {2}  # G at steps 0 and 5
    assert member.extras_state()["step"] == 6
    fresh = task.build(task.space.sample(random.Random(0)))
    fresh.load_extras(member.extras_state())
    assert fresh.step == 6
    # one G step on a fresh copy: ema = 0.999 * G_before + 0.001 * G_after, exactly
    torch.manual_seed(1)
    m = build_gan_model(task.space, [0] * 21, **TINY)
    opts = make_optimizers(m)
    before = m.G.cells[0].up0.op[1].weight.detach().clone()
    generator_step(m, opts["gen"], 8, 0.999, "cpu")
    after = m.G.cells[0].up0.op[1].weight.detach()
    assert not torch.equal(before, after)
    assert torch.allclose(m.G_ema.cells[0].up0.op[1].weight, torch.lerp(before, after, 0.001), atol=1e-7)
    assert all(g.grad is None or torch.count_nonzero(g.grad) == 0 for g in m.G_ema.parameters())
    assert all(p.requires_grad for p in m.D.parameters())  # restored after the G step


# -- data ------------------------------------------------------------------------------------------------
def test_digits_and_synthetic_data() -> None:
    x = load_digits_images(16, 3)
    assert x.shape == (1797, 3, 16, 16) and x.dtype == torch.uint8
    f = to_float(x)
    assert f.min() == -1.0 and f.max() == 1.0
    s = load_images("synthetic", None, 48, 3, n_synthetic=10)
    assert s.shape == (10, 3, 48, 48) and torch.equal(s, load_images("synthetic", None, 48, 3, n_synthetic=10))


@pytest.mark.parametrize("dataset,folder,size", [("cifar10", "cifar-10-batches-py", 32), ("stl10", "stl10_binary", 48)])
def test_missing_data_says_where_to_put_it(tmp_path: Path, dataset: str, folder: str, size: int) -> None:
    with pytest.raises(DataUnavailable) as err:
        GanTask(dataset=dataset, data_dir=str(tmp_path), img_size=size, bottom_width=size // 8)
    msg = str(err.value)
    assert str(tmp_path / folder) in msg and "download=True" in msg
    with pytest.raises(DataUnavailable, match="data_dir"):
        GanTask(dataset=dataset, data_dir=None, img_size=size, bottom_width=size // 8)


def test_bad_arguments_name_the_key() -> None:
    with pytest.raises(ValueError, match="task.args.fitness"):
        GanTask(dataset="synthetic", fitness="fid_fast")
    with pytest.raises(ValueError, match="img_size == 8 \\* bottom_width"):
        GanTask(dataset="synthetic", img_size=32, bottom_width=3)


# -- FID and IS ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def random_inception_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TORCH_HOME whose hub cache holds random weights with the FID Inception's keys and shapes."""
    import torchvision

    home = tmp_path_factory.mktemp("torch_home")
    torch.manual_seed(0)
    net = torchvision.models.inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=False)
    # keep activations in a sane range through ~90 random layers: BN running stats from one batch
    net.train()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.momentum = None
        net(torch.rand(4, 3, 299, 299) * 2 - 1)
    folder = home / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(net.state_dict(), folder / INCEPTION_WEIGHTS_FILE)
    return home


def test_fid_path_equals_pytorch_fid(random_inception_home: Path, monkeypatch: pytest.MonkeyPatch,
                                     tmp_path: Path) -> None:
    from pytorch_fid.fid_score import calculate_frechet_distance
    from pytorch_fid.inception import InceptionV3

    monkeypatch.setenv("TORCH_HOME", str(random_inception_home))
    task = GanTask(space="gan", dataset="synthetic", n_synthetic=4, n_fid=4, eval_batch_size=2, img_size=IMG,
                   fitness="fid", cache_dir=str(tmp_path), **TINY)
    torch.manual_seed(0)
    member = task.build(task.space.sample(random.Random(3)))
    torch.manual_seed(7)
    fake_imgs = generate(member.model.G_ema, 4, 2)

    # pytorch-fid alone: its InceptionV3 (pool3) on [0, 1] images, loaded from $TORCH_HOME/hub/checkpoints
    ref_net = InceptionV3([3]).eval()
    with torch.no_grad():
        real = torch.cat([ref_net(b.float() / 255.0)[0] for b in task.images.split(2)]).flatten(1).double().numpy()
        fake = torch.cat([ref_net((b + 1) / 2)[0] for b in fake_imgs.split(2)]).flatten(1).double().numpy()
    assert np.isfinite(fake).all() and fake.std() > 0
    mine = extract_features(task.extractor(), fake_imgs, 2)
    # float32 rounding differs slightly ([-1, 1] -> [0, 1] here, uint8 / 255 there): compare to the scale
    close = lambda a, b: np.allclose(a, b, rtol=1e-4, atol=1e-5 * np.abs(b).max())
    assert close(mine, fake)
    mu_real, sigma_real = reference_statistics(task.images, task.extractor(), tmp_path / "check.npz", 2)
    assert close(mu_real, real.mean(0)) and close(sigma_real, np.cov(real, rowvar=False))

    # evaluate() hands exactly these features' statistics and the cached ones to pytorch-fid's function
    # (spied on here: a 2048-d sqrtm takes minutes on a loaded 2-core machine; the slow test runs it)
    calls = []

    def spy(mu1, sigma1, mu2, sigma2, eps=1e-6):
        calls.append((mu1, sigma1, mu2, sigma2))
        return 123.25

    monkeypatch.setattr("pytorch_fid.fid_score.calculate_frechet_distance", spy)
    cache = tmp_path / stats_cache_name("synthetic", IMG, 3, 4, "inception_pool3")
    torch.manual_seed(7)
    assert member.evaluate() == -123.25
    assert cache.is_file() and len(calls) == 1
    mu1, sigma1, mu2, sigma2 = calls[0]
    assert np.array_equal(mu1, mine.mean(0)) and np.array_equal(sigma1, np.cov(mine, rowvar=False))
    with np.load(cache) as f:
        assert np.array_equal(mu2, f["mu"]) and np.array_equal(sigma2, f["sigma"])
    assert np.array_equal(mu2, mu_real) and np.array_equal(sigma2, sigma_real)


def test_frechet_distance_is_pytorch_fids_function() -> None:
    from pytorch_fid.fid_score import calculate_frechet_distance

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(200, 8)), rng.normal(1.0, 2.0, size=(300, 8))
    mu, sigma = b.mean(0), np.cov(b, rowvar=False)
    expected = calculate_frechet_distance(a.mean(0), np.cov(a, rowvar=False), mu, sigma)
    assert frechet_distance(a, mu, sigma) == expected and expected > 8.0  # mean shift alone gives 8


@pytest.mark.slow
def test_fid_end_to_end_with_real_sqrtm(random_inception_home: Path, monkeypatch: pytest.MonkeyPatch,
                                        tmp_path: Path) -> None:
    from pytorch_fid.fid_score import calculate_frechet_distance

    monkeypatch.setenv("TORCH_HOME", str(random_inception_home))
    task = GanTask(space="gan", dataset="synthetic", n_synthetic=4, n_fid=4, eval_batch_size=2, img_size=IMG,
                   fitness="fid", cache_dir=str(tmp_path), **TINY)
    torch.manual_seed(0)
    member = task.build([0] * 21)
    # 4 samples in 2048 dimensions make both covariances singular and sqrtm of their product ill-defined;
    # a cached reference with identity covariance keeps the distance well defined
    mu = np.zeros(2048)
    np.savez(tmp_path / stats_cache_name("synthetic", IMG, 3, 4, "inception_pool3"), mu=mu, sigma=np.eye(2048))
    torch.manual_seed(7)
    mine = extract_features(task.extractor(), generate(member.model.G_ema, 4, 2), 2)
    torch.manual_seed(7)
    fitness = member.evaluate()
    assert fitness == -calculate_frechet_distance(mine.mean(0), np.cov(mine, rowvar=False), mu, np.eye(2048))


def test_inception_score_from_logits(random_inception_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert inception_score(torch.zeros(20, 1008), splits=2) == pytest.approx((1.0, 0.0))
    confident = torch.full((10, 1008), -1e4)
    confident[torch.arange(10), torch.arange(10)] = 0.0  # 10 images, 10 different certain classes
    assert inception_score(confident, splits=1) == pytest.approx((10.0, 0.0))
    monkeypatch.setenv("TORCH_HOME", str(random_inception_home))
    net = load_inception(allow_download=False)
    images = torch.rand(2, 3, IMG, IMG) * 2 - 1
    pool, logits = net.pool_and_logits(images)
    assert pool.shape == (2, 2048) and logits.shape == (2, 1008)
    assert torch.allclose(logits, net.fc(pool))


def test_final_scores_fid_and_inception_score(random_inception_home: Path, monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    monkeypatch.setenv("TORCH_HOME", str(random_inception_home))
    calls = []
    monkeypatch.setattr("pytorch_fid.fid_score.calculate_frechet_distance",
                        lambda *args, **kwargs: calls.append(args) or 42.5)  # 2048-d sqrtm: see above
    task = GanTask(space="gan", dataset="synthetic", n_synthetic=4, eval_batch_size=2, img_size=IMG,
                   fitness="fd_digits_classifier", cache_dir=str(tmp_path), **TINY)
    member = task.build([0] * 21)
    torch.manual_seed(3)
    scores = member.final_scores(n=4, splits=2)
    torch.manual_seed(3)
    images = torch.cat([generate(member.model.G_ema, 2, 2) for _ in range(2)])
    pool, logits = load_inception(allow_download=False).pool_and_logits(images)
    assert scores["fid"] == 42.5 and np.allclose(calls[0][0], pool.double().numpy().mean(0), rtol=1e-6)
    is_mean, is_std = inception_score(logits, splits=2)
    assert scores["is_mean"] == pytest.approx(is_mean, rel=1e-6) and scores["is_std"] == pytest.approx(is_std, abs=1e-6)
    assert scores["is_mean"] >= 1.0


def test_missing_inception_weights_name_file_and_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    folder = tmp_path / "hub" / "checkpoints"
    with pytest.raises(InceptionWeightsUnavailable) as err:
        load_inception(allow_download=False)
    assert INCEPTION_WEIGHTS_FILE in str(err.value) and str(folder) in str(err.value)

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr("pytorch_fid.inception.load_state_dict_from_url", offline)
    task = GanTask(space="gan", dataset="synthetic", n_synthetic=4, n_fid=4, img_size=IMG, fitness="fid",
                   cache_dir=str(tmp_path / "cache"), **TINY)
    member = task.build([0] * 21)
    with pytest.raises(InceptionWeightsUnavailable) as err:
        member.evaluate()
    msg = str(err.value)
    assert INCEPTION_WEIGHTS_FILE in msg and str(folder) in msg and "downloading it failed" in msg


def test_digits_classifier_features_are_cached_and_not_called_fid(tmp_path: Path) -> None:
    a = DigitsClassifierFeatures(16, 1, tmp_path, epochs=1)
    assert (tmp_path / "digits_classifier_16px_1ch.pt").is_file()
    b = DigitsClassifierFeatures(16, 1, tmp_path, epochs=1)
    x = to_float(load_digits_images(16, 1))
    fa, fb = extract_features(a, x[:200]), extract_features(b, x[:200])
    assert np.array_equal(fa, fb) and "fid" not in a.name
    mu, sigma = fa.mean(0), np.cov(fa, rowvar=False)
    noise = extract_features(a, torch.rand(200, 1, 16, 16) * 2 - 1)
    assert frechet_distance(extract_features(a, x[200:400]), mu, sigma) < frechet_distance(noise, mu, sigma)


# -- configs ---------------------------------------------------------------------------------------------------
PAPER = {"gan_cifar10": ("gan", "cifar10", 40, 256, 4, 32), "gan_hard_cifar10": ("gan_hard", "cifar10", 40, 256, 4, 32),
         "gan_hard_stl10": ("gan_hard", "stl10", 128, 270, 6, 48)}


@pytest.mark.parametrize("name", sorted(PAPER))
def test_paper_configs(name: str) -> None:
    cfg = yaml.safe_load((SPACES / f"{name}.yaml").read_text())
    args, algo = cfg["task"]["args"], cfg["algorithm"]
    assert cfg["task"]["target"] == "tasks.gan:GanTask"
    assert (algo["population"], algo["e_total"], algo["e_step"]) == (24, 300, 10)
    space, dataset, batch, gf, bw, img = PAPER[name]
    assert (args["space"], args["dataset"], args["batch_size"], args["gf_dim"], args["bottom_width"],
            args["img_size"]) == (space, dataset, batch, gf, bw, img)
    assert args["fitness"] == "fid" and args["n_fid"] == 5000
    assert (args["df_dim"], args["latent_dim"]) == (128, 120)
    task = GanTask(**{**args, "dataset": "synthetic", "n_synthetic": 8, "data_dir": None})
    assert len(task.space) == (21 if space == "gan" else 72)


def test_digits_config_builds() -> None:
    cfg = yaml.safe_load((SPACES / "gan_digits.yaml").read_text())
    args = cfg["task"]["args"]
    assert args["dataset"] == "digits" and args["fitness"] == "fd_digits_classifier"
    task = GanTask(**args)
    assert task.steps_per_epoch >= 1 and len(task.images) == 1797


# -- mixing with pbt_evo's weight inheritance ----------------------------------------------------------------
def test_mixing_two_gan_hard_individuals_moves_taken_layers() -> None:
    from pbt_evo.weights import inherit_model

    space = build_space("gan_hard")
    base_v = space.decode(genomes("gan_hard")[0])
    donor_v = space.decode(genomes("gan_hard")[1])
    taken_values = {"g.cell0.c3": ("conv_1x1", "conv_5x5"), "d.cell1.c2": ("none", "dil_conv_3x3"),
                    "g.proj1.linear": ("part/target", "whole/bottom"), "d.cell0.down0": ("avg_pool_end", "conv_3x3")}
    for name, (b, d) in taken_values.items():
        base_v[name], donor_v[name] = b, d
    child_v = {**base_v, **{name: d for name, (_, d) in taken_values.items()}}
    taken = [space.index(n) for n in taken_values]
    torch.manual_seed(0)
    base = build_gan_model(space, space.encode(base_v), **TINY).state_dict()
    torch.manual_seed(1)
    donor = build_gan_model(space, space.encode(donor_v), **TINY).state_dict()
    torch.manual_seed(2)
    child_model = build_gan_model(space, space.encode(child_v), **TINY)
    fresh = {k: v.clone() for k, v in child_model.state_dict().items()}

    child = inherit_model(base, donor, fresh, space, taken=taken, shrink_perturb_coefs=(0.4, 0.1))
    child_model.load_state_dict(child)  # keys and shapes fit the child's architecture exactly
    moved = [k for k in child if space.owner(k) in taken]
    for prefix in ("G.cells.0.c3.", "G_ema.cells.0.c3.", "D.blocks.1.c2.", "G.projections.1.linear.",
                   "G_ema.projections.1.linear.", "D.blocks.0.down0.op.1."):
        assert any(k.startswith(prefix) for k in moved), prefix
    for k in moved:
        if child[k].is_floating_point():
            assert torch.equal(child[k], 0.4 * donor[k] + 0.1 * fresh[k]), k
        else:
            assert torch.equal(child[k], donor[k]), k
    assert not torch.equal(child["G.cells.0.c3.1.weight"], donor["G.cells.0.c3.1.weight"])
    assert base["G.cells.0.c3.1.weight"].shape != child["G.cells.0.c3.1.weight"].shape  # 1x1 -> 5x5 moved in
    for k in child:
        if space.owner(k) not in taken:
            assert torch.equal(child[k], base[k]), k
    x = torch.randn(2, 3, IMG, IMG)
    assert child_model.D(x).shape == (2, 1) and child_model.G_ema(torch.randn(2, 6)).shape == (2, 3, IMG, IMG)


def test_cost_counts_the_flops_an_epoch_spends_on_each_genome():
    """The scheduler's estimate before a member's time is measured: a 1x1 conv made 3x3 in the first
    generator cell (8 channels at 4x4) adds 8 x 8 x 16 multiply-adds per extra tap, 2 FLOPs each, in every
    generator pass ((n_critic + 2) per n_critic steps); the caller's random streams are left alone."""
    task = GanTask(space="gan", dataset="synthetic", n_synthetic=16, img_size=16, bottom_width=2, gf_dim=8,
                   df_dim=8, latent_dim=12, batch_size=4, fitness="fd_digits_classifier")
    i = [v.name for v in task.space].index("g.cell0.c0")
    small, big = [0] * len(task.space), [0] * len(task.space)
    small[i], big[i] = task.space[i].options.index("conv_1x1"), task.space[i].options.index("conv_3x3")
    rng = torch.get_rng_state()
    extra = (task.cost(big) - task.cost(small)) * 1e9
    assert torch.equal(rng, torch.get_rng_state())
    k = task.n_critic
    assert extra == pytest.approx((k + 2) / k * 2 * 8 * 8 * (4 * 4) * (9 - 1), rel=1e-9)
