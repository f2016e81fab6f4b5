#!/bin/sh
# Reproduces the Balanced NAO section of docs/RESULTS.md (CPU; the sweep resumes/skips finished runs).
# 1. bnao and nao, 9 seeds each, on spaces/mnist1d_study.yaml's budget (8 x 24 = 192 member-epochs).
# 2. compare against pbt_nas and random of the MNIST-1D operator study (docs/studies/study_mnist1d.sh; its run
#    folders in $STUDY, default runs/study_mnist1d), paired by seed, three reported quantities.
# 3. the ranking experiment: 30 random architectures, stand-alone 24 epochs vs supernets of 5..50 epochs, 2 repeats.
set -e
PY=${PY:-python}
OUT=${OUT:-runs/study_bnao}
STUDY=${STUDY:-runs/study_mnist1d}
SEEDS=0,1,2,3,4,5,6,7,8
$PY -m pbt_evo.sweep spaces/mnist1d_study.yaml --algorithms bnao,nao --seeds $SEEDS --out $OUT
RUNS="$OUT"
for s in $(echo $SEEDS | tr , ' '); do
  RUNS="$RUNS $STUDY/mnist1d_study_pbt_nas_s$s $STUDY/mnist1d_study_random_s$s"
done
for report in best final test; do
  $PY -m pbt_evo.compare $RUNS --only pbt_nas,bnao,nao,random --baseline pbt_nas --report $report \
    --out $OUT/compare_$report
done
cp $OUT/compare_test/anytime.png docs/img/anytime_bnao.png
$PY -m pbt_evo.oneshot rank spaces/mnist1d_study.yaml --archs 30 --supernet-epochs 5,10,20,30,50 --repeats 2 \
  --out $OUT/rank
cp $OUT/rank/rank.png docs/img/rank_bnao.png
