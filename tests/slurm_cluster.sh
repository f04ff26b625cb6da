#!/usr/bin/env bash
# A real Slurm on this machine predicts one OME-Zarr image as an array job, one task is
# killed mid-way and resubmitted, and the result must be bit-identical to `unet predict` in
# one process: every array (probabilities, mask, instance labels, each with its pyramid)
# holds the same values, and every metadata file and block record the same bytes (but the
# plan, which names the output's path).
#
#   bash tests/slurm_cluster.sh [SIZE] [TASKS] [WORK_DIR]     (default: 16384 8 runs/slurm)
#
# Installs Debian's slurm-wlm and munge when missing (needs root), writes a one-node
# slurm.conf (this machine, its CPUs and memory; proctrack/pgid, task/none: no cgroups
# needed) under WORK_DIR, starts munged, slurmctld and slurmd, and stops them at the end.
# The input is the ISBI 2012 test slices tiled to SIZE^2 (bench/make_ome_zarr.py). Prints
# the timings of each phase; exits non-zero on any difference.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${1:-16384}; TASKS=${2:-8}; WORK=${3:-runs/slurm}
MODEL=${UNET_MODEL:-isbi2012-em}
PY=bench/.venv/bin/python
log() { printf '[%s] %s\n' "$(date +%T)" "$*"; }

if ! command -v slurmctld > /dev/null || ! command -v munged > /dev/null; then
  log "installing slurm-wlm and munge"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge > /dev/null
fi
[ -x "$PY" ] || python3 -m venv bench/.venv
"$PY" -c "import zarr, PIL" 2> /dev/null || "$PY" -m pip install -q "zarr>=2.18,<3" numpy pillow
# zarr-python 3 reads the sharded Zarr v3 outputs, for the comparison at the end.
Z3=bench/.venv-zarr3/bin/python
[ -x "$Z3" ] || python3 -m venv bench/.venv-zarr3
"$Z3" -c "import zarr, sys; sys.exit(int(zarr.__version__.split('.')[0]) < 3)" 2> /dev/null || "$Z3" -m pip install -q "zarr>=3" numpy
cargo build --release -q --bin unet
UNET=$PWD/target/release/unet
export UNET

mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
S=$WORK/slurm
rm -rf "$S"
mkdir -p "$S/state" "$S/spool" "$S/log"
HOST=$(hostname -s)
CPUS=$(nproc)
MEM_MB=$(awk '/MemTotal/ { print int($2 / 1024 * 0.9) }' /proc/meminfo)
cat > "$S/slurm.conf" << EOF
ClusterName=unet-test
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/pgid
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
StateSaveLocation=$S/state
SlurmdSpoolDir=$S/spool
SlurmctldPidFile=$S/slurmctld.pid
SlurmdPidFile=$S/slurmd.pid
SlurmctldLogFile=$S/log/slurmctld.log
SlurmdLogFile=$S/log/slurmd.log
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/builtin
InactiveLimit=0
KillWait=5
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=$S/slurm.conf

stop_daemons() {
  for p in "$S/slurmd.pid" "$S/slurmctld.pid"; do
    [ -f "$p" ] && kill "$(cat "$p")" 2> /dev/null || true
  done
}
trap stop_daemons EXIT

# munge: a key, then the daemon (as root, which munged allows with --force).
if ! pgrep -x munged > /dev/null; then
  mkdir -p /etc/munge /var/run/munge /var/lib/munge /var/log/munge
  [ -s /etc/munge/munge.key ] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  chmod 400 /etc/munge/munge.key
  munged --force
fi
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 60); do
  sinfo -h -o %T 2> /dev/null | grep -qE '^idle' && break
  sleep 1
