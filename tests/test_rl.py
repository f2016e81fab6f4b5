"""Tests of tasks.rl: DrQ-v2 on real dm_control environments with the PBT-NAS search spaces."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import glob
import math
import random

import numpy as np
import pytest
import torch

from tasks.rl import RLTask
from tasks.rl.agent import random_shift, schedule
from tasks.rl.env import DMCEnv, default_camera
from tasks.rl.networks import SNLinear, spectral_weight
from tasks.rl.replay import ReplayBuffer
from tasks.rl.shared_replay import SEGMENT_PREFIX
from tasks.rl.spaces import drqv2_default, pixel_space, state_space

TINY = dict(hidden_dim=32, encoder_dim=16, batch_size=4, num_seed_frames=20, num_expl_steps=10,
            eval_episodes=1, frames_per_epoch=200, buffer_size=1000, torch_threads=1)


def tiny_task(obs: str, **kw) -> RLTask:
    return RLTask("cartpole", "swingup", obs=obs, **{**TINY, **kw})


@pytest.fixture(scope="module")
def pixel_task() -> RLTask:
    np.random.seed(0)
    return tiny_task("pixels")


@pytest.fixture(scope="module")
def state_task() -> RLTask:
    np.random.seed(0)
    return tiny_task("states")


def filled_extras(task: RLTask, steps: int = 30) -> dict:
    """A member's extras after ``steps`` real environment steps with random actions."""
    np.random.seed(1)
    torch.manual_seed(1)
    member = task.build(task.space.sample(random.Random(1)))
    env = task.env
    obs = env.reset()
    member.replay.add_first(obs)
    for _ in range(steps):
        a = np.random.uniform(-1, 1, env.action_dim).astype(np.float32)
        obs, r, d, _ = env.step(a)
        member.replay.add(a, r, d, obs)
    return member.extras_state()


def genomes(space, n: int = 20) -> list[list[int]]:
    rng = random.Random(123)
    out = [space.sample(rng) for _ in range(n)]
    out.append([0] * len(space))
    out.append([v.n_options - 1 for v in space])
    return out


# -- search spaces -------------------------------------------------------------------------------------
def test_space_sizes_match_the_paper():
    px, st = pixel_space(), state_space()
    assert len(px) == 36 and len(st) == 36
    assert 4.5e21 < 10 ** px.log10_size < 4.7e21  # paper: ~4.6e21
    assert math.isclose(10 ** st.log10_size, 4 ** 32 * 2 ** 4, rel_tol=1e-9)
    per_net = {net: sum(v.name.startswith(net + ".") for v in px) for net in ("encoder", "actor", "critic")}
    assert per_net == {"encoder": 8, "actor": 10, "critic": 18}
    assert px["encoder.layer1"].n_options == 10 and st["encoder.layer1"].n_options == 4
    assert px["actor.feature_dim"].options == (25, 50, 100, 150)
    assert [v.name for v in px] == [v.name for v in st]


def test_critic_layers_own_their_target_copies():
    space = pixel_space()
    assert space["critic.q2.layer3"].owns == ("critic.Q2.3", "critic_target.Q2.3")
    assert set(space["critic.feature_dim"].owns) == {
        "critic.trunk", "critic.Q1.0", "critic.Q2.0", "critic_target.trunk", "critic_target.Q1.0",
        "critic_target.Q2.0"}
    weightless = [v.name for v in space if not v.owns]
    assert all(".act" in n or n.endswith(("spectral_norm", "trunk_act")) for n in weightless)
    assert len(weightless) == 36 - 3 * 4 - 2


@pytest.mark.parametrize("obs", ["states", "pixels"])
def test_owned_prefixes_exist_and_never_overlap(obs, request):
    task = request.getfixturevalue(f"{'pixel' if obs == 'pixels' else 'state'}_task")
    space = task.space
    genome = [v.n_options - 1 for v in space]  # every searchable layer present (residual / sepconv)
    keys = list(task.build(genome).model.state_dict())
    for v in space:
        for prefix in v.owns:
            assert any(k.startswith(prefix + ".") for k in keys), (v.name, prefix)
    for k in keys:
        owners = [v.name for v in space if v.owns_key(k)]
        assert len(owners) <= 1, (k, owners)


