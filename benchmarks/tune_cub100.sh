#!/usr/bin/env bash
# The tune for the draft preset benchmarks/presets/cub100-cpu.toml (EfficientNet-Lite0 on
# cub100, 128 px, 4 epochs + 1 warm-up, lr / 10 for the last), then the comparison it feeds.
# Every loss gets the same TRIALS seeded-TPE trials on MAP@R of validation classes: 20 % of the
# 58 training species (val_seed 0), evaluated every epoch; the 42 test species are never read.
# Resumable: rerun after an interruption (the studies live in $OUT's SQLite storage), or with a
# larger TRIALS to extend them. One worker: on 2 cores a trial's train step uses both.
# Cost (estimated from quiet 2-core train-step rates, not measured end to end): a trial is about
# 5 min (4 epochs over ~2,700 photos at ~37 img/s, plus validation), so 8 losses x 8 trials is
# about 5 h; about half that with the CPU-speed work (channels-last, allocator) merged.
set -euo pipefail
OUT=${1:-runs/tune-cub100}
TRIALS=${TRIALS:-8}
DATA=${DATA:-../shared/datasets/cub100}
export LOSSZOO_DECODED_CACHE=${LOSSZOO_DECODED_CACHE:-$HOME/.cache/losszoo/decoded}
LOSSES=${LOSSES:-paper}   # the eight losses Zhai & Wu compare; 'all' adds the 2020s group
losszoo tune --config benchmarks/presets/cub100-cpu.toml --data-root "$DATA" --losses "$LOSSES" \
    --trials "$TRIALS" --metric map_at_r --eval-every 1 --no-binary --output "$OUT" --no-progress
[ -n "${NO_COMPARE:-}" ] || losszoo compare --config "$OUT/best.toml" --data-root "$DATA" \
    --losses "$LOSSES" --output runs/compare-cub100
