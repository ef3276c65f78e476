#!/usr/bin/env bash
# The tune for the cub100 preset (EfficientNet-Lite0 on cub100, 128 px, 1 warm-up epoch + 4,
# lr / 10 for the last: the shared settings of losszoo/training/presets/cub100-cpu.toml, which
# --preset reads), then the comparison it feeds.
# Every loss gets the same TRIALS seeded-TPE trials on MAP@R of validation classes: 20 % of the
# 58 training species (val_seed 0), evaluated every epoch; the 42 test species are never read.
# Trial 0 of each study is the loss's untuned setting (its paper's defaults at lr 0.01).
# The trials run in passes of 2 per loss (2, 4, ... TRIALS), so that an interruption leaves every
# loss with about the same number of trials. Resumable: rerun after an interruption (the
# studies live in $OUT's SQLite storage), or with a larger TRIALS to extend them. One worker: on
# 2 cores a trial's train step uses both.
# Cost measured on 2 quiet cores (Intel Xeon guest, 2026-12-07): a trial that runs to the end
# takes 3 to 3.5 min (45 s an epoch at ~60 img/s, plus 4 validations of 686 photos), one the
# median pruner stops after epoch 3 of 5 (from the third trial on) 1.5 to 2 min: the first pass
# about 55 min, later ones about 30, about 2 hours for TRIALS=6. Its best.toml's per-loss tables
# became the shipped preset's (docs/compare-cub.md).
set -euo pipefail
OUT=${1:-runs/tune-cub100}
TRIALS=${TRIALS:-6}
DATA=${DATA:-../shared/datasets/cub100}
export LOSSZOO_DECODED_CACHE=${LOSSZOO_DECODED_CACHE:-$HOME/.cache/losszoo/decoded}
LOSSES=${LOSSES:-paper}   # the eight losses Zhai & Wu compare; 'all' adds the 2020s group
for trials in $(seq 2 2 "$TRIALS") $([ $((TRIALS % 2)) -eq 1 ] && echo "$TRIALS"); do
    losszoo tune --preset cub100-cpu --data-root "$DATA" --losses "$LOSSES" \
        --trials "$trials" --metric map_at_r --eval-every 1 --no-binary --output "$OUT" --no-progress
done
[ -n "${NO_COMPARE:-}" ] || losszoo compare --config "$OUT/best.toml" --data-root "$DATA" \
    --losses "$LOSSES" --output runs/compare-cub100
