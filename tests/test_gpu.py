"""Members on a CUDA GPU through the serial map: digits and MNIST-1D searches, several members sharing the GPU,
exact resume, states moved GPU -> safetensors -> GPU bit for bit, children mixed on the GPU.

Marked ``gpu``: excluded from the default selection (setup.cfg), run on a GPU machine by
``benchmarks/gpu_check.sh`` (docs/PERFORMANCE.md, "GPU check"). Without CUDA every test here fails, saying so.
Deterministic cuDNN / cuBLAS kernels are switched on first (``gpu_share.deterministic_kernels``): exactness on a
GPU is only defined for them.
"""

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from deap import tools
from safetensors.numpy import load_file

import pbt_evo
from pbt_evo import Context, FreshState, Individual, Inherit, MixedState, MutateWeights, Reinit, StoredState, statefile
from pbt_evo.handles import capture
from pbt_evo.rng import seed_everything
from pbt_evo.train import train_member
from pbt_evo.variants import make_toolbox
from pbt_evo.weights import optimizer_state_by_name
from tasks.digits import DigitsTask
from tasks.mnist1d import MNIST1DTask

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from gpu_share import TASK_ARGS, deterministic_kernels, run_shared, sample_jobs  # noqa: E402

DEVICE = "cuda"
NO_CUDA = ("this test needs a CUDA GPU, and torch sees none here (torch.cuda.is_available() is False): tests marked"
           " gpu run on a GPU machine, through bash benchmarks/gpu_check.sh (docs/PERFORMANCE.md, 'GPU check')")

pytestmark = [pytest.mark.gpu, pytest.mark.usefixtures("cuda")]


@pytest.fixture(scope="module")
def cuda():
    if not torch.cuda.is_available():
        pytest.fail(NO_CUDA, pytrace=False)
    deterministic_kernels()