@pytest.mark.parametrize("obs", ["states", "pixels"])
def test_unowned_shapes_never_depend_on_the_genome(obs, request):
    """What makes mixing valid: pbt_evo copies unowned tensors from the base parent."""
    task = request.getfixturevalue(f"{'pixel' if obs == 'pixels' else 'state'}_task")
    space = task.space
    gs = genomes(space, 6)
    shapes = []
    for g in gs:
        sd = task.build(g).model.state_dict()
        shapes.append({k: tuple(t.shape) for k, t in sd.items() if space.owner(k) is None})
    for s in shapes[1:]:
        assert s == shapes[0]
    assert "encoder.net.0.act" not in shapes[0]
    assert {"actor.head.weight", "critic.Q1_head.weight", "critic_target.Q2_head.bias"} <= set(shapes[0])
    # and the representation dimension does change the shapes it owns
    small = task.build(space.encode({**space.decode(gs[0]), "critic.feature_dim": 25})).model.state_dict()
    big = task.build(space.encode({**space.decode(gs[0]), "critic.feature_dim": 150})).model.state_dict()
    assert small["critic_target.trunk.linear.weight"].shape[0] == 25
    assert big["critic_target.trunk.linear.weight"].shape[0] == 150
    assert big["critic.Q1.0.linear.weight"].shape[1] == 150 + task.env.action_dim


def test_spectral_norm_keeps_keys_and_normalises():
    space = state_space()
    base = space.decode(drqv2_default(space))
    task = tiny_task("states")
    off = task.build(space.encode(base)).model.state_dict()
    on = task.build(space.encode({**base, "actor.spectral_norm": True, "critic.q1.spectral_norm": True})
                    ).model.state_dict()
    assert {k: v.shape for k, v in off.items()} == {k: v.shape for k, v in on.items()}
    layer = SNLinear(20, 30, spectral=True)
    for _ in range(50):  # power iteration converges on the top singular value
        w = spectral_weight(layer.weight, layer.sn_u, training=True)
    assert torch.linalg.matrix_norm(w.detach(), ord=2).item() == pytest.approx(1.0, abs=1e-3)


# -- agent ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("obs", ["states", "pixels"])
def test_every_sampled_genome_builds_and_updates(obs, request):
    task = request.getfixturevalue(f"{'pixel' if obs == 'pixels' else 'state'}_task")
    extras = filled_extras(task)
    tau = task.agent_config.critic_target_tau
    for i, g in enumerate(genomes(task.space, 20 if obs == "states" else 12)):
        torch.manual_seed(i)
        member = task.build(g)
        member.load_extras(extras)
        m = member.model
        enc0 = [p.detach().clone() for p in m.encoder.parameters()]
        target0 = [p.detach().clone() for p in m.critic_target.parameters()]
        actor0 = [p.detach().clone() for p in m.actor.parameters()]
        stats = member.agent.update(member.replay.sample(4, 0.99), step=100)
        assert all(math.isfinite(v) for v in stats.values()), (g, stats)
        assert not torch.equal(enc0[0], next(m.encoder.parameters())), "encoder learns from the critic loss"
        assert any(not torch.equal(a, b) for a, b in zip(actor0, m.actor.parameters()))
        for t0, p, tp in zip(target0, m.critic.parameters(), m.critic_target.parameters()):
            torch.testing.assert_close(tp, (1 - tau) * t0 + tau * p.detach(), rtol=0, atol=1e-6)


def test_random_shift_is_a_crop_of_the_padded_image():
    torch.manual_seed(0)
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    y = random_shift(x, pad=2)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="replicate")
    for n in range(2):
        crops = [padded[n, :, i:i + 8, j:j + 8] for i in range(5) for j in range(5)]
        assert any(torch.equal(y[n], c) for c in crops)


