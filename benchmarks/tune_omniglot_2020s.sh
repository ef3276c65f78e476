#!/usr/bin/env bash
# The tune of the four later losses (the `modern` group: Proxy-Anchor, Multi-Similarity, ArcFace,
# SupCon) on the schedule and budget of the shipped Omniglot preset's tune
# (benchmarks/tune_omniglot.sh): 10 epochs of 100 batches, lr / 10 after epochs 6 and 9, the
# same TRIALS per loss on MAP@R of validation classes (20 % of the training classes, val_seed 0);
# the test split is never read. Trial 0 of each study is the loss's untuned setting, i.e. its
# paper's defaults (the warm start: no earlier tune of these losses exists). The eight paper
# losses' preset came from a chain of tunes (4 trials at 6 epochs, 20 at 7, 6 at 10); for the
# same total budget per loss run with TRIALS=30.
# Two workers, one per core, share the studies; resumable: rerun after an interruption, or with
# a larger TRIALS to extend the studies.
set -euo pipefail
OUT=${1:-runs/tune-omniglot}
TRIALS=${TRIALS:-6}
COMMON=(--trials "$TRIALS" --metric map_at_r --epochs 10 --lr-milestones 6,9 --batches-per-epoch 100
        --no-binary --output "$OUT" --no-progress)
OMP_NUM_THREADS=1 losszoo tune --losses proxyanchor,multisimilarity "${COMMON[@]}" &
OMP_NUM_THREADS=1 losszoo tune --losses arcface,supcon "${COMMON[@]}" &
wait
# Resumes the finished studies (no new trials) and writes one best.toml for them: LOSSES=all
# when OUT holds the eight losses' studies too (then the comparison runs all twelve).
LOSSES=${LOSSES:-modern}
losszoo tune --losses "$LOSSES" "${COMMON[@]}"
[ -n "${NO_COMPARE:-}" ] || losszoo compare --losses "$LOSSES" --config "$OUT/best.toml" \
    --output runs/compare-omniglot-tuned-2020s