@pytest.fixture
def no_tf32():
    """float32 convolutions and matrix products (cuDNN uses TF32 by default), to compare with the CPU closely."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def same_bits(x, y):
    """Same dtype, shape and bytes (torch.equal would take -0.0 for 0.0)."""
    return x.dtype == y.dtype and x.shape == y.shape and x.cpu().numpy().tobytes() == y.cpu().numpy().tobytes()


def digits_genome(task):
    return task.space.encode({"op0": "conv3x3", "op1": "resblock3x3", "op2": "sepconv3x3", "act0": "relu",
                              "act1": "swish", "act2": "tanh", "pool": "avg", "dropout": 0.1})


@pytest.mark.parametrize("make", [lambda d: DigitsTask(channels=8, device=d),
                                  lambda d: MNIST1DTask(channels=8, device=d)], ids=["digits", "mnist1d"])
def test_a_fresh_member_on_cuda_has_the_cpu_weights_and_computes_the_same_function(make, no_tf32):
    cpu, gpu = make("cpu"), make(DEVICE)
    genome = cpu.space.sample()
    a, b = FreshState(7).materialise(cpu, genome), FreshState(7).materialise(gpu, genome)
    for (key, x), (_, y) in zip(a.model.state_dict().items(), b.model.state_dict().items(), strict=True):
        assert y.device.type == "cuda" and same_bits(x, y), key
    assert gpu.data["val"][0].device.type == "cuda"
    with torch.no_grad():
        want = a.model.eval()(cpu.data["val"][0]).double()
        got = b.model.eval()(gpu.data["val"][0]).double().cpu()
    assert ((got - want).norm() / want.norm()).item() < 1e-5


def test_a_trained_state_goes_gpu_to_safetensors_to_gpu_bit_for_bit_and_trains_on_identically(tmp_path):
    task = DigitsTask(channels=8, device=DEVICE)
    genome = digits_genome(task)
    member = FreshState(3).materialise(task, genome)
    seed_everything(1)
    member.train(1)
    weights = {k: v.clone() for k, v in member.model.state_dict().items()}
    moments = {n: {k: v.clone() for k, v in member.optimizers["adam"].state[p].items()}
               for n, p in member.model.named_parameters()}
    path = tmp_path / "member.safetensors"
    path.write_bytes(statefile.to_bytes(capture(member)))
    back = StoredState(str(path)).materialise(task, genome)
    for key, value in back.model.state_dict().items():
        assert value.device.type == "cuda" and same_bits(value, weights[key]), key
    for name, p in back.model.named_parameters():
        state = back.optimizers["adam"].state[p]
        assert state.keys() == moments[name].keys() and state, name
        for k, v in state.items():
            assert same_bits(v, moments[name][k]) and v.device == moments[name][k].device, (name, k)
    assert back.evaluate() == member.evaluate()
    for m in (member, back):  # one more epoch from the original and from the copy: the same bits
        seed_everything(2)
        m.train(1)
    for (key, x), (_, y) in zip(member.model.state_dict().items(), back.model.state_dict().items(), strict=True):
        assert same_bits(x, y), key


def test_a_child_mixed_on_cuda_equals_the_child_mixed_on_the_cpu_bit_for_bit():
    cpu, gpu = DigitsTask(channels=8), DigitsTask(channels=8, device=DEVICE)
    base_genome, donor_genome = digits_genome(cpu), cpu.space.sample()
    base = train_member(Context(cpu), Individual(base_genome, handle=FreshState(1), seed=1), 1).state
    donor = train_member(Context(cpu), Individual(donor_genome, handle=FreshState(2), seed=2), 1).state
    child = list(base_genome)
    child[0], child[2] = donor_genome[0], donor_genome[2]
    child[1] = (base_genome[1] + 1) % len(cpu.space[1].options)
    steps = (Inherit(StoredState(donor), (0, 2), optimizer_policy="donor"), Reinit((1,)), MutateWeights(5))
    recipe = MixedState(StoredState(base), steps, seed=11)
    a, b = recipe.materialise(cpu, child), recipe.materialise(gpu, child)
    for (key, x), (_, y) in zip(a.model.state_dict().items(), b.model.state_dict().items(), strict=True):
        assert y.device.type == "cuda" and same_bits(x, y), key
    want = optimizer_state_by_name(a.optimizers["adam"], a.model)
    got = optimizer_state_by_name(b.optimizers["adam"], b.model)
    assert want["state"].keys() == got["state"].keys() and want["state"]
    for name, state in want["state"].items():
        for k, v in state.items():
            other = got["state"][name][k]
            assert same_bits(torch.as_tensor(np.asarray(v)), torch.as_tensor(np.asarray(other))), (name, k)


def search(task, generations, population=8):
    """A seeded serial pbt_nas search; per generation: the trained members and the memory held on the GPU."""
    import gc

    tb = make_toolbox("pbt_nas", task.space, population=population)
    tb.map = pbt_evo.SerialMap(task)
    held, trained = [], []

    def hook(g):
        gc.collect()
        held.append(torch.cuda.memory_allocated())
        trained.append([(list(ind), ind.fitness.values[0]) for ind in g.trained])

    random.seed(0)
    hof = tools.HallOfFame(1)
    try:
        _, log = pbt_evo.ea_pbt(tb.population(), tb, e_total=generations, e_step=1, halloffame=hof, hook=hook)
    finally:
        tb.map.close()
    return trained, held, log, hof[0].fitness.values[0]


def test_a_digits_search_on_cuda_trains_every_member_on_the_gpu_and_frees_each_one():
    task = DigitsTask(channels=32, device=DEVICE)
    data = sum(t.numel() * t.element_size() for split in task.data.values() for t in split)
    torch.cuda.reset_peak_memory_stats()
    trained, held, log, best = search(task, generations=4)
    assert [r["failed"] for r in log] == [0] * 4 and all(len(g) == 8 for g in trained)
    assert all(0.0 < f <= 1.0 for g in trained for _, f in g) and best > 0.8
    # one member at a time on the GPU: what stays after each generation does not grow with the members trained
    # (a member of 32 channels with its Adam moments holds >= 0.3 MiB; 24 leaked would be > 7 MiB)
    assert held[-1] - held[0] < 2**20, held
    assert torch.cuda.max_memory_allocated() > held[0] >= data


def test_mnist1d_members_on_cuda_reach_the_cpu_members_accuracy_and_the_search_goes_on(no_tf32):
    # same genomes, initial weights and minibatch order on both devices, no dropout: the first generation's
    # accuracies on 1,000 validation signals differ only by float rounding (a few signals at most)
    cpu_first, _, _, _ = search(MNIST1DTask(channels=8), generations=1)
    gpu_trained, held, log, best = search(MNIST1DTask(channels=8, device=DEVICE), generations=3)
    assert [g for g, _ in gpu_trained[0]] == [g for g, _ in cpu_first[0]]
    diffs = [abs(a - b) for (_, a), (_, b) in zip(gpu_trained[0], cpu_first[0], strict=True)]
    assert max(diffs) <= 0.005, diffs
    assert [r["failed"] for r in log] == [0] * 3 and best > max(f for _, f in cpu_first[0]) - 0.005
    assert held[-1] - held[0] < 2**20, held


RUN = ("import sys; sys.path.insert(0, sys.argv.pop(1)); from gpu_share import deterministic_kernels;"
       " deterministic_kernels(); from pbt_evo.run import main; sys.exit(main(sys.argv[1:]))")


def runner(config, out):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return [sys.executable, "-c", RUN, str(ROOT / "benchmarks"), str(config), "--out", str(out), "--quiet"], env


def outcome(run):
    rows = [json.loads(x) for x in (run / "population.jsonl").read_text().splitlines()]
    population = [{k: r[k] for k in ("gen", "id", "genome", "fitness", "epochs", "origin", "parents")} for r in rows]
    best = load_file(str(run / "best" / "model.safetensors"))  # its arrays (the file's header order varies)
    return population, {k: (v.dtype.str, v.shape, v.tobytes()) for k, v in best.items()}


def test_a_run_on_cuda_killed_mid_way_resumes_to_the_uninterrupted_result(tmp_path, killed_after):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({
        "name": "t", "task": {"target": "tasks.digits:DigitsTask", "args": {"channels": 8, "device": DEVICE}},
        "algorithm": {"population": 6, "e_total": 8, "e_step": 1}, "parallel": {"backend": "serial"},
        "output": {"tensorboard": False}}))
    cmd, env = runner(config, tmp_path / "a")
    subprocess.run(cmd, check=True, env=env, capture_output=True, cwd=ROOT)
    cmd, env = runner(config, tmp_path / "b")
    reached = killed_after(cmd, tmp_path / "b" / "t", "gen_00002", cwd=ROOT, env=env)
    assert reached < "gen_00008", "the run finished before it could be killed"
    resumed = subprocess.run(cmd[:-1], env=env, cwd=ROOT, capture_output=True, text=True)  # not --quiet
    assert resumed.returncode == 0 and "resuming" in resumed.stdout, resumed.stderr
    a, b = outcome(tmp_path / "a" / "t"), outcome(tmp_path / "b" / "t")
    if a != b:  # say whether resuming or the GPU's kernels differ: a second uninterrupted run tells
        cmd, env = runner(config, tmp_path / "c")
        subprocess.run(cmd, check=True, env=env, capture_output=True, cwd=ROOT)
        same = outcome(tmp_path / "c" / "t") == a
        pytest.fail("the resumed run differs from the uninterrupted one; two uninterrupted runs "
                    + ("agree: resuming on the GPU loses something" if same else "differ too: the kernels are not"
                       " deterministic on this GPU"))


def test_a_member_trained_beside_another_on_the_gpu_equals_the_member_trained_alone():
    args = {**TASK_ARGS, "device": DEVICE}
    jobs = sample_jobs(2, 2, args)
    alone = run_shared(1, jobs[:1], args)
    shared = run_shared(2, jobs, args)
    assert shared["workers"][0]["digests"] == alone["workers"][0]["digests"]
    assert shared["workers"][0]["fitness"] == alone["workers"][0]["fitness"]
    assert shared["device_mib"] > alone["device_mib"] > 0
