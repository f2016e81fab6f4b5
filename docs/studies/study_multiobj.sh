#!/bin/sh
# Reproduces the multi-objective MNIST-1D study of docs/RESULTS.md (CPU; every step resumes/skips finished runs).
# Multi-objective PBT-NAS against multi-objective random search, validation accuracy (max) against parameter
# count (min), 9 seeds each of spaces/mnist1d_multiobj.yaml: the same budget (N=8 networks x 24 epochs) and
# the same reference point [0.0, 2000] for every run (~1 minute a run on one idle CPU thread).
set -e
PY=${PY:-python}
OUT=${OUT:-runs/study_multiobj}
$PY -m pbt_evo.sweep spaces/mnist1d_multiobj.yaml --algorithms pbt_nas,random --seeds 0,1,2,3,4,5,6,7,8 --out $OUT
for report in hypervolume best test; do
  $PY -m pbt_evo.compare $OUT --only pbt_nas,random --baseline pbt_nas --report $report --out $OUT/compare_$report
done
cp $OUT/compare_hypervolume/anytime.png docs/img/anytime_multiobj.png
cp $OUT/mnist1d_multiobj_pbt_nas_s0/plots/front.png docs/img/front_mnist1d_pbt_nas.png
cp $OUT/mnist1d_multiobj_random_s0/plots/front.png docs/img/front_mnist1d_random.png
$PY docs/studies/fronts_multiobj.py $OUT --reference 0,2000 --out docs/img/fronts_multiobj.png
