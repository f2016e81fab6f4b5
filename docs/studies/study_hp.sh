#!/bin/sh
# Reproduces docs/RESULTS.md, "MNIST-1D: hyperparameters" (CPU, serial backend, one torch thread per run;
# every step resumes/skips finished runs). 4 arms x 9 seeds, ~45 s a run on one idle thread.
set -e
PY=${PY:-python}
OUT=${OUT:-runs/study_hp}
SEEDS=0,1,2,3,4,5,6,7,8
# 1. Adam's learning rate in the genome (log_grid(1e-4, 1e-1, 7)): classic PBT on one architecture
#    (tasks.mnist1d.DEFAULT_ARCHITECTURE), co-search, random search over both
$PY -m pbt_evo.sweep spaces/mnist1d_hp_study.yaml --algorithms pbt,pbt_nas_hp,random_hp --seeds $SEEDS --out $OUT
# 2. architecture only, the learning rate fixed at 0.003 (the same config but for task.hyperparameters)
$PY -m pbt_evo.sweep spaces/mnist1d_study.yaml --algorithms pbt_nas --seeds $SEEDS --out $OUT
# 3. tables: pbt_nas against each, then co-search against each (paired by seed; the task is the same)
for report in best final test; do
  $PY -m pbt_evo.compare $OUT --baseline pbt_nas --report $report --out $OUT/compare_$report
  $PY -m pbt_evo.compare $OUT --baseline pbt_nas_hp --report $report --out $OUT/compare_hp_$report
done
# 4. figures: the anytime curves, and one co-search run's learning-rate schedules (final best on top)
cp $OUT/compare_best/anytime.png docs/img/anytime_mnist1d_hp.png
$PY -m pbt_evo.plot $OUT/mnist1d_hp_study_pbt_nas_hp_s0
cp $OUT/mnist1d_hp_study_pbt_nas_hp_s0/plots/hyperparameters.png docs/img/hp_schedule_mnist1d_pbt_nas_hp.png
$PY -m pbt_evo.plot $OUT/mnist1d_hp_study_pbt_s0
cp $OUT/mnist1d_hp_study_pbt_s0/plots/hyperparameters.png docs/img/hp_schedule_mnist1d_pbt.png
