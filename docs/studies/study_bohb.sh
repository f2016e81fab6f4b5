#!/bin/sh
# Reproduces the MNIST-1D BOHB study of docs/RESULTS.md ("MNIST-1D: BOHB"; CPU; finished runs are skipped).
# BOHB (Ray Tune's TuneBOHB + HyperBandForBOHB) against PBT-NAS at the paper's budget rule: BOHB's trials
# train N x e_total = 8 x 24 = 192 epochs in total, as PBT-NAS's 8 members do (spaces/mnist1d_study.yaml).
# One trial at a time (backend serial): BOHB's model sees every result before it proposes the next.
set -e
PY=${PY:-python}
OUT=${OUT:-runs/study_bohb}
SEEDS=${SEEDS:-0,1,2,3,4,5,6}
# PBT-NAS runs of this config are deterministic (serial backend): folders of the same runs made elsewhere
# (e.g. the MNIST-1D operator study's, PBT_NAS_RUNS=runs/study_mnist1d) are linked instead of rerun.
if [ -n "$PBT_NAS_RUNS" ]; then
  mkdir -p $OUT
  for s in $(echo $SEEDS | tr , ' '); do
    src=$PBT_NAS_RUNS/mnist1d_study_pbt_nas_s$s
    [ -f $src/best/genome.json ] && [ ! -e $OUT/mnist1d_study_pbt_nas_s$s ] && ln -s "$(cd $src && pwd)" $OUT/mnist1d_study_pbt_nas_s$s
  done
fi
nice -n 10 $PY -m pbt_evo.sweep spaces/mnist1d_study.yaml --algorithms bohb --seeds $SEEDS --out $OUT
# PBT-NAS for the seeds not linked (a linked folder names another output.dir: the sweep would refuse it)
MISSING=$(for s in $(echo $SEEDS | tr , ' '); do [ -L $OUT/mnist1d_study_pbt_nas_s$s ] || echo $s; done | paste -sd, -)
[ -n "$MISSING" ] && nice -n 10 $PY -m pbt_evo.sweep spaces/mnist1d_study.yaml --algorithms pbt_nas --seeds $MISSING --out $OUT
for report in best test; do
  $PY -m pbt_evo.compare $OUT --only pbt_nas,bohb --baseline pbt_nas --report $report --ddof 0 \
    --out $OUT/compare_$report
done
cp $OUT/compare_best/anytime.png docs/img/anytime_mnist1d_bohb.png
PYTHONPATH=${PYTHONPATH:-.} $PY docs/studies/bohb_trials.py $OUT > $OUT/bohb_trials.md
