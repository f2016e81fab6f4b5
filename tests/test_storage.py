"""What run folders are made of, without pickle: plain trees (pbt_evo.plain), state files (safetensors),
records of individuals, handles and logbooks, checkpoints with a manifest; and crafted files that
would execute code if they were loaded the old way."""

import json
import math

import numpy as np
import pytest
import torch
from deap import tools

from pbt_evo import plain, statefile
from pbt_evo.cli import checkpoint, records
from pbt_evo.handles import FreshState, Inherit, MixedState, MutateWeights, Reinit, StoredState, capture
from pbt_evo.individual import Individual
from tasks.digits import DigitsTask


def test_plain_round_trip_is_exact():
    value = {"tuple": (1, (2.5, "x")), "inf": -math.inf, "nan": math.nan, "i64": np.int64(7), "f32": np.float32(0.1),
             "arr": np.arange(6, dtype=np.uint8).reshape(2, 3)[:, ::2], "zero_d": np.array(3.0),
             "bf16": torch.tensor([1.5, -2.0], dtype=torch.bfloat16), "t": torch.arange(3), 5: None, "$odd": True,
             "bools": np.array([True, False])}
    back = plain.loads(json.dumps(plain.encode(value), allow_nan=False))
    assert back["tuple"] == (1, (2.5, "x")) and back["inf"] == -math.inf and math.isnan(back["nan"])
    assert type(back["i64"]) is np.int64 and back["i64"] == 7 and back["f32"] == np.float32(0.1)
    assert back["arr"].tolist() == [[0, 2], [3, 5]] and back["arr"].dtype == np.uint8
    assert back["zero_d"].shape == () and back["zero_d"] == 3.0
    assert back["bf16"].dtype == torch.bfloat16 and back["bf16"].tolist() == [1.5, -2.0]
    assert back["t"].tolist() == [0, 1, 2] and back[5] is None and back["$odd"] is True
    assert back["bools"].tolist() == [True, False]


def error_of(func, *args):
    with pytest.raises(ValueError) as err:
        func(*args)
    return str(err.value)


def test_plain_refuses_what_it_cannot_store_and_crafted_documents():
    assert error_of(plain.encode, {"extras": {"buf": {1, 2}}}) == (
        "cannot store extras/buf of type set: states and records hold arrays, tensors, numbers, strings, None, lists,"
        " tuples and dicts")
    assert error_of(plain.encode, {"w": np.array([None])}) == (
        "cannot store w: arrays of dtype object are not supported (booleans, integers and floats are)")
    assert error_of(plain.decode, {"$call": "os.system"}) == "unknown tag '$call'"
    assert error_of(plain.decode, {"$float": "1e999"}) == "malformed float '1e999'"
    assert error_of(plain.decode, {"$array": {"dtype": "|O", "shape": [1], "b64": ""}}) == (
        "arrays of dtype object are not read")
    assert error_of(plain.loads, '{"x": NaN}') == "non-standard JSON constant NaN"


def test_a_member_state_survives_a_state_file_bit_for_bit(tmp_path):
    task = DigitsTask(channels=4)
    member = task.build(task.space.sample())
    member.train(1)
    state = capture(member)
    state["extras"] = {"replay/frames": np.random.randint(0, 255, (5, 3, 8, 8), dtype=np.uint8), "step": np.int64(9)}
    path = tmp_path / "s.safetensors"
    path.write_bytes(statefile.to_bytes(state))
    back = statefile.read(path)
    assert sorted(back["model"]) == sorted(state["model"])
    assert all(np.array_equal(back["model"][k], state["model"][k]) for k in state["model"])
    opt, opt_back = state["optim"]["adam"], back["optim"]["adam"]
    assert opt_back["groups"] == opt["groups"]  # betas stay a tuple, every hyperparameter as it was
    assert all(np.array_equal(opt_back["state"][n][k], v) for n, s in opt["state"].items() for k, v in s.items())
    assert np.array_equal(back["extras"]["replay/frames"], state["extras"]["replay/frames"])
    assert back["extras"]["step"] == 9 and type(back["extras"]["step"]) is np.int64


def test_state_file_refuses_other_files(tmp_path):
    from safetensors.numpy import save_file

    other = tmp_path / "other.safetensors"
    save_file({"w": np.zeros(2)}, str(other))
    with pytest.raises(statefile.StateFileError, match=r"not a pbt_evo state file \(format None"):
        statefile.read(other)
    pickled = tmp_path / "p.safetensors"
    pickled.write_bytes(b"\x80\x05\x95" + b"\x00" * 40)
    with pytest.raises(statefile.StateFileError, match="not a readable safetensors file"):
        statefile.read(pickled)


