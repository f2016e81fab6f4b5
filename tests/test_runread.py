"""The run-folder reader (pbt_evo.cli.runread): torn lines, incremental reads, rewrites, damaged and foreign
folders; the CLI readers (plot, compare, schedule) go through it."""

import json
import os
import sys
from pathlib import Path

import pytest

from pbt_evo.cli import compare, plot, runread
from pbt_evo.cli.runlock import RunLock
from pbt_evo.cli.runread import JsonlFile, RunReader, RunReadError, read_config, read_jsonl, read_run

ROWS = [{"gen": g, "epochs": 2 * g, "best": 0.1 * g, "median": 0.05 * g, "worst": 0.0, "failed": 0} for g in (1, 2, 3)]


def lines(rows):
    return "".join(json.dumps(r) + "\n" for r in rows)


def test_a_torn_last_line_is_left_out_until_its_newline_arrives(tmp_path):
    path = tmp_path / "log.jsonl"
    text = lines(ROWS)
    path.write_text(text[:-20])  # the third row cut short, as a killed write leaves it
    f = JsonlFile(path)
    assert f.refresh() and [r["gen"] for r in f.rows] == [1, 2]
    with open(path, "a") as out:
        out.write(text[-20:])
    assert f.refresh() and f.rows == ROWS
    assert not f.refresh()  # nothing new: no read at all


def test_incremental_reads_equal_a_full_read_for_every_cut(tmp_path):
    path = tmp_path / "population.jsonl"
    rows = [{"gen": g, "id": k, "epochs": g, "fitness": None if k == 2 else k / 10, "genome": [k, g]}
            for g in range(1, 4) for k in range(4)]
    data = lines(rows).encode()
    f = JsonlFile(path)
    path.write_bytes(b"")
    for cut in range(0, len(data) + 1, 37):  # appended in odd chunks, lines split anywhere
        with open(path, "ab") as out:
            out.write(data[len(path.read_bytes()):cut])
        f.refresh()
        complete = data[:cut][:data[:cut].rfind(b"\n") + 1]
        assert f.rows == [json.loads(x) for x in complete.splitlines()]
    with open(path, "ab") as out:
        out.write(data[len(path.read_bytes()):])
    f.refresh()
    assert f.rows == rows


def test_a_file_rewritten_before_the_read_point_is_read_again(tmp_path):
    """A resume drops the rows after its checkpoint and appends new ones: the reader notices, even when the
    new file is as long as the old one."""
    path = tmp_path / "log.jsonl"
    path.write_text(lines(ROWS))
    f = JsonlFile(path)
    f.refresh()
    changed = [dict(ROWS[0]), dict(ROWS[1]), dict(ROWS[2], best=0.9)]  # same length, another last row
    path.write_text(lines(changed))
    os.utime(path, ns=(1, 1))  # even with another mtime only
    assert f.refresh() and f.rows == changed
    path.write_text(lines(ROWS[:1]))  # shrunk
    assert f.refresh() and f.rows == ROWS[:1]
    path.unlink()
    assert f.refresh() and f.rows == []


def test_nan_written_by_json_dumps_is_read(tmp_path):
    """json.dumps writes NaN for a diverged metric; orjson refuses it, the reader falls back."""
    path = tmp_path / "population.jsonl"
    path.write_text(json.dumps({"gen": 1, "id": 0, "epochs": 1, "metrics": {"loss": float("nan")}}) + "\n")
    (row,) = read_jsonl(path)
    assert row["metrics"]["loss"] != row["metrics"]["loss"]


