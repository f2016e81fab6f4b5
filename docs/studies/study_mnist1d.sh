#!/bin/sh
# Reproduces the MNIST-1D operator study of docs/RESULTS.md (CPU; every step resumes/skips finished runs).
# 7 algorithms x 9 seeds of spaces/mnist1d_study.yaml (~45 s a run on one idle thread).
set -e
PY=${PY:-python}
OUT=${OUT:-runs/study_mnist1d}
ALGS=pbt_nas,searl,random,no_mixing,pbt_nas_sp10,pbt_nas_sp01,pbt_nas_naswot
$PY -m pbt_evo.sweep spaces/mnist1d_study.yaml --algorithms $ALGS --seeds 0,1,2,3,4,5,6,7,8 --out $OUT
for report in best final test; do
  $PY -m pbt_evo.compare $OUT --only $ALGS --baseline pbt_nas --report $report --out $OUT/compare_$report
done
cp $OUT/compare_best/anytime.png docs/img/anytime_mnist1d.png
$PY -m pbt_evo.plot $OUT/mnist1d_study_pbt_nas_s0 && cp $OUT/mnist1d_study_pbt_nas_s0/plots/origins.png docs/img/origins_mnist1d.png
