#!/usr/bin/env bash
# The cost of a block and of a worker, for docs/cluster.md:
#   1. per-block overhead: one 4096^2 image planned with blocks of 1, 2 and 5 tile steps
#      (25, 9 and 1 blocks, the same tiles in each), predicted by one 1-thread worker; the
#      slope of wall time over the number of blocks is the cost of a block beyond its tiles;
#      and the fixed cost of a worker (start, plan, model checksum) from a rerun that finds
#      every block done;
#   2. N local workers (`unet predict --plan --shard i/N --threads 1`, started together) on a
#      SIZE^2 image: wall time, throughput in all and per worker, each worker's peak RSS.
#
#   bash bench/cluster_workers.sh [SIZE] [WORKERS...]     (default: 16384, workers 1 2)
#
# Inputs as bench/zarr_memory.sh makes them (the ISBI test slices tiled, NGFF 0.4, Zarr v2);
# model isbi2012-em at a fixed 1,052-px tile; outputs u8 probabilities, mask, instances.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${1:-16384}; shift || true
WORKERS=("${@:-1 2}")
SMALL=${BLOCK_IMAGE:-4096}   # the image of part 1 (a smaller one to try the script quickly)
read -r -a WORKERS <<< "${WORKERS[*]}"
PY=bench/.venv/bin/python
[ -x "$PY" ] || python3 -m venv bench/.venv
"$PY" -c "import zarr, PIL" 2>/dev/null || "$PY" -m pip install -q "zarr>=2.18,<3" numpy pillow
cargo build --release -q --bin unet
UNET=$PWD/target/release/unet
W=runs/zarrmem; mkdir -p "$W"
for n in "$SMALL" "$SIZE"; do
  [ -d "$W/in-$n.ome.zarr" ] || "$PY" bench/make_ome_zarr.py "$n" "$W/in-$n.ome.zarr" > /dev/null
done
OPTS=(--model isbi2012-em --tile 1052 --instances --zarr-probs u8 --force)

# Runs the commands given as JSON lists at the same time; prints the wall seconds, then
# one line per command: its peak RSS in MB (os.wait4 gives each child's own rusage).
cat > "$W/together.py" <<'PY'
import json, os, subprocess, sys, time
cmds = [json.loads(a) for a in sys.argv[1:]]
t = time.time()
procs = {subprocess.Popen(c, stdout=subprocess.DEVNULL).pid: i for i, c in enumerate(cmds)}
rss = [0] * len(cmds)
while procs:
    pid, status, ru = os.wait4(-1, 0)
    if pid in procs:
        if status != 0:
            sys.exit(f"command {procs[pid]} failed: {status}")
        rss[procs.pop(pid)] = ru.ru_maxrss / 1024
print(f"{time.time() - t:.2f}")
for r in rss:
    print(f"{r:.0f}")
PY
blocks() { "$PY" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["blocks"]))' "$1/unet-plan.json"; }
json_cmd() { "$PY" -c 'import json,sys; print(json.dumps(sys.argv[1:]))' "$@"; }

echo "## per-block overhead (${SMALL}^2, 1 worker, 1 thread, tile 1052 = step 864)"
echo "| block px | blocks | predict s | finalize s |"
echo "|---|---|---|---|"
for b in 864 1728 4320; do
  out=$W/blk-$b.ome.zarr
  "$UNET" -q plan "$W/in-$SMALL.ome.zarr" --out "$out" --block "$b" "${OPTS[@]}" > /dev/null
  secs=$("$PY" "$W/together.py" "$(json_cmd "$UNET" --threads 1 -q predict --plan "$out")" | head -1)
  fin=$("$PY" "$W/together.py" "$(json_cmd "$UNET" --threads 1 -q finalize "$out")" | head -1)
  echo "| $b | $(blocks "$out") | $secs | $fin |"
done
rerun=$("$PY" "$W/together.py" "$(json_cmd "$UNET" --threads 1 -q predict --plan "$W/blk-864.ome.zarr")" | head -1)
echo "a worker that finds all $(blocks "$W/blk-864.ome.zarr") blocks done: $rerun s"

echo "## N local workers on ${SIZE}^2, 1 thread each"
echo "| workers | blocks | wall s | finalize s | Mpx/s | Mpx/s per worker | peak RSS per worker MB |"
echo "|---|---|---|---|---|---|---|"
for n in "${WORKERS[@]}"; do
  out=$W/workers-$n.ome.zarr
  "$UNET" -q plan "$W/in-$SIZE.ome.zarr" --out "$out" "${OPTS[@]}" > /dev/null
  cmds=()
  for ((i = 0; i < n; i++)); do
    cmds+=("$(json_cmd "$UNET" --threads 1 -q predict --plan "$out" --shard "$i/$n")")
  done
  mapfile -t r < <("$PY" "$W/together.py" "${cmds[@]}")
  fin=$("$PY" "$W/together.py" "$(json_cmd "$UNET" --threads 1 -q finalize "$out")" | head -1)
  peaks=$(IFS=/; echo "${r[*]:1}")
  awk -v n="$n" -v b="$(blocks "$out")" -v s="${r[0]}" -v f="$fin" -v px="$SIZE" -v p="$peaks" \
    'BEGIN { m = px * px / 1e6 / s; printf "| %d | %d | %.1f | %.1f | %.2f | %.2f | %s |\n", n, b, s, f, m, m / n, p }'
done
