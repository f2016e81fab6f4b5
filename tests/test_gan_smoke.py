"""Each GAN paper config starts and completes one tiny generation through the runner, on synthetic data.

The overrides are the ones printed at the top of each config; `fd_digits_classifier` replaces FID only
because the Inception weights cannot be downloaded here.
"""

import json
from pathlib import Path

import pytest

from pbt_evo.run import main

SPACES = Path(__file__).resolve().parents[1] / "spaces"

SMOKE = ["task.args.dataset=synthetic", "task.args.fitness=fd_digits_classifier", "task.args.steps_per_epoch=1",
         "task.args.n_fid=64", "task.args.gf_dim=16", "task.args.df_dim=16", "algorithm.population=6",
         "algorithm.e_total=1", "algorithm.e_step=1", "parallel.backend=serial", "parallel.workers=1",
         "parallel.gpus_per_worker=0", "parallel.cpus_per_worker=1", "output.tensorboard=false",
         "output.final_evaluation=false"]


@pytest.mark.parametrize("name", ["gan_cifar10", "gan_hard_cifar10", "gan_hard_stl10"])
def test_paper_config_smoke_run(tmp_path, name):
    args = [str(SPACES / f"{name}.yaml"), "--out", str(tmp_path), "--quiet"]
    for s in SMOKE:
        args += ["--set", s]
    assert main(args) == 0
    run = tmp_path / name
    rows = [json.loads(x) for x in (run / "population.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and all(r["fitness"] is not None and r["fitness"] < 0 for r in rows)
    assert (run / "best" / "model.safetensors").is_file()
