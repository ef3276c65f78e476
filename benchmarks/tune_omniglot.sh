#!/usr/bin/env bash
# The tune behind the shipped preset losszoo/training/presets/omniglot.toml, then the default
# comparison it feeds. Every loss gets the same 20 trials on MAP@R of validation classes (20 % of
# the training classes, val_seed 0); the test split is never read. Schedule: 7 epochs of 100
# batches, lr / 10 after epochs 4 and 6. Trial 0 of each study is the loss's untuned setting,
# trial 1 its best from the earlier 6-epoch tune (benchmarks/tuned/omniglot-tune-6epochs.toml,
# 4 trials per loss, also on validation classes), a sampler draw where that was the untuned one.
# The preset came from TRIALS=10 (24 min 31 s on the two cores, two workers, one per core,
# sharing the study), then TRIALS=20 resuming it (22 min 34 s more; 2026-12-04, quiet machine).
# Resumable: rerun after an interruption, or with a larger TRIALS to extend the studies.
# Musgrave et al. use ~50 trials per loss: about two hours here.
set -euo pipefail
OUT=${1:-runs/tune-omniglot}
TRIALS=${TRIALS:-20}
COMMON=(--trials "$TRIALS" --metric map_at_r --epochs 7 --lr-milestones 4,6 --batches-per-epoch 100
        --warm-start benchmarks/tuned/omniglot-tune-6epochs.toml --no-binary --output "$OUT" --no-progress)
OMP_NUM_THREADS=1 losszoo tune --losses normsoftmax,cosface,proxynca,triplet "${COMMON[@]}" &
OMP_NUM_THREADS=1 losszoo tune --losses margin,npair,lifted,contrastive "${COMMON[@]}" &
wait
# Resumes the eight finished studies (no new trials) and writes one best.toml for all of them.
losszoo tune --losses normsoftmax,cosface,proxynca,triplet,margin,npair,lifted,contrastive "${COMMON[@]}"
[ -n "${NO_COMPARE:-}" ] || losszoo compare --config "$OUT/best.toml" --output runs/compare-omniglot-tuned
