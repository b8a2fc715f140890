#!/usr/bin/env bash
# Render-box check (issue 26) on one GPU machine with no network, in one call that fits a 15-minute window:
# GPU tests, render fps, end-to-end MP4 fps of a 600-frame 1080 walk at presets medium/veryfast and 1/4/8
# encoders, the compare video, training s/batch (batch-size scaling row, profiler table). Every step appends
# JSON lines to $OUT/renderbox.jsonl as it finishes (benchmarks/renderbox_check.py).
#
#   OUT=dir bash benchmarks/renderbox_check.sh              # on the GPU machine
#   RENDERBOX_DRY_RUN=1 OUT=dir bash benchmarks/renderbox_check.sh   # every step at toy size on the CPU
#
# The GPU machine's Python lacks imageio-ffmpeg (the encoder) and has no network, so its wheel travels in the
# tree: fill the git-ignored benchmarks/wheels/ once on the dev machine with
#   pip download imageio-ffmpeg==0.6.0 --no-deps -d benchmarks/wheels      (29.5 MB; 0.8.1 is 64.9 MB, too big)
# and carry that folder. It is installed with pip (unzipping by hand would lose ffmpeg's exec bit).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT=$(realpath -m "${OUT:-renderbox_out}"); mkdir -p "$OUT"
command -v python >/dev/null || { mkdir -p /tmp/py-shim && ln -sf "$(command -v python3)" /tmp/py-shim/python && export PATH=/tmp/py-shim:$PATH; }
python -c "import torch" || { echo "renderbox_check: torch is not importable here; install the project's environment first" >&2; exit 2; }
if ! python -c "import imageio_ffmpeg; imageio_ffmpeg.get_ffmpeg_exe()" 2>/dev/null; then
    wheel=$(ls benchmarks/wheels/imageio_ffmpeg-0.6.0-*.whl 2>/dev/null | head -1)
    [[ -n $wheel ]] || { echo "renderbox_check: imageio-ffmpeg is missing and benchmarks/wheels/ holds no imageio_ffmpeg-0.6.0 wheel; run: pip download imageio-ffmpeg==0.6.0 --no-deps -d benchmarks/wheels (and carry benchmarks/wheels)" >&2; exit 2; }
    python -m pip install --quiet --no-index --no-deps "$wheel" >&2 \
        || python -m pip install --quiet --user --no-index --no-deps "$wheel" >&2 \
        || { echo "renderbox_check: pip could not install $wheel" >&2; exit 2; }
fi
exec timeout -k 20 "${RENDERBOX_SECONDS:-780}" python benchmarks/renderbox_check.py --out "$OUT" "$@"
