#!/usr/bin/env bash
# Crash safety of training, end to end: a tiny model is trained once without interruption,
# then again while the run is killed (SIGKILL) or stopped (SIGTERM) at random points,
# KILLS times in all, resuming after each (`unet train --resume RUN`, or a fresh start
# when the kill came before the first checkpoint). The two runs' final model files must
# hold the same tensor values and, since model files are byte-reproducible, the same bytes.
#
#   bash tests/kill_resume.sh                 # 20 kills, 400 steps, 1 thread
#   KILLS=5 STEPS=100 SEED=7 bash tests/kill_resume.sh
#
# Settings (environment): KILLS (20), STEPS (400), CHECKPOINT_EVERY (10), THREADS (1),
# SIZE (image side, 96), SEED (of the kill schedule; random when unset), WORK (a folder
# for the runs; a new temporary one when unset, kept when given). Exit status 0 when the
# files match, 1 when they differ, 2 when the script could not run.
set -euo pipefail
cd "$(dirname "$0")/.."

KILLS=${KILLS:-20}
STEPS=${STEPS:-400}
CHECKPOINT_EVERY=${CHECKPOINT_EVERY:-10}
THREADS=${THREADS:-1}
SIZE=${SIZE:-96}
SEED=${SEED:-$(( $(date +%s) % 32768 ))}
if [[ -n "${WORK:-}" ]]; then
    mkdir -p "$WORK"
else
    WORK=$(mktemp -d)
    trap 'rm -rf "$WORK"' EXIT
fi
RANDOM=$SEED

cargo build --release --quiet -p unet-cli --bin unet || exit 2
UNET=$PWD/target/release/unet
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

"$UNET" -q synth --out "$WORK/data" -n 3 --size "$SIZE" "$SIZE" --seed 1 --force >/dev/null || exit 2
cat >"$WORK/config.toml" <<EOF
images = "$WORK/data/images"
labels = "$WORK/data/labels"
width = 4
depth = 2
steps = $STEPS
checkpoint_every = $CHECKPOINT_EVERY
log_every = 1
seed = 5
EOF
# An array, not a function: `cmd &` of a function forks a shell whose child the kills
# would miss; a plain command is exec'd, so `$!` is the unet process itself.
TRAIN=("$UNET" --threads "$THREADS" -q train)

echo "kill_resume: $STEPS steps, checkpoint every $CHECKPOINT_EVERY, $KILLS kills, $THREADS thread(s), seed $SEED, in $WORK"
rm -rf "$WORK/reference" "$WORK/killed"
t0=$(now)
"${TRAIN[@]}" --config "$WORK/config.toml" --out "$WORK/reference" >"$WORK/reference.log" 2>&1 || {
    echo "the uninterrupted run failed:"; cat "$WORK/reference.log"; exit 2
}
reference_s=$(elapsed "$t0")
echo "uninterrupted run: $reference_s s"

