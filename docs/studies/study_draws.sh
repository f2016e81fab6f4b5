#!/bin/sh
# Reproduces "MNIST-1D: where mixing pays off" of docs/RESULTS.md (issue 30; CPU; resumable: every sweep
# skips finished runs and continues interrupted ones, so running it again completes it).
#   sh docs/studies/study_draws.sh           # the runs, then the reports
#   sh docs/studies/study_draws.sh runs      # only the runs        sh docs/studies/study_draws.sh report   # only the reports
# pbt_nas, searl, random, no_mixing x 9 seeds (0-8) on
#   - spaces/mnist1d_study.yaml (4 cells, 9 variables) on 3 data draws: mnist1d's dataset_seed 42 (the
#     operator study's draw) / data_seed 0, dataset_seed 1 / data_seed 1, dataset_seed 2 / data_seed 2;
#   - spaces/mnist1d_study8.yaml (8 cells, 17 variables, the same member-epoch budget) on the draw 42 / 0.
# 144 runs, two sweeps at a time (JOBS=1: one); seeded serial runs, so results do not depend on the load.
set -e
PY=${PY:-python}
OUT=${OUT:-runs/study_draws}
JOBS=${JOBS:-2}
ALGS=pbt_nas,searl,random,no_mixing
SEEDS=0,1,2,3,4,5,6,7,8
PART=${1:-all}

draw() {  # dataset_seed data_seed seeds: the 4-cell space on one draw, folders mnist1d_d<dataset_seed>_<alg>_s<seed>
  $PY -m pbt_evo.sweep spaces/mnist1d_study.yaml --algorithms $ALGS --seeds $3 --out $OUT --name mnist1d_d$1 \
    --set task.args.dataset_seed=$1 --set task.args.data_seed=$2
}
cells8() {  # seeds: the 8-cell space, folders mnist1d_c8_<alg>_s<seed>
  $PY -m pbt_evo.sweep spaces/mnist1d_study8.yaml --algorithms $ALGS --seeds $1 --out $OUT --name mnist1d_c8
}
lane() {  # seeds, one at a time over every condition: an interrupted study leaves complete seeds, which pair
  for s in "$@"; do cells8 $s || :; draw 42 0 $s || :; draw 1 1 $s || :; draw 2 2 $s || :; done
}

if [ "$PART" = all ] || [ "$PART" = runs ]; then
  mkdir -p $OUT
  if [ "$JOBS" -ge 2 ]; then
    lane 0 2 4 6 8 > $OUT/lane_even.log 2>&1 &
    lane 1 3 5 7 > $OUT/lane_odd.log 2>&1 &
    wait
  fi
  # serially: completes whatever a lane left (a failed run), and stops here, before any report, if one still fails
  cells8 $SEEDS; draw 42 0 $SEEDS; draw 1 1 $SEEDS; draw 2 2 $SEEDS
fi
if [ "$PART" = all ] || [ "$PART" = report ]; then
  for report in best final test; do
    # the 4-cell space: pooled over the 3 draws by (draw, seed), n = 27, and one table per draw
    $PY -m pbt_evo.compare $OUT/mnist1d_d* --only $ALGS --baseline pbt_nas --report $report --per-task \
      --out $OUT/compare_draws_$report
    # the 8-cell space, one draw, n = 9
    $PY -m pbt_evo.compare $OUT/mnist1d_c8_* --only $ALGS --baseline pbt_nas --report $report \
      --out $OUT/compare_cells8_$report
    # per algorithm, 8 cells against 4 on the draw 42 / 0 (paired by seed across the two spaces)
    for alg in pbt_nas searl random no_mixing; do
      $PY -m pbt_evo.compare $OUT/mnist1d_c8_${alg}_s* $OUT/mnist1d_d42_${alg}_s* --group-by name \
        --baseline mnist1d_c8_$alg --report $report --out $OUT/compare_size_${alg}_$report
    done
  done
  cp $OUT/compare_draws_best/anytime_pooled.png docs/img/anytime_mnist1d_draws.png
  cp $OUT/compare_cells8_best/anytime.png docs/img/anytime_mnist1d_cells8.png
fi
