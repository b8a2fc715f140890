"""Decoding videos in tests: MP4/GIF through the ffmpeg imageio-ffmpeg ships, PNG frame folders through imageio."""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from pipeline.errors import UserError
from pipeline.video import VideoError, ffmpeg_exe, stderr_tail

_FRAME_GLOB = "frame_*.png"


def _to_gray(img: np.ndarray) -> np.ndarray:
    if img.ndim == 2:
        return img
    rgb = img[..., :3].astype(np.float64)
    return np.round(rgb @ np.array([0.299, 0.587, 0.114])).clip(0, 255).astype(np.uint8)  # BT.601 luma


def read_video(path) -> np.ndarray:
    """Decode a video file (MP4, GIF) or a PNG frame directory into gray frames [N, H, W] uint8."""
    path = Path(path)
    if path.is_dir():
        import imageio.v3 as iio

        files = sorted(path.glob(_FRAME_GLOB))
        if not files:
            raise UserError(f"{path} holds no {_FRAME_GLOB} files")
        return np.stack([_to_gray(np.asarray(iio.imread(f))) for f in files])
    if not path.is_file():
        raise UserError(f"video {path} does not exist")
    # Decode to a stream of PGM images: each carries its own size, so there is no
    # stderr header to parse (and no leaked pipes, as imageio_ffmpeg.read_frames
    # leaves when ffmpeg has already exited). passthrough: no duplicated frames.
    cmd = [
        ffmpeg_exe(), "-hide_banner", "-nostats", "-loglevel", "error", "-i", str(path),
        "-fps_mode", "passthrough", "-pix_fmt", "gray", "-c:v", "pgm", "-f", "image2pipe", "pipe:1",
    ]
    res = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True)
    if res.returncode != 0:
        raise VideoError(f"ffmpeg cannot decode {path}; its last lines:\n" + stderr_tail(res.stderr.decode("utf-8", "replace")))
    return _parse_pgm_stream(res.stdout, path)


def _parse_pgm_stream(data: bytes, path: Path) -> np.ndarray:
    """Concatenated binary PGM images ("P5 <w> <h> 255" + w*h bytes each) -> [N, H, W] uint8."""
    frames, pos = [], 0
    view = memoryview(data)
    while pos < len(data):
        fields = []
        while len(fields) < 4:  # magic, width, height, maxval, separated by whitespace
            while data[pos : pos + 1].isspace():
                pos += 1
            end = pos
            while end < len(data) and not data[end : end + 1].isspace():
                end += 1
            fields.append(data[pos:end])
            pos = end
        pos += 1  # the single whitespace byte before the pixels
        if fields[0] != b"P5" or fields[3] != b"255":
            raise VideoError(f"unexpected frame data decoding {path}")
        width, height = int(fields[1]), int(fields[2])
        frames.append(np.frombuffer(view[pos : pos + width * height], dtype=np.uint8).reshape(height, width))
        pos += width * height
    if not frames:
        raise VideoError(f"{path} holds no video frames")
    return np.stack(frames)


def read_video_rgb(path, width: int, height: int) -> np.ndarray:
    """Decode a colour video file (MP4, GIF) into RGB frames [N, H, W, 3] uint8 (ffmpeg's conversion from YUV,
    honouring the stream's colour tags)."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostats", "-loglevel", "error", "-i", str(path), "-fps_mode", "passthrough",
           "-pix_fmt", "rgb24", "-f", "rawvideo", "pipe:1"]
    res = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True)
    if res.returncode != 0:
        raise VideoError(f"ffmpeg cannot decode {path}; its last lines:\n" + stderr_tail(res.stderr.decode("utf-8", "replace")))
    return np.frombuffer(res.stdout, np.uint8).reshape(-1, height, width, 3)