def test_stddev_schedule():
    assert schedule("linear(1.0,0.1,500000)", 0) == 1.0
    assert schedule("linear(1.0,0.1,500000)", 500000) == pytest.approx(0.1)
    assert schedule("linear(1.0,0.1,500000)", 10 ** 7) == pytest.approx(0.1)
    assert schedule("0.2", 5) == 0.2
    with pytest.raises(ValueError, match="linear"):
        schedule("exp(1)", 0)


# -- environment ---------------------------------------------------------------------------------------
def test_pixel_env_renders_stacked_frames():
    env = DMCEnv("cartpole", "swingup", obs="pixels", seed=0)
    obs = env.reset()
    assert obs.shape == (9, 84, 84) and obs.dtype == np.uint8
    assert np.array_equal(obs[:3], obs[6:])  # a new episode repeats its first frame
    prev = obs
    for _ in range(5):
        obs, reward, discount, last = env.step(np.ones(env.action_dim, dtype=np.float32))
        assert np.array_equal(obs[:6], prev[3:])  # the stack shifts by one frame per step
        prev = obs
    assert not np.array_equal(obs[6:], obs[:3]) and obs.std() > 0
    assert 0.0 <= reward <= 2.0 and discount == 1.0 and not last
    assert default_camera("quadruped") == 2 and default_camera("walker") == 0


def test_state_env_and_action_repeat():
    env = DMCEnv("cartpole", "swingup", obs="states", seed=3)
    obs = env.reset()
    assert obs.shape == (5,) and obs.dtype == np.float32
    steps, last = 0, False
    while not last:
        _, _, _, last = env.step(np.zeros(1, dtype=np.float32))
        steps += 1
    assert steps == 500  # 1000 frames at action repeat 2
    env.seed(7)
    a = env.reset()
    env.seed(7)
    assert np.array_equal(a, env.reset())


# -- replay buffer -------------------------------------------------------------------------------------
def test_replay_nstep_never_crosses_episodes():
    buf = ReplayBuffer(capacity=50, frame_shape=(1,), action_dim=1, frame_stack=1, nstep=3)
    for ep in range(2):
        buf.add_first(np.array([100 * ep], np.float32))
        for t in range(1, 6):  # 5 transitions, rewards 1..5
            buf.add(np.array([t], np.float32), float(t), 1.0, np.array([100 * ep + t], np.float32))
    assert buf.n_valid() == 2 * (5 - 3 + 1)
    np.random.seed(0)
    obs, action, reward, discount, next_obs = buf.sample(64, gamma=0.9)
    t0 = obs[:, 0] % 100
    assert np.array_equal(next_obs[:, 0], obs[:, 0] + 3)
    assert np.allclose(reward[:, 0], (t0 + 1) + 0.9 * (t0 + 2) + 0.81 * (t0 + 3))
    assert np.allclose(discount, 0.9 ** 3)
    assert np.array_equal(action[:, 0], t0 + 1)


def test_replay_rebuilds_frame_stacks_like_the_env():
    env = DMCEnv("cartpole", "swingup", obs="pixels", seed=0)
    buf = ReplayBuffer(capacity=8, frame_shape=(3, 84, 84), action_dim=1, frame_stack=3, nstep=1, dtype=np.uint8)
    seen = []
    for episode in range(2):
        obs = env.reset()
        buf.add_first(obs)
        seen.append(obs)
        for _ in range(4):
            obs, r, d, _ = env.step(np.random.uniform(-1, 1, 1).astype(np.float32))
            buf.add(np.zeros(1, np.float32), r, d, obs)
            seen.append(obs)
    assert len(buf) == 8 and buf.n_written == 10  # wrapped: the first episode's start is gone
    for k in range(buf.oldest_key(), buf.n_written):
        pos = buf.ep_pos[k % buf.capacity]
        if k - min(2, pos) >= buf.oldest_key():
            assert np.array_equal(buf.stacked(np.array([k]))[0], seen[k])


