"""The replay table of docs/RESULTS.md ("The PBT family: MNIST-1D"): per search, the exported best network's
test accuracy against the same architecture retrained from scratch with its hyperparameter schedule
(``python -m pbt_evo.replay``), paired by seed.

    python docs/studies/replay_table.py runs/study_family > runs/study_family/replay.md
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

from pbt_evo.stats import mean_std, wilcoxon_greater


def main(root: str) -> None:
    found: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for run in sorted(Path(root).iterdir()):
        replay = run / "replay.json"
        if not replay.is_file():
            continue
        record = json.loads(replay.read_text())
        searched, again = record["searched"]["test_score"], record["replayed"][0]["test_score"]
        found[run.name.rsplit("_s", 1)[0]].append((searched, again))
    print("| search | runs | searched network's test (mean +- std) | retrained from scratch | searched - retrained |"
          " p (searched > retrained, one-sided Wilcoxon) |")
    print("|---|---|---|---|---|---|")
    for search, pairs in sorted(found.items()):
        s, r = [p[0] for p in pairs], [p[1] for p in pairs]
        (ms, ss), (mr, sr), (md, sd) = mean_std(s), mean_std(r), mean_std([a - b for a, b in pairs])
        print(f"| {search} | {len(pairs)} | {ms:.4f} +- {ss:.4f} | {mr:.4f} +- {sr:.4f} | {md:+.4f} +- {sd:.4f} |"
              f" {wilcoxon_greater(s, r):.3g} |")


if __name__ == "__main__":
    main(sys.argv[1])
