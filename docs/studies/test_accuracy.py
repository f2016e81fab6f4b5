"""Test-split accuracy of every digits run's exported best network, compared like best-of-run fitness.

Best-of-run *validation* accuracy is what the search maximised, so it is optimistically biased (more so
for algorithms that evaluate more distinct networks); the held-out test split is not.

    python docs/studies/test_accuracy.py runs/study --only pbt_nas,searl,random > runs/study/compare/test_accuracy.md
"""

import argparse
from pathlib import Path

import yaml

import pbt_evo
from pbt_evo.cli.compare import expand
from pbt_evo.stats import compare_table, task_label, to_markdown
from pbt_evo.cli.sweep import algorithm_label
from tasks.digits import accuracy, load_splits

p = argparse.ArgumentParser()
p.add_argument("runs", nargs="+")
p.add_argument("--only", required=True)
p.add_argument("--baseline", default="pbt_nas")
args = p.parse_args()
only = args.only.split(",")
results: dict = {}
splits = {}
for run in expand(args.runs):
    cfg = yaml.safe_load((Path(run) / "config.yaml").read_text())
    label = algorithm_label(cfg)
    if label not in only:
        continue
    seed = cfg["task"]["args"].get("data_seed", 0)
    splits.setdefault(seed, load_splits(seed))
    model, _ = pbt_evo.load_best(run)
    results.setdefault(label, {})[(task_label(cfg), int(cfg["seed"]))] = accuracy(model, *splits[seed]["test"])
results = {a: results[a] for a in only if a in results}
print(to_markdown(compare_table(results, args.baseline), value="test accuracy of the best network"))
