#!/usr/bin/env bash
# The tune behind the shipped preset losszoo/training/presets/omniglot.toml, then the default
# comparison it feeds. Schedule: 10 epochs of 100 batches, lr / 10 after epochs 6 and 9. Every
# loss gets the same 6 trials on MAP@R of validation classes (20 % of the training classes,
# val_seed 0); the test split is never read. Trial 0 of each study is the loss's untuned
# setting, trial 1 its best from the 7-epoch tune before it
# (benchmarks/tuned/omniglot-tune-7epochs.toml: 20 trials per loss, itself warm-started from the
# 6-epoch tune of 4 trials, benchmarks/tuned/omniglot-tune-6epochs.toml; both on validation
# classes only), a sampler draw where that best was the untuned one.
# Two workers, one per core, share the study; resumable: rerun after an interruption, or with a
# larger TRIALS to extend the studies. Timings: docs/compare-omniglot.md.
set -euo pipefail
OUT=${1:-runs/tune-omniglot}
TRIALS=${TRIALS:-6}
COMMON=(--trials "$TRIALS" --metric map_at_r --epochs 10 --lr-milestones 6,9 --batches-per-epoch 100
        --warm-start benchmarks/tuned/omniglot-tune-7epochs.toml --no-binary --output "$OUT" --no-progress)
OMP_NUM_THREADS=1 losszoo tune --losses normsoftmax,cosface,proxynca,triplet "${COMMON[@]}" &
OMP_NUM_THREADS=1 losszoo tune --losses margin,npair,lifted,contrastive "${COMMON[@]}" &
wait
# Resumes the eight finished studies (no new trials) and writes one best.toml for all of them.
losszoo tune --losses normsoftmax,cosface,proxynca,triplet,margin,npair,lifted,contrastive "${COMMON[@]}"
[ -n "${NO_COMPARE:-}" ] || losszoo compare --config "$OUT/best.toml" --output runs/compare-omniglot-tuned
