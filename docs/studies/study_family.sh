#!/bin/sh
# Reproduces docs/RESULTS.md, "The PBT family: MNIST-1D" (CPU, serial backend, one torch thread per run, one
# run at a time; every step resumes / skips finished runs). 7 variants x 9 seeds, ~1-3 min a run.
set -e
PY=${PY:-python}
OUT=${OUT:-runs/study_family}
SEEDS=${SEEDS:-0,1,2,3,4,5,6,7,8}
ALGS=${ALGS:-pbt,pb2,pb2_mix,fire_pbt,bg_pbt,pbt_nas_hp,random_hp}
# 1. the learning rate continuous in [1e-4, 1e-1] (log), the batch size in {50, 100, 200}: classic PBT, PB2,
#    PB2-Mix and FIRE-PBT on one architecture (tasks.mnist1d.DEFAULT_ARCHITECTURE); BG-PBT, PBT-NAS's
#    co-search and random search over architectures and hyperparameters
$PY -m pbt_evo.sweep spaces/mnist1d_family_study.yaml --algorithms $ALGS --seeds $SEEDS --out $OUT
# 2. tables: every variant against classic PBT, then against PBT-NAS's co-search (paired by seed)
for report in best final test; do
  $PY -m pbt_evo.compare $OUT --baseline pbt --report $report --out $OUT/compare_$report
  $PY -m pbt_evo.compare $OUT --baseline pbt_nas_hp --report $report --out $OUT/compare_nas_$report
done
# 3. replay: each run's best architecture retrained from scratch with its hyperparameter schedule
for run in $OUT/mnist1d_family_study_*_s*; do
  [ -f $run/replay.json ] || $PY -m pbt_evo.replay $run > /dev/null
done
$PY docs/studies/replay_table.py $OUT > $OUT/replay.md
cp $OUT/compare_best/anytime.png docs/img/anytime_mnist1d_family.png
