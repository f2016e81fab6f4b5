"""Markdown table of the greedy soups written by `python -m pbt_evo.soup` (one row per run folder).

    python docs/studies/soup_table.py runs/study/digits_hard_pbt_nas_s*
"""

import json
import sys
from pathlib import Path

print("| run | candidates (same architecture) | in the soup | best single | soup | change |")
print("|---|---|---|---|---|---|")
gains = []
for run in sys.argv[1:]:
    info = json.loads((Path(run) / "soup" / "soup.json").read_text())
    gains.append(info["gain"])
    print(f"| {Path(run).name} | {len(info['candidates'])} | {len(info['ingredients'])} |"
          f" {info['best_single_fitness']:.4f} | {info['soup_fitness']:.4f} | {info['gain']:+.4f} |")
print(f"\nMean change {sum(gains) / len(gains):+.4f} over {len(gains)} runs;"
      f" soups with more than the best member: {sum(g > 0 for g in gains)}.")