def test_records_of_individuals_handles_and_logbooks():
    base, donor = StoredState({"model": {}}), StoredState({"model": {}})
    steps = (Inherit(donor, (1,), (1.0, 0.0), "donor"), Reinit((2,)), MutateWeights(5))
    ind = Individual([1, 0, 2], id=9, parents=(3, 4), origin=[3, 4, 3], seed=123, epochs=4,
                     handle=MixedState(base, steps, seed=77, width_policy="fresh"))
    ind.taken, ind.metrics = (1,), {"train_seconds": 0.5, "fitness_raw": math.nan}
    ind.fitness.values = (0.75,)
    names = {id(base): "states/00000.safetensors", id(donor): "states/00001.safetensors"}
    rec = json.loads(json.dumps(records.individual_record(ind, lambda h: names[id(h)]), allow_nan=False))
    loaded = {}
    back = records.individual_from_record(rec, lambda name: loaded.setdefault(name, StoredState(name)))
    assert (back, back.parents, back.origin, back.seed, back.taken) == (ind, (3, 4), [3, 4, 3], 123, (1,))
    assert back.fitness.values == (0.75,) and math.isnan(back.metrics["fitness_raw"])
    h = back.handle
    inherit, reinit, mutate = h.steps
    assert (inherit.variables, inherit.shrink_perturb, inherit.optimizer_policy, reinit, mutate, h.seed,
            h.width_policy) == ((1,), (1.0, 0.0), "donor", Reinit((2,)), MutateWeights(5), 77, "fresh")
    assert (h.base.ref, inherit.donor.ref) == ("states/00000.safetensors", "states/00001.safetensors")
    fresh = records.individual_from_record(records.individual_record(Individual([0], id=1, handle=FreshState(8)),
                                                                     None), None)
    assert fresh.handle == FreshState(8) and not fresh.fitness.valid

    book = tools.Logbook()
    book.header = ["gen", "max"]
    book.record(gen=1, max=np.float64(0.5))
    book.record(gen=2, max=-math.inf)
    again = records.logbook_from_record(json.loads(json.dumps(records.logbook_record(book), allow_nan=False)))
    assert list(again) == [{"gen": 1, "max": 0.5}, {"gen": 2, "max": -math.inf}] and again.header == ["gen", "max"]


def test_a_record_naming_any_other_class_is_refused():
    rec = {"handle": "system", "fields": {"command": "touch /tmp/pwned"}}
    with pytest.raises(records.RecordError, match=r"unknown weight handle 'system' \(known: FreshState, Inherit,"):
        records.handle_from_record(rec, None)
    with pytest.raises(records.RecordError, match="FreshState has no field '__class__'"):
        records.handle_from_record({"handle": "FreshState", "fields": {"__class__": 1}}, None)


def test_a_checkpoint_of_pbt_evo_0_2_resumes_with_the_same_recipe():
    """Flat recipes and stored lineage diffs of earlier checkpoints are read as steps and base genomes."""
    old = {"handle": "MixedState", "fields": {
        "base": {"$handle": {"handle": "StoredState", "file": "s0"}},
        "donor": {"$handle": {"handle": "StoredState", "file": "s1"}},
        "taken": [0, 1], "reinit": [1], "shrink_perturb": [1.0, 0.0], "searl_seed": None,
        "optimizer_policy": "donor", "seed": 3, "width_policy": "adapt", "perturb_all": False, "copied": ["ema."],
        "searl_skip": []}}
    old["fields"] = {k: v if isinstance(v, dict) else json.loads(json.dumps(plain.encode(tuple(v) if isinstance(v, list)
                                                                                         else v)))
                     for k, v in old["fields"].items()}
    h = records.handle_from_record(old, StoredState)
    assert h.steps == (Inherit(h.steps[0].donor, (0, 1), (1.0, 0.0), "donor", ("ema.",)), Reinit((1,)))
    assert (h.base.ref, h.steps[0].donor.ref, h.seed) == ("s0", "s1", 3)
    rec = records.individual_record(Individual([2, 1], id=5), None)
    rec["attrs"] = plain.encode({**plain.decode(rec["attrs"]), "changed": ((0, 0, 2),)})
    back = records.individual_from_record(rec, None)
    assert back.base_genome == (0, 1) and back.changed == ((0, 0, 2),)


def population(n=3):
    pop = [Individual([i], id=i, handle=StoredState({"model": {"w": np.full(3, float(i), np.float32)}}))
           for i in range(n)]
    for ind in pop:
        ind.fitness.values = (float(ind.id),)
    return pop


