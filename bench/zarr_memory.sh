#!/usr/bin/env bash
# Peak memory (and time) of `unet predict` on OME-Zarr images of growing size: the memory is
# bounded by the blocks in flight, not by the image.
#
#   bash bench/zarr_memory.sh [THREADS] [SIZES...]      (default: 2 threads, 4096 16384 32768)
#
# Inputs: the ISBI 2012 test slices tiled to SIZE^2 (bench/make_ome_zarr.py: NGFF 0.4, Zarr
# v2, blosc), model isbi2012-em, outputs: u8 probabilities, mask, instance labels, pyramid.
# Prints one line per size: size, wall seconds, peak RSS in MB, megapixels/s.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${1:-2}; shift || true
SIZES=("${@:-4096 16384 32768}")
read -r -a SIZES <<< "${SIZES[*]}"
PY=bench/.venv/bin/python
[ -x "$PY" ] || python3 -m venv bench/.venv
"$PY" -c "import zarr, PIL" 2>/dev/null || "$PY" -m pip install -q "zarr>=2.18,<3" numpy pillow
cargo build --release -q --bin unet
W=runs/zarrmem; mkdir -p "$W"
echo "| size | wall s | peak RSS MB | Mpx/s |"
echo "|---|---|---|---|"
for n in "${SIZES[@]}"; do
  [ -d "$W/in-$n.ome.zarr" ] || "$PY" bench/make_ome_zarr.py "$n" "$W/in-$n.ome.zarr" > /dev/null
  # Wall time and the child's peak RSS (getrusage; no GNU time needed).
  read -r secs kb < <("$PY" -c 'import resource, subprocess, sys, time
t = time.time(); subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(time.time() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)' \
    target/release/unet --threads "$THREADS" -q predict "$W/in-$n.ome.zarr" --model isbi2012-em \
    --out "$W/out-$n.ome.zarr" --instances --zarr-probs u8 --force)
  awk -v n="$n" -v s="$secs" -v kb="$kb" 'BEGIN { printf "| %d | %.1f | %.0f | %.2f |\n", n, s, kb / 1024, n * n / 1e6 / s }'
done
