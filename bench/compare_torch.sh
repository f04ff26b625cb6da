#!/usr/bin/env bash
# Side-by-side CPU timing of unet and the PyTorch twin (../shared/bench/torch_unet.py):
# A B A B ... for ROUNDS rounds on the same settings, then the ratios of the medians.
#
#   bash bench/compare_torch.sh [WIDTH] [TILE] [THREADS] [ROUNDS]
#
# Installs torch (CPU) into bench/.venv when it is missing. Timings are never asserted in
# tests; record them in docs/performance.md with the machine and the date.
set -euo pipefail
cd "$(dirname "$0")/.."
WIDTH=${1:-16}; TILE=${2:-572}; THREADS=${3:-2}; ROUNDS=${4:-5}
REF=${UNET_SHARED:-../shared}/bench/torch_unet.py
PY=bench/.venv/bin/python
if ! [ -x "$PY" ] || ! "$PY" -c "import torch" 2>/dev/null; then
  python3 -m venv bench/.venv
  "$PY" -m pip install -q --upgrade pip
  "$PY" -m pip install -q torch numpy
fi
cargo build --release -q --bin unet
out=$(mktemp)
for r in $(seq 1 "$ROUNDS"); do
  ./target/release/unet --threads "$THREADS" bench --width "$WIDTH" --tile "$TILE" --repeat 3 --json | sed 's/^/unet /' | tee -a "$out"
  "$PY" "$REF" --width "$WIDTH" --tile "$TILE" --threads "$THREADS" --repeat 3 | sed 's/^/torch /' | tee -a "$out"
done
python3 - "$out" <<'PY'
import json, statistics, sys
rows = {"unet": [], "torch": []}
for line in open(sys.argv[1]):
    who, js = line.split(" ", 1)
    rows[who].append(json.loads(js))
for key in ("forward_s", "train_step_s"):
    u = statistics.median(r[key] for r in rows["unet"])
    t = statistics.median(r[key] for r in rows["torch"])
    print(f"{key}: unet {u:.3f} s, torch {t:.3f} s, ratio unet/torch {u / t:.2f}")
PY
