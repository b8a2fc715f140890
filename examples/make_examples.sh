#!/usr/bin/env bash
# Regenerate the files in examples/ from the bundled checkpoints (prev, e6, e24, w4).
set -euo pipefail
cd "$(dirname "$0")"
# the same random latent in every checkpoint, framed alike (--scale 8: the automatic framing would give each its own)
for ck in prev e6 e24 w4; do
  cppn-video still --ckpt "$ck" --size 1080 --seed 3 --scale 8 -o "still-$ck.png"
  cppn-video still --ckpt "$ck" --size 1080 --seed 3 --scale 8 --invert -o "still-$ck-inverted.png"
done
cppn-video still --ckpt e24 --size 3240 --seed 3 --scale 8 -o still-e24-3240.png
# The comparison as the article's videos run: through encodings of real digits (each model its own),
# linearly, 30 frames per transition.
cppn-video compare prev e6 e24 w4 --labels "previous,6 epochs,24 epochs,width 4" --panel-size 360 \
  --digits 1,4,6,9,4,5,6,2 --interp lerp --ease linear --frames 211 --crf 23 -o compare.mp4 --quiet
cppn-video walk --ckpt e24 --classes 0-9,0 --ease linear --frames 200 --size 360 --crf 23 -o classes-e24.mp4 --quiet
# The article's kind of video: through encodings of real digits, linearly, 30 frames per transition.
cppn-video walk --ckpt e24 --digits 8,6,4,2,0,1,3,5,7 --interp lerp --ease linear --frames 241 --size 360 --invert --crf 23 \
  -o digits-e24.mp4 --quiet
cppn-video still --ckpt e24 --digit 8 --size 1080 --invert -o still-e24-digit8.png
# Scenes: a 16:9 frame in colour, timed in seconds with holds, evenly paced (the default), looped.
cppn-video walk --ckpt e24 --digits 3,8,5,2,9,0,6 --interp lerp --size 1280x720 --palette magma --fps 24 \
  --duration 10s --hold 0.5s --loop --crf 23 -o wide-magma-e24.mp4 --quiet
cppn-video still --ckpt e24 --digit 8 --size 1920x1080 --palette magma -o still-e24-wide-magma.png
# The camera: zooming into the facet inside the lower loop of an 8 (two of e24's stored 8s), drifting onto it and
# turning a quarter; every frame is the CPPN evaluated afresh at its zoom, no image is scaled.
cppn-video walk --ckpt e24 --digits 8,8 --interp lerp --size 360 --fps 24 --duration 6s --invert --crf 23 \
  --zoom "0s=1 smoothstep, 6s=24" --pan "0s=(0,0), 3s=(-2.12,4.32)" --rotate 0:90 -o zoom-e24.mp4 --quiet
# Music: a synthesised 8 s track at 120 BPM (a kick on every beat over a chord, quieter for the first 4 s); the
# keyframes land on every second beat (the tempo is found, not given), each kick pulses the zoom and the louder
# half walks faster between keyframes.
FFMPEG=$(python -c "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())")
"$FFMPEG" -v error -y -f lavfi -i "aevalsrc='(0.5+0.5*gte(t,4))*(0.7*sin(2*PI*55*t)*exp(-30*mod(t,0.5))+0.06*sin(2*PI*220*t)+0.06*sin(2*PI*277.2*t)+0.06*sin(2*PI*329.6*t))':s=44100:d=8" \
  beat-120.wav
cppn-video walk --ckpt e24 --size 360 --invert --audio beat-120.wav --sync beats --beats-per-keyframe 2 \
  --react zoom=0.15,speed=0.5 --crf 23 -o music-e24.mp4 --quiet