def test_extras_round_trip(state_task):
    extras = filled_extras(state_task, steps=40)
    member = state_task.build(drqv2_default(state_task.space))
    member.load_extras(extras)
    again = member.extras_state()
    assert set(again) == set(extras)
    for k in extras:
        assert np.array_equal(again[k], extras[k]), k
    assert again["replay/frames"].dtype == np.float32 and len(again["replay/frames"]) == 41
    np.random.seed(5)
    a = member.replay.sample(8, 0.99)
    other = state_task.build(drqv2_default(state_task.space))
    other.load_extras(extras)
    np.random.seed(5)
    b = other.replay.sample(8, 0.99)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_pixel_buffer_is_stored_as_uint8_single_frames(pixel_task):
    extras = filled_extras(pixel_task, steps=10)
    assert extras["replay/frames"].dtype == np.uint8
    assert extras["replay/frames"].shape == (11, 3, 84, 84)


# -- training ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("obs", ["states", "pixels"])
def test_tiny_train_and_evaluate(obs, request):
    task = request.getfixturevalue(f"{'pixel' if obs == 'pixels' else 'state'}_task")
    np.random.seed(0)
    torch.manual_seed(0)
    # pixels: the cheapest architecture (identity searchable layers); rendering and updates are real
    genome = task.space.sample(random.Random(0)) if obs == "states" else [0] * len(task.space)
    member = task.build(genome)
    metrics = member.train(epochs=1)
    assert member.global_step == 100 and metrics["frames"] == 200
    # updates every 2nd step from step 10 (20 seed frames) on: steps 10, 12, ..., 98
    assert metrics["updates"] == 45
    assert len(member.replay) == 101 and math.isfinite(metrics["critic_loss"])
    fitness = member.evaluate()
    assert isinstance(fitness, float) and math.isfinite(fitness) and 0.0 <= fitness <= 1000.0
    if obs == "pixels":
        return
    # a second generation continues the step counter and keeps the buffer
    member.train(epochs=1)
    assert member.global_step == 200 and len(member.replay) == 202


# -- mixing (pbt_evo.weights.inherit_model via the core's child recipe) --------------------------------
def test_mixing_two_agents_with_different_encoders(pixel_task):
    from pbt_evo.handles import Inherit, MixedState, StoredState, capture
    from pbt_evo.rng import seed_everything

    task, space = pixel_task, pixel_task.space
    extras = filled_extras(task, steps=12)
    values = space.decode(drqv2_default(space))
    base_g = space.encode({**values, "encoder.layer1": "conv3"})
    donor_g = space.encode({**values, "encoder.layer1": "resnet5", "critic.feature_dim": 100})
    seed_everything(1)
    base = task.build(base_g)
    base.load_extras(extras)
    seed_everything(2)
    donor = task.build(donor_g)
    taken = (space.index("encoder.layer1"), space.index("critic.feature_dim"))
    child_g = list(base_g)
    for i in taken:
        child_g[i] = donor_g[i]
    recipe = MixedState(StoredState(capture(base)), (Inherit(StoredState(capture(donor)), taken),), seed=7)
    child = recipe.materialise(task, child_g)
    seed_everything(7)
    fresh = task.build(child_g).model.state_dict()
    b, d, c = base.model.state_dict(), donor.model.state_dict(), child.model.state_dict()
    moved = [k for k in c if space.owner(k) in taken]
    assert {"encoder.net.1.conv1.weight", "critic_target.trunk.linear.weight", "critic.Q2.0.linear.weight"} <= set(moved)
    for k in c:
        if space.owner(k) in taken:
            assert torch.equal(c[k], 0.4 * d[k] + 0.1 * fresh[k]), k
        else:
            assert torch.equal(c[k], b[k]), k
    assert c["critic_target.trunk.linear.weight"].shape[0] == 100
    # the child starts from the base parent's replay buffer and step counter
    assert np.array_equal(child.extras_state()["replay/frames"], extras["replay/frames"])
    assert np.isfinite(child.agent.update(child.replay.sample(4, 0.99), step=100)["critic_loss"])


