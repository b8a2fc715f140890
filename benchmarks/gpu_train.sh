#!/usr/bin/env bash
# On a CUDA machine (no network needed): the article's trainings on the GPU, then benchmarks/gpu_check.sh and
# `cppn-video bench train --device cuda`, all in one call, each part under its own time limit.
#
#   OUT=dir bash benchmarks/gpu_train.sh CARRY_DIR [TRAIN_SECONDS] [CHECK_SECONDS]
#
# CARRY_DIR holds mnist/ (the four MNIST .gz files) and runs/NAME/ for the runs to continue (state.pt,
# metrics.jsonl, e*.pt, as `train` wrote them on any device); a run without a state.pt there starts fresh.
# Runs: resnet-w4 then resnet-w6 in one queue, prev in another, side by side on the one GPU. At
# TRAIN_SECONDS (default 330) every training still going gets SIGTERM, which saves its state.pt: it resumes
# anywhere with `cppn-video train --out DIR --resume`. What comes back in OUT: log.txt, gpu_check.jsonl,
# bench_train.json, runs.tgz (each run's e*.pt, metrics.jsonl, config.json) and NAME.state.pt per run.
set -uo pipefail
cd "$(dirname "$0")/.."
CARRY=$(realpath "$1"); BUDGET=${2:-330}; CHECK=${3:-140}
OUT=$(realpath -m "${OUT:-gpu_train_out}"); mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
command -v python >/dev/null || { mkdir -p /tmp/py-shim && ln -sf "$(command -v python3)" /tmp/py-shim/python && export PATH=/tmp/py-shim:$PATH; }
RUNS=/tmp/cppn-runs
rm -rf "$RUNS"; mkdir -p "$RUNS"
[[ -d $CARRY/runs ]] && cp -r "$CARRY/runs/." "$RUNS/"
rm -f "$RUNS"/*/.cppn-video.lock
DATA=$CARRY/mnist

echo "== $(date -u +%FT%TZ) machine"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv
python -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, torch.cuda.get_device_name(0))"
nproc

T0=$SECONDS
train() {  # name, options for a fresh run
    local name=$1; shift
    local dir=$RUNS/$name left=$(( BUDGET - (SECONDS - T0) ))
    if (( left < 20 )); then echo "$(date +%T) $name: not started, ${left}s left"; return; fi
    local args=("$@")
    [[ -f $dir/state.pt ]] && args=(--resume)
    local before; before=$( [[ -f $dir/metrics.jsonl ]] && wc -l < "$dir/metrics.jsonl" || echo 0 )
    echo "$(date +%T) $name: start (${args[*]}), limit ${left}s, metrics lines before: $before"
    timeout -k 60 -s TERM "$left" python -m pipeline train --out "$dir" --data "$DATA" --device "${DEVICE:-cuda}" --quiet \
        --save-every 2 "${args[@]}"
    local rc=$?
    echo "$(date +%T) $name: exit $rc after $(( SECONDS - T0 ))s"
}
( train resnet-w4 --model resnet --width 4 --epochs 24 --save-at 6,24 --batch-size 2000 --precision bf16
  train resnet-w6 --model resnet --width 6 --epochs 24 --save-at 3,5,6,12,24 --batch-size 2000 --precision bf16 ) &
queue1=$!
( train prev --model prev --epochs 24 --save-at 6,12,24 --batch-size 500 --precision bf16 ) &
queue2=$!
wait "$queue1" "$queue2"  # by pid: a bare wait would also wait for the log's tee

echo "== $(date -u +%FT%TZ) where the runs stand"
python - "$RUNS" <<'EOF'
import json, statistics, sys
from pathlib import Path
from pipeline.checkpoint import read_checkpoint_dict
for run in sorted(Path(sys.argv[1]).iterdir()):
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()] if (run / "metrics.jsonl").exists() else []
    state = read_checkpoint_dict(run / "state.pt")[0] if (run / "state.pt").exists() else None
    pos = state["position"] if state else None
    gpu = rows[-200:]
    print(json.dumps({"run": run.name, "position": pos, "metrics_rows": len(rows),
                      "checkpoints": sorted(p.name for p in run.glob("e*.pt")),
                      "median_s_per_batch_last_200": round(statistics.median(r["time"] for r in gpu), 4) if gpu else None,
                      "last": {k: rows[-1].get(k) for k in ("epoch", "batch", "g_acc", "real_acc", "fake_acc", "kl", "vae_loss", "steps")} if rows else None}))
EOF

echo "== $(date -u +%FT%TZ) gpu_check (limit ${CHECK}s)"
OUT="$OUT" GPU_CHECK_SECONDS=$CHECK bash benchmarks/gpu_check.sh | tail -n 40

echo "== $(date -u +%FT%TZ) bench train --device cuda"
timeout -k 10 60 python -m pipeline bench train --device "${DEVICE:-cuda}" --repeats 5 --json > "$OUT/bench_train.json"
echo "bench train exit $?"; tail -c 3000 "$OUT/bench_train.json"

(cd "$RUNS" && tar czf "$OUT/runs.tgz" --exclude=state.pt --exclude=.cppn-video.lock .)
for dir in "$RUNS"/*/; do
    name=$(basename "$dir"); [[ -f $dir/state.pt ]] && cp "$dir/state.pt" "$OUT/$name.state.pt"
done
ls -la "$OUT"
echo "== $(date -u +%FT%TZ) done after $(( SECONDS - T0 ))s"
