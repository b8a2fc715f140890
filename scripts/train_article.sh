#!/usr/bin/env bash
# The article's trainings at full scale (resnet width 6 with e6/e24, width 4, prev) on all of MNIST, one after another (best throughput on a
# small CPU box), each resumed from its state.pt when it already exists. Safe to rerun after any stop.
#
#   nice -n 10 scripts/train_article.sh [DATA_DIR] [RUNS_DIR] [WHICH...]
#
# DATA_DIR defaults to ../shared/data/mnist, RUNS_DIR to ~/.cache/cppn-video/runs; WHICH picks runs
# among resnet-w6, resnet-w4, prev (default: all three, in that order). PRECISION (default bf16: the
# classifier under bfloat16 autocast, 2-3x faster on CPUs with native bf16) may be float32.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=$(realpath "${1:-../shared/data/mnist}")
RUNS=${2:-$HOME/.cache/cppn-video/runs}
if (( $# > 2 )); then WHICH=("${@:3}"); else WHICH=(resnet-w6 resnet-w4 prev); fi
PRECISION=${PRECISION:-bf16}
mkdir -p "$RUNS"

run() {  # name, train args...
    local name=$1; shift
    local out=$RUNS/$name
    if [[ -f $out/state.pt ]]; then
        cppn-video train --out "$out" --resume --quiet --precision "$PRECISION"
    else
        cppn-video train --out "$out" --data "$DATA" --quiet --precision "$PRECISION" "$@"
    fi
}

for name in "${WHICH[@]}"; do
    case $name in
        resnet-w6) run "$name" --model resnet --width 6 --epochs 24 --save-at 3,5,6,12,24 --batch-size 2000 ;;
        resnet-w4) run "$name" --model resnet --width 4 --epochs 24 --save-at 6,24 --batch-size 2000 ;;
        prev)      run "$name" --model prev --epochs 24 --save-at 6,12,24 --batch-size 500 ;;
        *) echo "unknown run $name (resnet-w6, prev, resnet-w4)" >&2; exit 2 ;;
    esac
done