@pytest.mark.parametrize("config,backend", [("rl_quadruped_run", "serial"), ("rl_walker_run", "ray")])
def test_paper_config_smoke_run_with_pixels(config, backend, tmp_path, request):
    """A paper config shrunk by --set runs pixel agents (real rendering) through the whole loop; walker
    with its replay buffer shared by the agents of the machine, in Ray workers."""
    from pathlib import Path

    from pbt_evo.run import main

    if backend == "ray":
        request.getfixturevalue("ray_session")
    root = Path(__file__).resolve().parents[1]
    sets = {"task.args.frames_per_epoch": 60, "task.args.time_limit": 0.6, "task.args.hidden_dim": 32,
            "task.args.batch_size": 4, "task.args.buffer_size": 1000, "task.args.num_seed_frames": 20,
            "task.args.num_expl_steps": 10, "task.args.eval_episodes": 1, "task.args.torch_threads": 1,
            "algorithm.population": 6, "algorithm.e_total": 2,
            "algorithm.e_step": 1, "parallel.backend": backend, "parallel.workers": 2,
            "parallel.gpus_per_worker": 0, "parallel.cpus_per_worker": 1}
    argv = [str(root / "spaces" / f"{config}.yaml"), "--out", str(tmp_path), "--quiet"]
    for k, v in sets.items():
        argv += ["--set", f"{k}={v}"]
    assert main(argv) == 0
    run = tmp_path / config
    assert (run / "best").exists()


def test_acting_runs_no_power_iteration_and_keeps_training_mode(state_task):
    values = state_task.space.decode(drqv2_default(state_task.space))
    genome = state_task.space.encode({**values, "encoder.spectral_norm": True, "actor.spectral_norm": True})
    member = state_task.build(genome)
    sn = {k: v.clone() for k, v in member.model.state_dict().items() if k.endswith("sn_u")}
    assert any(k.startswith("encoder") for k in sn) and any(k.startswith("actor") for k in sn)
    member.agent.act(np.zeros(state_task.env.obs_shape, np.float32), step=0, eval_mode=False)
    after = member.model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in sn.items())
    assert all(m.training for m in member.model.modules())


