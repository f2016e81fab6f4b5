#!/bin/sh
# Reproduces docs/RESULTS.md (CPU, ~1.5-2 CPU-hours on a busy 2-core machine; every step resumes/skips).
set -e
PY=${PY:-python}
ALGS=pbt_nas,searl,random,no_mixing,pbt_nas_sp10,pbt_nas_sp01
# 1. the operator study: 6 algorithms x 7 seeds (the study split the seeds over parallel processes)
$PY -m pbt_evo.sweep spaces/digits_hard.yaml --algorithms $ALGS --seeds 0,1,2,3,4,5,6 --out runs/study
# 2. NASWOT initial population: pbt_nas with init naswot, seeds 0-4 (pbt_nas itself is reused from 1.)
$PY -m pbt_evo.sweep spaces/digits_hard.yaml --algorithms pbt_nas_naswot --seeds 0,1,2,3,4 --out runs/study
# 3. tables and anytime plots
$PY -m pbt_evo.compare runs/study --only $ALGS --baseline pbt_nas --out runs/study/compare
$PY -m pbt_evo.compare runs/study/*_s[0-4] --only pbt_nas,pbt_nas_naswot --baseline pbt_nas_naswot --out runs/study/compare_naswot
# 4. NASWOT score vs trained fitness on 40 random architectures
$PY -m pbt_evo.naswot spaces/digits_hard.yaml --archs 40 --out runs/naswot_tau
# 5. greedy soups of the pbt_nas runs' final populations
for s in 0 1 2 3 4 5 6; do $PY -m pbt_evo.soup runs/study/digits_hard_pbt_nas_s$s; done
$PY docs/studies/soup_table.py runs/study/digits_hard_pbt_nas_s? > runs/study/compare/soups.md
# 6. figures for the docs
$PY docs/studies/test_accuracy.py runs/study --only $ALGS > runs/study/compare/test_accuracy.md
cp runs/study/compare/anytime.png docs/img/anytime_digits_hard.png
cp runs/study/compare_naswot/anytime.png docs/img/anytime_naswot.png
cp runs/naswot_tau/naswot.png docs/img/naswot_tau.png