# Kill points: KILLS steps drawn at random, in order. The run logs every step to
# metrics.csv; once it has logged the target step, the signal follows after a random
# 0-2 step times, so kills land inside steps, checkpoint writes and startups (a resumed
# run that is already past the next target is hit while it starts).
targets=($(for _ in $(seq "$KILLS"); do echo $((RANDOM % (STEPS - 1) + 1)); done | sort -n))
step_ms=$(awk -v t="$reference_s" -v n="$STEPS" 'BEGIN { printf "%d", 1000 * t / n }')
last_step() { tail -n 1 "$run/metrics.csv" 2>/dev/null | cut -d, -f1 || true; }
alive() { local state; state=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) && [[ $state != Z ]]; }
run=$WORK/killed
kills=0 sigkills=0 sigterms=0 fresh=0 resumes=0 attempts=0
t0=$(now)
while :; do
    attempts=$((attempts + 1))
    if [[ -f "$run/checkpoint.safetensors" ]]; then
        resumes=$((resumes + 1))
        "${TRAIN[@]}" --resume "$run" >>"$WORK/killed.log" 2>&1 &
    else
        # Killed before the first checkpoint (or never started): start again.
        fresh=$((fresh + 1))
        "${TRAIN[@]}" --config "$WORK/config.toml" --out "$run" --force >>"$WORK/killed.log" 2>&1 &
    fi
    pid=$!
    sig=none
    if ((kills < KILLS)); then
        target=${targets[$kills]}
        while alive "$pid"; do
            s=$(last_step)
            if [[ $s =~ ^[0-9]+$ ]] && ((s >= target)); then break; fi
            sleep 0.02
        done
        delay=$(awk -v r="$RANDOM" -v s="$step_ms" 'BEGIN { printf "%.3f", 2 * (r / 32767) * s / 1000 }')
        sleep "$delay"
        if ((RANDOM % 2)); then sig=KILL; else sig=TERM; fi
        at=$(last_step)
        kill -s "$sig" "$pid" 2>/dev/null || true
    fi
    rc=0
    { wait "$pid"; } 2>/dev/null || rc=$?
    case $rc in
        0) break ;; # finished (a kill that came too late does not count)
        137 | 143) # killed, or stopped with a checkpoint
            kills=$((kills + 1))
            if ((rc == 137)); then sigkills=$((sigkills + 1)); else sigterms=$((sigterms + 1)); fi
            echo "kill $kills: SIG$sig at logged step ${at:-none} (target $target, +$delay s), exit $rc" >>"$WORK/killed.log" ;;
        *)
            echo "attempt $attempts ended with exit status $rc:"; tail -5 "$WORK/killed.log"; exit 1 ;;
    esac
    if ((attempts > 10 * KILLS + 10)); then
        echo "no progress after $attempts attempts"; exit 2
    fi
done
killed_s=$(elapsed "$t0")
echo "interrupted run: $kills kills ($sigkills SIGKILL, $sigterms SIGTERM), $resumes resumes, $fresh fresh starts, $killed_s s"
grep '^kill ' "$WORK/killed.log" | sed 's/^/  /'

status=0
for f in last.safetensors checkpoint.safetensors; do
    if cmp -s "$WORK/reference/$f" "$run/$f"; then
        echo "$f: byte-identical ($(wc -c <"$run/$f") bytes)"
    else
        echo "$f: bytes DIFFER ($(cmp "$WORK/reference/$f" "$run/$f" 2>&1 | head -1))"
        status=1
    fi
done
# Tensor values, read with the standard library only.
python3 - "$WORK/reference/last.safetensors" "$run/last.safetensors" <<'EOF' || status=1
import json, struct, sys

def read(path):
    with open(path, "rb") as f:
        b = f.read()
    n = struct.unpack("<Q", b[:8])[0]
    header = json.loads(b[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = b[8 + n:]
    return meta, {k: data[v["data_offsets"][0]:v["data_offsets"][1]] for k, v in header.items()}

(meta_a, a), (meta_b, b) = read(sys.argv[1]), read(sys.argv[2])
differ, worst = [], 0.0
for name in sorted(set(a) | set(b)):
    if a.get(name) != b.get(name):
        differ.append(name)
        if name in a and name in b and len(a[name]) == len(b[name]):
            va = struct.unpack("<%df" % (len(a[name]) // 4), a[name])
            vb = struct.unpack("<%df" % (len(b[name]) // 4), b[name])
            worst = max(worst, max(abs(x - y) for x, y in zip(va, vb)))
values = sum(len(t) // 4 for t in a.values())
print("last.safetensors: %d tensors, %d values; %d tensor(s) differ (max |difference| %g); metadata %s"
      % (len(a), values, len(differ), worst, "equal" if meta_a == meta_b else "DIFFERS"))
sys.exit(1 if differ or meta_a != meta_b else 0)
EOF
if ((status == 0)); then echo "kill_resume: identical"; else echo "kill_resume: DIFFERENT"; fi
exit $status
