#!/bin/sh
# Reproduces docs/RESULTS.md, "MNIST-1D with widths" (CPU, one torch thread per run; every step resumes/skips).
# The study split steps 1 and 2 by seeds over two or three processes running at once (--seeds 0,1,2,3,4,
# then 5, 6 and 7,8 for step 1); the serial backend's results do not depend on that.
set -e
PY=${PY:-python}
SEEDS=0,1,2,3,4,5,6,7,8
# 1. the width space (every cell's channels in {4, 8, 16}): mixing with width adaptation, and with
#    layers of a changed width re-initialised (algorithm.width_policy: fresh)
$PY -m pbt_evo.sweep spaces/mnist1d_widths.yaml --algorithms pbt_nas,pbt_nas_wfresh --seeds $SEEDS --out runs/widths
# 2. the fixed-width space (every cell 8 channels), the same search otherwise
$PY -m pbt_evo.sweep spaces/mnist1d_study.yaml --algorithms pbt_nas --seeds $SEEDS --out runs/widths
# 3. tables: the three searches by config name, paired by seed (the spaces differ, so (task, seed) cannot pair them)
for report in best final test; do
  $PY -m pbt_evo.compare runs/widths --group-by name --baseline mnist1d_widths_pbt_nas --report $report \
      --out runs/widths/compare_$report
done
for report in best final test; do  # the other direction: is fresh better than adapt?
  $PY -m pbt_evo.compare runs/widths --group-by name --baseline mnist1d_widths_pbt_nas_wfresh \
      --only mnist1d_widths_pbt_nas_wfresh,mnist1d_widths_pbt_nas --report $report --out runs/widths/compare_reverse_$report
done
# 4. what the width searches found and how many children were adapted; the figure
$PY docs/studies/widths_found.py runs/widths > runs/widths/compare_best/widths.md
cp runs/widths/compare_best/anytime.png docs/img/anytime_mnist1d_widths.png