def test_damaged_and_foreign_files_are_one_line_naming_file_and_line(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text(lines(ROWS[:1]) + "{not json\n" + lines(ROWS[1:]))
    with pytest.raises(RunReadError) as err:
        read_jsonl(path)
    assert str(err.value).startswith(f"{path} line 2 is not a JSON record: b'{{not json'")
    path.write_text(json.dumps({"step": 1, "loss": 0.3}) + "\n")
    with pytest.raises(RunReadError, match=r"log.jsonl: record 1 has no gen, epochs, best: written by another program"):
        read_jsonl(path)
    (tmp_path / "config.yaml").write_text("just: [a, list\n")
    with pytest.raises(RunReadError, match="config.yaml is not YAML"):
        read_config(tmp_path)
    (tmp_path / "config.yaml").write_text("- a\n- b\n")
    with pytest.raises(RunReadError, match="is not a pbt_evo config"):
        read_config(tmp_path)
    with pytest.raises(RunReadError, match="nowhere is not a folder"):
        read_run(tmp_path / "nowhere")
    (tmp_path / "config.yaml").unlink()
    with pytest.raises(RunReadError, match=r"is not a pbt_evo run folder \(no config.yaml\)"):
        read_run(tmp_path)


def test_an_old_pickle_folder_is_named_with_the_command_that_converts_it(tmp_path):
    (tmp_path / "config.yaml").write_text("name: old\nalgorithm: {name: pbt_nas, e_total: 4}\n")
    (tmp_path / "checkpoints" / "gen_00002").mkdir(parents=True)
    (tmp_path / "checkpoints" / "gen_00002" / "loop.pkl").write_bytes(b"\x80\x04.")
    with pytest.raises(RunReadError) as err:
        read_run(tmp_path)
    assert str(err.value) == (f"{tmp_path} is a run folder of pbt_evo 0.2 (pickle files); convert it with"
                              f" `python -m pbt_evo.convert {tmp_path}`")


def test_status_follows_the_run_lock_and_the_finished_run(tmp_path):
    (tmp_path / "config.yaml").write_text("name: r\nalgorithm: {name: pbt_nas, e_total: 6}\n")
    (tmp_path / "log.jsonl").write_text(lines(ROWS[:2]))
    reader = RunReader(tmp_path)
    assert reader.read().status == "stopped"
    with RunLock(tmp_path):
        assert reader.read().status == "running"
    assert reader.read().status == "stopped"  # the lock file stays; nobody holds it
    (tmp_path / "best").mkdir()
    (tmp_path / "best" / "genome.json").write_text(json.dumps({"id": 3}))
    assert reader.read().status == "stopped"  # 6 epochs of 6 not yet trained
    with open(tmp_path / "log.jsonl", "a") as f:
        f.write(lines(ROWS[2:]))
    run = reader.read()
    assert (run.status, run.generation, run.epochs, run.best_fitness) == ("done", 3, 6, pytest.approx(0.3))


def write_run(path, gens=3, torn=True):
    """A small run folder as the writer leaves it, the population's last line torn."""
    path.mkdir(parents=True)
    (path / "config.yaml").write_text("name: t\nseed: 0\ntask: {target: tasks.digits:DigitsTask, args: {}}\n"
                                      "algorithm: {name: pbt_nas, population: 2, e_total: 6}\n")
    (path / "space.json").write_text(json.dumps({"op": {"options": ["a", "b"], "owns": ["x"]}}))
    (path / "log.jsonl").write_text(lines(ROWS[:gens]))
    pop = [{"gen": g, "id": k, "epochs": 2 * g, "fitness": 0.1 * g + k / 100, "origin": [k], "arch": {"op": "a"},
            "genome": [0], "parents": []} for g in range(1, gens + 1) for k in range(2)]
    text = lines(pop)
    (path / "population.jsonl").write_text(text + (text[:30] if torn else ""))
    return pop


def test_plot_and_compare_read_a_live_folder_with_a_torn_line(tmp_path):
    pop = write_run(tmp_path / "r")
    epochs, shares = plot.origin_shares(read_jsonl(tmp_path / "r" / "population.jsonl"), [0], 2)
    assert epochs == [2, 4, 6] and shares.tolist() == [[0.5, 0.5, 0.0]] * 3
    assert [p.name for p in plot.plot_run(tmp_path / "r")] == ["fitness.png", "origins.png"]
    summary = compare.load_run(tmp_path / "r", require_finished=False)
    assert summary.epochs == [2, 4, 6] and summary.best == pytest.approx(0.3)
    assert len(pop) == 6


def test_plot_command_says_one_line_for_a_damaged_folder(tmp_path, capsys):
    write_run(tmp_path / "r")
    with open(tmp_path / "r" / "log.jsonl", "a") as f:
        f.write("garbage\n" + lines(ROWS[:1]))
    assert plot.main([str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "log.jsonl line 4 is not a JSON record" in err


def test_find_runs_skips_links_out_and_hidden_folders(tmp_path):
    write_run(tmp_path / "study" / "a_s0")
    write_run(tmp_path / "study" / "a_s1")
    write_run(tmp_path / "outside" / "x")
    (tmp_path / "study" / "link").symlink_to(tmp_path / "outside" / "x")
    write_run(tmp_path / "study" / ".hidden")
    assert [p.name for p in runread.find_runs(tmp_path / "study")] == ["a_s0", "a_s1"]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
