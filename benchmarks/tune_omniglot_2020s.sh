#!/usr/bin/env bash
# The tune of the four later losses (the `modern` group: Proxy-Anchor, Multi-Similarity, ArcFace,
# SupCon) by the same chain of tunes that gave the eight paper losses the shipped Omniglot preset
# (benchmarks/tuned/omniglot-tune-6epochs.toml, -7epochs.toml, then benchmarks/tune_omniglot.sh):
#   1. 4 trials per loss at 6 epochs (lr / 10 after epoch 4);
#   2. 20 trials at 7 epochs (after 4 and 6), warm-started from step 1's best;
#   3. 6 trials at the preset's schedule, 10 epochs (after 6 and 9), warm-started from step 2's.
# Every step: 100 batches an epoch, MAP@R of validation classes (20 % of the training classes,
# val_seed 0; the test split is never read), trial 0 of each study the loss's untuned setting
# (its paper's defaults), trial 1 the previous step's best (unless that was trial 0). Step 3's
# best.toml gives the four losses' tables of losszoo/training/presets/omniglot.toml.
# Two workers, one per core, share each step's studies (SQLite in OUT/<step>); resumable: rerun
# after an interruption (a step whose studies have finished adds no trials). Timings: docs/compare-omniglot.md.
set -euo pipefail
OUT=${1:-runs/tune-omniglot-2020s}

step() {  # folder, trials, epochs, lr milestones, warm start (optional)
    local common=(--trials "$2" --metric map_at_r --epochs "$3" --lr-milestones "$4" --batches-per-epoch 100
                  --no-binary --output "$OUT/$1" --no-progress ${5:+--warm-start "$5"})
    OMP_NUM_THREADS=1 losszoo tune --losses proxyanchor,multisimilarity "${common[@]}" &
    OMP_NUM_THREADS=1 losszoo tune --losses arcface,supcon "${common[@]}" &
    wait
    losszoo tune --losses modern "${common[@]}"  # resumes the finished studies: one best.toml
}

step 6epochs 4 6 4
step 7epochs 20 7 4,6 "$OUT/6epochs/best.toml"
step 10epochs 6 10 6,9 "$OUT/7epochs/best.toml"
# Then, with those tables in the preset, the twelve-loss table: losszoo compare --losses all