def test_checkpoint_round_trip_shares_states_and_keeps_two(tmp_path):
    pop = population()
    for gen in (1, 2, 3):
        checkpoint.save(tmp_path, gen, pop, [pop[2]], payload={"epochs": gen, "next_id": 3, "logbook": None})
    assert [p.name for p in checkpoint.folders(tmp_path)] == ["gen_00002", "gen_00003"]
    assert (tmp_path / "checkpoints" / "LATEST").read_text() == "gen_00003"
    found = checkpoint.load_latest(tmp_path)
    data = found.data
    assert found.folder.name == "gen_00003" and found.damaged == [] and data["epochs"] == 3
    assert [ind.handle.load()["model"]["w"].tolist() for ind in data["population"]] == [[0.0] * 3, [1.0] * 3,
                                                                                       [2.0] * 3]
    assert data["halloffame"][0].handle is data["population"][2].handle  # written once, shared again
    manifest = json.loads((found.folder / "MANIFEST.json").read_text())
    assert sorted(manifest["files"]) == ["loop.json"] + [f"states/0000{i}.safetensors" for i in range(3)]
    assert manifest["bytes"] == sum(f.stat().st_size for f in found.folder.rglob("*") if f.is_file()
                                    and f.name != "MANIFEST.json")


def flip_bit(f):
    data = bytearray(f.read_bytes())
    data[-9] ^= 1  # inside the last array's bytes
    f.write_bytes(bytes(data))


@pytest.mark.parametrize("damage, reason", [
    (lambda f: f.write_bytes(f.read_bytes()[:100]), "has 100 bytes, MANIFEST.json says {size:,}"),
    (flip_bit, ": its sha256 differs from MANIFEST.json's"),
    (lambda f: f.unlink(), "is missing"),
], ids=["truncated", "bit_flipped", "missing"])
def test_a_damaged_latest_checkpoint_falls_back_to_the_one_before(tmp_path, damage, reason):
    pop = population()
    for gen in (1, 2):
        checkpoint.save(tmp_path, gen, pop, [], payload={"epochs": gen, "next_id": 3, "logbook": None})
    state = tmp_path / "checkpoints" / "gen_00002" / "states" / "00001.safetensors"
    size = state.stat().st_size
    damage(state)
    found = checkpoint.load_latest(tmp_path)
    assert found.folder.name == "gen_00001" and found.data["epochs"] == 1
    reason = reason.format(size=size)
    assert found.notices() == [f"checkpoint {tmp_path}/checkpoints/gen_00002 is damaged (states/00001.safetensors"
                               f"{'' if reason.startswith(':') else ' '}{reason}): continuing from gen_00001"]


def test_every_checkpoint_damaged_is_one_clear_error(tmp_path):
    checkpoint.save(tmp_path, 1, population(), [], payload={"epochs": 1, "next_id": 3, "logbook": None})
    (tmp_path / "checkpoints" / "gen_00001" / "MANIFEST.json").unlink()
    with pytest.raises(checkpoint.CheckpointError) as err:
        checkpoint.load_latest(tmp_path)
    assert str(err.value) == (f"no intact checkpoint in {tmp_path}/checkpoints (gen_00001: no MANIFEST.json:"
                              " incomplete): start the run over with --overwrite")


def test_crafted_new_format_checkpoints_are_refused_without_running_anything(tmp_path):
    """An attacker can write a consistent manifest; what the files say is still only data."""
    marker = tmp_path / "marker"
    folder = tmp_path / "checkpoints" / "gen_00001"
    (folder / "states").mkdir(parents=True)
    evil = {"handle": "PosixPath", "fields": {"args": str(marker)}}
    rec = {"genome": [0], "fitness": {"$tuple": []}, "attrs": {"id": 0}, "handle": evil}
    loop = {"format": checkpoint.FORMAT, "generation": 1, "payload": {}, "logbook": None, "population": [rec],
            "halloffame": [], "random": None, "numpy": None}
    files = {"loop.json": json.dumps(loop).encode(), "states/00000.safetensors": b"\x80\x05cos\nsystem\n."}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    import hashlib
    manifest = {"format": checkpoint.FORMAT, "bytes": 0,
                "files": {n: {"bytes": len(d), "sha256": hashlib.sha256(d).hexdigest()} for n, d in files.items()}}
    (folder / "MANIFEST.json").write_text(json.dumps(manifest))
    with pytest.raises(checkpoint.CheckpointError, match=r"gen_00001: loop.json is malformed \(unknown weight handle"
                                                         r" 'PosixPath'"):
        checkpoint.load_latest(tmp_path)
    rec["handle"] = {"handle": "StoredState", "file": "states/00000.safetensors"}
    data = json.dumps(loop).encode()
    (folder / "loop.json").write_bytes(data)
    manifest["files"]["loop.json"] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (folder / "MANIFEST.json").write_text(json.dumps(manifest))
    with pytest.raises(checkpoint.CheckpointError, match="states/00000.safetensors: not a readable safetensors file"):
        checkpoint.load_latest(tmp_path)
    assert not marker.exists()
