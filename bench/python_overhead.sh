#!/usr/bin/env bash
# The Python package against the CLI on one large image: the same job (read a PNG, predict
# with the built-in model, write the cell probability as a float TIFF and the mask as a
# PNG) by `unet predict` and by `python bench/python_overhead.py`, alternately, REPEAT
# times each; prints wall time and peak RSS of every run (GNU time) and the median ratio.
#
#   bash bench/python_overhead.sh [SIZE] [REPEAT] [THREADS] [WORK_DIR]   # 4096 2 2 runs/pyoverhead
#
# Builds the release binary and a release wheel of python/ (pip install ./python) into
# WORK_DIR/venv.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${1:-4096}; REPEAT=${2:-2}; THREADS=${3:-2}; WORK=${4:-runs/pyoverhead}
mkdir -p "$WORK"; WORK=$(cd "$WORK" && pwd)
cargo build --release -q -p unet-cli --bin unet
UNET=$PWD/target/release/unet
if [ ! -x "$WORK/venv/bin/python" ]; then python3 -m venv "$WORK/venv"; fi
"$WORK/venv/bin/python" -m pip install -q --upgrade pip
"$WORK/venv/bin/python" -m pip install -q numpy pillow tifffile
# The release wheel of this checkout (REINSTALL=1 to rebuild it after a change).
if [ -n "${REINSTALL:-}" ] || ! "$WORK/venv/bin/python" -c "import unet" 2>/dev/null; then
  "$WORK/venv/bin/python" -m pip install -q --force-reinstall --no-deps ./python
fi
PY=$WORK/venv/bin/python
[ -f "$WORK/in/big.png" ] || "$UNET" -q synth --out "$WORK/syn" -n 1 --size "$SIZE" "$SIZE" --seed 1 --force
mkdir -p "$WORK/in"; cp -f "$WORK/syn/images/000.png" "$WORK/in/big.png"
TIME=(/usr/bin/time -f "%e %M")
[ -x /usr/bin/time ] || { apt-get install -y -qq time >/dev/null 2>&1 || true; }
: > "$WORK/runs.txt"
for r in $(seq "$REPEAT"); do
  rm -rf "$WORK/cli"
  "${TIME[@]}" -o "$WORK/t" "$UNET" --threads "$THREADS" -q predict --model isbi2012-em "$WORK/in/big.png" \
    --out "$WORK/cli" --no-overlay --tile 572
  echo "cli $(cat "$WORK/t")" | tee -a "$WORK/runs.txt"
  rm -rf "$WORK/py"
  "${TIME[@]}" -o "$WORK/t" "$PY" bench/python_overhead.py "$WORK/in/big.png" "$WORK/py" "$THREADS"
  echo "python $(cat "$WORK/t")" | tee -a "$WORK/runs.txt"
done
cmp "$WORK/cli/big_prob.tif" "$WORK/py/big_prob.tif" >/dev/null 2>&1 && echo "probabilities: identical files" \
  || "$PY" -c "import sys,numpy as n,tifffile as t; a,b=(t.imread(p) for p in sys.argv[1:]); print('probabilities equal:', n.array_equal(a,b))" \
     "$WORK/cli/big_prob.tif" "$WORK/py/big_prob.tif"
"$PY" - "$WORK/runs.txt" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
for who in ("cli", "python"):
    t = [float(r[1]) for r in rows if r[0] == who]; m = [int(r[2]) for r in rows if r[0] == who]
    print(f"{who:6s} wall s {t}  median {statistics.median(t):.2f}  peak RSS MiB {max(m) / 1024:.0f}")
c = statistics.median(float(r[1]) for r in rows if r[0] == "cli")
p = statistics.median(float(r[1]) for r in rows if r[0] == "python")
print(f"python / cli wall time: {p / c:.3f}")
PY
