#!/usr/bin/env bash
# The CUDA path in one short run (about 6 minutes on a fresh GPU machine), from the repository root:
#   OUT=gpu_out bash benchmarks/gpu_check.sh
# 1. a venv + `pip install -e ".[dev]"` (ranges only; torch is never pinned),
# 2. `pytest -m cuda` (tests/test_cuda.py),
# 3. a few hundred steps of the embedded-Omniglot comparison on CUDA with mixed precision:
#    every loss finite and above the untrained Recall@1 (checked below),
# 4. benchmarks/bench_losses.py --device cuda against pytorch-metric-learning,
# 5. benchmarks/bench_evaluate.py with faiss-gpu when it installs, else torch top-k on CUDA.
# Every figure lands as JSON under $OUT (default ./gpu_out); each step's log beside it.
# DRY_RUN=1 runs every step on the CPU at tiny sizes with the current python (no venv, no pip).
set -uo pipefail
OUT="${OUT:-./gpu_out}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
DEVICE=cuda
STEPS="${STEPS:-300}"
status=0
step() { echo "== $1 ($(date -u +%T))" | tee -a "$OUT/steps.log"; }
fail() { echo "FAILED: $1" | tee -a "$OUT/steps.log"; status=1; }

if [[ "${DRY_RUN:-0}" == 1 ]]; then
  PY="${PYTHON:-python}"; DEVICE=cpu; STEPS=3
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  step "venv and install"
  python3 -m venv .gpu_venv && PY="$PWD/.gpu_venv/bin/python" || exit 1
  "$PY" -m pip install -q --upgrade pip > "$OUT/pip.log" 2>&1
  "$PY" -m pip install -q -e ".[dev]" >> "$OUT/pip.log" 2>&1 || { fail "pip install"; exit 1; }
  "$PY" - > "$OUT/environment.json" <<'EOF'
import json, platform, torch
print(json.dumps({"torch": torch.__version__, "cuda": torch.version.cuda,
                  "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                  "python": platform.python_version()}, indent=2))
EOF
  cat "$OUT/environment.json"
fi

step "pytest -m cuda"
if [[ "$DEVICE" == cuda ]]; then
  "$PY" -m pytest -q -m cuda tests/test_cuda.py --junitxml="$OUT/pytest_cuda.xml" > "$OUT/pytest_cuda.log" 2>&1 \
    || fail "pytest -m cuda"
else
  "$PY" -m pytest -q -m cuda tests/test_cuda.py > "$OUT/pytest_cuda.log" 2>&1 || fail "pytest -m cuda"
fi
tail -3 "$OUT/pytest_cuda.log"

step "comparison: $STEPS steps per loss, device $DEVICE, mixed precision"
extra=(); [[ "$DEVICE" == cpu ]] && extra=(--max-classes 60)
"$PY" -m losszoo.cli.main compare --device "$DEVICE" --epochs 1 --warmup-epochs 0 \
  --batches-per-epoch "$STEPS" --no-progress -o "$OUT/compare" "${extra[@]}" > "$OUT/compare.log" 2>&1 \
  || fail "compare"
tail -20 "$OUT/compare.log"
"$PY" - "$OUT/compare" "$DEVICE" > "$OUT/compare_check.json" <<'EOF' || fail "compare check (loss not finite or not above untrained R@1)"
import json, math, sys
from pathlib import Path
folder, device = Path(sys.argv[1]), sys.argv[2]
runs = {p.parent.parent.name: json.loads(p.read_text()) for p in folder.glob("*/seed*/result.json")}
floor = runs.pop("untrained")["metrics"]["recall@1"]
rows = {name: {"recall@1": r["metrics"]["recall@1"], "losses": [h["loss"] for h in r["history"]],
               "train_seconds": r["train_seconds"]} for name, r in runs.items()}
ok = {name: all(math.isfinite(x) for x in row["losses"]) and row["recall@1"] > floor for name, row in rows.items()}
print(json.dumps({"device": device, "untrained_recall@1": floor, "runs": rows, "ok": ok}, indent=2))
# On the CPU dry run (3 steps) a loss may stay below the floor; only finiteness is required there.
sys.exit(0 if all(ok.values()) or (device == "cpu" and all(
    all(math.isfinite(x) for x in row["losses"]) for row in rows.values())) else 1)
EOF

step "bench_losses --device $DEVICE vs pytorch-metric-learning"
if [[ "$DEVICE" == cuda ]]; then
  "$PY" benchmarks/bench_losses.py --device cuda --rounds 5 --json "$OUT/bench_losses_cuda.json" \
    > "$OUT/bench_losses.log" 2>&1 || fail "bench_losses"
else
  "$PY" benchmarks/bench_losses.py --device cpu --rounds 1 --warmup 1 --block-ms 5 --only contrastive \
    --json "$OUT/bench_losses_cpu.json" > "$OUT/bench_losses.log" 2>&1 || fail "bench_losses"
fi
tail -15 "$OUT/bench_losses.log"

step "bench_evaluate"
backend=torch
if [[ "$DEVICE" == cuda ]] && "$PY" -m pip install -q "faiss-gpu-cu12>=1.8" > "$OUT/pip_faiss_gpu.log" 2>&1 \
   && "$PY" -c "import faiss, sys; sys.exit(0 if faiss.get_num_gpus() > 0 else 1)" >> "$OUT/pip_faiss_gpu.log" 2>&1; then
  backend=faiss
fi
echo "evaluate backend: $backend (faiss-gpu: $([[ $backend == faiss ]] && echo yes || echo no, torch top-k))"
size=(--repeats 1 --threads "$(nproc)"); [[ "$DEVICE" == cpu ]] && size=(--num-items 2000 --num-classes 400 --ks 1,10,100 --repeats 1)
"$PY" benchmarks/bench_evaluate.py --backend "$backend" --skip-nmi "${size[@]}" \
  --json "$OUT/bench_evaluate_${DEVICE}_${backend}.json" > "$OUT/bench_evaluate.log" 2>&1 || fail "bench_evaluate"
tail -6 "$OUT/bench_evaluate.log"

step "done (status $status)"
exit $status