done
sinfo -h -o '%P %D %T %C' | grep -q idle || { log "slurmd did not come up"; tail -20 "$S"/log/*.log; exit 1; }
log "slurm up: $(sinfo -h -o 'partition %P, %D node, state %T, CPUs %C')"

IN=$WORK/in-$SIZE.ome.zarr
[ -d "$IN" ] || { log "making the $SIZE^2 input"; "$PY" bench/make_ome_zarr.py "$SIZE" "$IN" > /dev/null; }
OUT=$WORK/array.ome.zarr
ONE=$WORK/one.ome.zarr
OPTS=(--instances --zarr-probs u8)

t0=$(date +%s)
"$UNET" -q plan "$IN" --model "$MODEL" --out "$OUT" "${OPTS[@]}" --force > /dev/null
BLOCKS=$(find "$OUT" -maxdepth 1 -name unet-plan.json -exec "$PY" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["blocks"]))' {} \;)
t1=$(date +%s)
log "plan: $BLOCKS blocks in $((t1 - t0)) s"

wait_job() { # until no task of job $1 is pending or running
  while squeue -h -j "$1" 2> /dev/null | grep -q .; do sleep 2; done
}
# One CPU per task: the array's tasks share the machine's cores.
JOB=$(sbatch --parsable --array="0-$((TASKS - 1))" --cpus-per-task=1 --mem=3G --output="$WORK/task-%A_%a.log" \
  deploy/slurm/predict.sbatch "$OUT")
log "submitted array job $JOB (tasks 0-$((TASKS - 1)))"
# Kill the task that owns block VICTIM once that block is done, before its next block is.
VICTIM=$((TASKS - 1))
while [ ! -f "$OUT/unet-blocks/$VICTIM.json" ]; do sleep 1; done
scancel "${JOB}_$VICTIM"
log "cancelled task $VICTIM after its first block"
wait_job "$JOB"
t2=$(date +%s)
done_blocks=$(find "$OUT/unet-blocks" -name '*.json' | wc -l)
log "array job ended after $((t2 - t1)) s: $done_blocks of $BLOCKS blocks done"
[ "$done_blocks" -lt "$BLOCKS" ] || { log "FAIL: the cancelled task finished anyway"; exit 1; }
if "$UNET" -q finalize "$OUT" 2> "$WORK/finalize-early.err"; then
  log "FAIL: finalize accepted a store with missing blocks"; exit 1
fi
log "finalize refused: $(head -1 "$WORK/finalize-early.err")"
JOB2=$(sbatch --parsable --array="$VICTIM" --cpus-per-task=1 --mem=3G --output="$WORK/task-%A_%a.log" \
  --export=ALL,UNET_SHARD_COUNT="$TASKS" deploy/slurm/predict.sbatch "$OUT")
wait_job "$JOB2"
t3=$(date +%s)
log "resubmitted task $VICTIM (job $JOB2): $((t3 - t2)) s; $(grep -o '[0-9]* block(s) predicted, [0-9]* already done' "$WORK/task-${JOB2}_$VICTIM.log" || true)"
"$UNET" -q finalize "$OUT" > /dev/null
t4=$(date +%s)
log "finalize: $((t4 - t3)) s; array job in all (plan to finalize): $((t4 - t0)) s"

"$UNET" --threads "$CPUS" -q predict "$IN" --model "$MODEL" --out "$ONE" "${OPTS[@]}" --force > /dev/null
t5=$(date +%s)
log "one process, $CPUS threads: $((t5 - t4)) s"

# The arrays (every level of the probabilities, mask and instance labels) must hold the same
# values; the metadata and the blocks' records the same bytes. (The shards' compressed bytes
# may differ with the number of threads that encoded them, so they are compared decoded.)
for f in $(cd "$OUT" && find . -type f -name '*.json' ! -name unet-plan.json | sort); do
  cmp -s "$OUT/$f" "$ONE/$f" || { log "FAIL: $f differs"; exit 1; }
done
"$Z3" - "$OUT" "$ONE" << 'PY'
import os, sys
import numpy as np, zarr
a, b = sys.argv[1], sys.argv[2]
arrays = sorted(os.path.relpath(d, a) for d, _, files in os.walk(a)
                if "zarr.json" in files and '"node_type": "array"' in open(os.path.join(d, "zarr.json")).read())
for path in arrays:
    x, y = zarr.open_array(os.path.join(a, path), mode="r"), zarr.open_array(os.path.join(b, path), mode="r")
    assert x.shape == y.shape and x.dtype == y.dtype, (path, x.shape, y.shape)
    for i in range(0, x.shape[-2], 2048):
        if not np.array_equal(x[..., i:i + 2048, :], y[..., i:i + 2048, :]):
            sys.exit(f"FAIL: {path} differs in rows {i}-{i + 2047}")
print(f"{len(arrays)} arrays equal: " + ", ".join(arrays))
PY
n=$(find "$OUT" -type f | wc -l)
log "PASS: the array job's store holds the same values as the one-process store ($n files)"
