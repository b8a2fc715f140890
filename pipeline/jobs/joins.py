"""A video cut into contiguous frame ranges, each its own MP4 encode, and the encodes joined without re-encoding:
what segment workers (jobs.segments) and several encoders per renderer (jobs.encoders) share."""
from __future__ import annotations

import subprocess
from pathlib import Path

from pipeline.atomic import temp_sibling
from pipeline.video import VideoError, ffmpeg_exe, stderr_tail


def segment_bounds(frames: int, workers: int) -> list[tuple[int, int]]:
    """Split frames 0..frames-1 into `workers` contiguous [start, stop) ranges, sizes differing by at most 1."""
    n = max(1, min(int(workers), int(frames)))
    edges = [frames * i // n for i in range(n + 1)]
    return list(zip(edges[:-1], edges[1:]))


def _concat_line(path: Path) -> str:
    # The concat demuxer's list syntax: single-quoted, a quote written as '\''.
    return "file '" + str(path.absolute()).replace("'", "'\\''") + "'\n"


def join_segments(parts: list[Path], dest: Path) -> None:
    """Join MP4 segments into `dest` with ffmpeg's concat demuxer, copying the streams (no re-encoding).

    Each segment is its own x264 encode, so each starts with a keyframe (IDR) and the copied streams
    decode on their own. `dest` is written directly: callers pass a temp name and publish it.
    """
    listing = temp_sibling(dest, "concat.txt")
    listing.write_text("".join(_concat_line(p) for p in parts), encoding="utf-8")
    try:
        cmd = [ffmpeg_exe(), "-hide_banner", "-nostats", "-loglevel", "error", "-y",
               "-f", "concat", "-safe", "0", "-i", str(listing),
               "-c", "copy", "-movflags", "+faststart", "-f", "mp4", str(dest)]
        res = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             process_group=0)
        if res.returncode != 0:
            raise VideoError(f"ffmpeg could not join {len(parts)} segments into {dest.name} "
                             f"(exit code {res.returncode}); its last lines:\n"
                             + stderr_tail(res.stderr.decode("utf-8", "replace")))
    finally:
        listing.unlink(missing_ok=True)