# -- the replay buffer shared per machine (the paper's walker and humanoid setting) ----------------------
def test_add_episode_equals_step_by_step_writes():
    rng = np.random.default_rng(0)
    frames, actions = rng.random((7, 3), dtype=np.float32), rng.random((6, 2), dtype=np.float32)
    rewards, discounts = rng.random(6, dtype=np.float32), np.ones(6, np.float32)
    a, b = (ReplayBuffer(capacity=10, frame_shape=(3,), action_dim=2, nstep=2) for _ in range(2))
    for buf in (a, b):
        buf.add_episode(frames[:2], actions[:1], rewards[:1], discounts[:1])  # so the next one wraps
    a.add_episode(frames, actions, rewards, discounts)
    b.add_first(frames[0])
    for t in range(6):
        b.add(actions[t], rewards[t], discounts[t], frames[t + 1])
    assert a.n_written == b.n_written == 9 and a.n_valid() == b.n_valid() == 5
    for name in ("frames", "action", "reward", "discount", "ep_pos"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


def test_shared_replay_is_one_buffer_for_the_agents_of_a_process():
    # 0.6 s episodes = 30 agent steps: an epoch of 100 steps stores episodes of 30, 30, 30 and 10 steps
    task = tiny_task("states", shared_replay=True, time_limit=0.6)
    np.random.seed(0)
    a = task.build(task.space.sample(random.Random(1)))
    assert a.train(epochs=1)["updates"] == 45 - 10  # no update before its first episode is stored (step 30)
    assert a.replay.size() == 100 + 4
    assert sorted(a.extras_state()) == ["global_step"]  # nothing of the buffer travels
    b = task.build(task.space.sample(random.Random(2)))
    assert b.replay.ready()  # before its first step: it samples what `a` collected
    assert b.train(epochs=1)["updates"] == 45
    assert b.replay.size() == a.replay.size() == 208


def test_shared_replay_is_one_ray_actor_per_node(ray_session):
    import ray

    from pbt_evo import Call, RayMap, TaskSpec
    from pbt_evo.parallel import map_calls

    args = {"domain": "cartpole", "task": "swingup", "obs": "states", **TINY, "time_limit": 0.6,
            "shared_replay": True}

    def collect(context, i: int):
        task = context.task  # the worker's task: its shared replay buffer is this map's
        np.random.seed(i)
        member = task.build(task.space.sample(random.Random(i)))
        member.train(epochs=1)
        return ray.get_runtime_context().get_node_id(), sorted(member.extras_state()), os.getpid()

    rmap = RayMap(TaskSpec("tasks.rl:RLTask", args), workers=2, local_task=RLTask(**args))
    try:
        (node,) = set(rmap.nodes())
        # started by the driver with the map (so it outlives any one worker), empty until agents write
        assert ray.get(ray.get_actor(f"pbt_evo.replay.{rmap.scope}.{node}").size.remote()) == 0
        out = map_calls(rmap, [Call(collect, i) for i in range(4)])
        assert len({o[2] for o in out}) == 2  # both workers collected
        assert {o[0] for o in out} == {node}
        buffer = ray.get_actor(f"pbt_evo.replay.{rmap.scope}.{node}")
        assert ray.get(buffer.size.remote()) == 4 * 104  # both workers wrote into the one buffer
        assert all(o[1] == ["global_step"] for o in out)
        # the buffer dies (e.g. with the worker that made it): agents go on with a new, empty one
        ray.kill(buffer)
        map_calls(rmap, [Call(collect, i) for i in range(4, 6)])
        buffer = ray.get_actor(f"pbt_evo.replay.{rmap.scope}.{node}")
        assert ray.get(buffer.size.remote()) == 2 * 104
        segments = ray.get(buffer.segments.remote())
        # the killed buffer's shared memory was freed when the new one was made (its owner is gone)
        left = sorted(p for p in glob.glob(f"/dev/shm/{SEGMENT_PREFIX}*") if not p.endswith("_lock"))
        assert left == sorted(f"/dev/shm/{n}" for n in segments.values())
    finally:
        rmap.close()
    assert not glob.glob(f"/dev/shm/{SEGMENT_PREFIX}*")  # closing the map freed it


def test_orphaned_segments_are_freed(tmp_path):
    from tasks.rl.shared_replay import try_lock, free_orphaned_segments

    live, dead = f"{SEGMENT_PREFIX}aaaa_", f"{SEGMENT_PREFIX}bbbb_"
    for tag in (live, dead):
        (tmp_path / f"{tag}frames").write_bytes(b"x")
        (tmp_path / f"{tag}lock").write_bytes(b"")
    fd = try_lock(str(tmp_path / f"{live}lock"))  # the live buffer's owner holds its lock
    try:
        assert free_orphaned_segments(str(tmp_path)) == [f"{dead}frames"]
        assert sorted(p.name for p in tmp_path.iterdir()) == [f"{live}frames", f"{live}lock"]
    finally:
        os.close(fd)


def test_shared_buffer_too_big_for_shared_memory_says_what_to_change():
    from tasks.rl.shared_replay import check_shared_memory

    spec = dict(capacity=10**9, frame_shape=(3, 84, 84), action_dim=6, frame_stack=3, nstep=3, dtype=np.uint8)
    with pytest.raises(MemoryError, match=r"needs 19751\.49 GiB in /dev/shm .* lower task\.args\.buffer_size"):
        check_shared_memory(spec)


def test_random_policy_baseline_command(capsys):
    from pathlib import Path

    from tasks.rl.baseline import main

    config = str(Path(__file__).resolve().parents[1] / "spaces" / "rl.yaml")
    assert main([config, "--episodes", "2", "--set", "task.args.time_limit=0.2"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("random_policy_return=") and line.endswith("episodes=2")
    assert 0.0 <= float(line.split()[0].split("=")[1]) <= 10.0  # 10 agent steps, reward <= 1 each
    digits = str(Path(config).with_name("digits.yaml"))
    assert main([digits]) == 2
    assert "not tasks.rl:RLTask" in capsys.readouterr().err
