#!/usr/bin/env bash
# Real-budget tune of the embedded Omniglot preset (run on a quiet machine; hours on 2 CPU cores).
# Every loss gets the same 30 trials on MAP@R of validation classes (20 % of the training
# classes, val_seed 0); the test split is never read. Resumable: rerun the same command after
# an interruption. Then compare with the best settings, 3 seeds, protocol final.
set -euo pipefail
OUT=${1:-runs/tune-omniglot}
losszoo tune --trials 30 --metric map_at_r --epochs 6 --lr-milestones 5 --output "$OUT"
losszoo compare --config "$OUT/best.toml" --seeds 3 --epochs 6 --lr-milestones 5 \
    --output runs/compare-omniglot-tuned
