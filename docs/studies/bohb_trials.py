"""What BOHB did in each run of the MNIST-1D BOHB study (docs/RESULTS.md, "MNIST-1D: BOHB"): architectures
tried, how many reached each budget, its answer's fitness and test score, beside PBT-NAS's run of the seed.

    python docs/studies/bohb_trials.py runs/study_bohb
"""

import json
import sys
from collections import Counter
from pathlib import Path


def row(run: Path) -> dict:
    trials = [json.loads(line) for line in (run / "trials.jsonl").read_text().splitlines()]
    best = json.loads((run / "best" / "genome.json").read_text())
    return {"archs": len(trials), "epochs": Counter(t["epochs"] for t in trials), "fitness": best["fitness"],
            "test": best["test_score"], "incumbent_epochs": best["epochs"]}


def main(out: str) -> None:
    root = Path(out)
    print("| seed | architectures tried | trained epochs: count | BOHB's answer: epochs, val. acc., test acc. |"
          " PBT-NAS best: val. acc., test acc. |")
    print("|---|---|---|---|---|")
    for run in sorted(root.glob("mnist1d_study_bohb_s*"), key=lambda p: int(p.name.rsplit("_s", 1)[1])):
        seed = run.name.rsplit("_s", 1)[1]
        if not (run / "best" / "genome.json").is_file():
            continue
        r = row(run)
        pbt = root / f"mnist1d_study_pbt_nas_s{seed}" / "best" / "genome.json"
        p = json.loads(pbt.read_text()) if pbt.is_file() else {}
        spread = ", ".join(f"{e}: {n}" for e, n in sorted(r["epochs"].items()))
        print(f"| {seed} | {r['archs']} | {spread} | {r['incumbent_epochs']}, {r['fitness']:.3f}, {r['test']:.3f} |"
              f" {p.get('fitness', float('nan')):.3f}, {p.get('test_score', float('nan')):.3f} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/study_bohb")
