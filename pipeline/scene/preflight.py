"""The one check every render job makes before anything expensive starts: frame size, frame count, what the
output format can hold, and the memory the render will need.

walk, still (and --seeds grids), compare, replay, batch presets (at load, for every job before the first
runs), the Ray farm (the same preset load) and serve's renders all reach it through their settings'
`validate` or the job's own geometry, and it answers in microseconds: no checkpoint read, no ffmpeg run.
Each refusal is one UserError line naming the limit and a size that fits. No torch here.
"""
from __future__ import annotations

import os

from pipeline.errors import UserError
from pipeline.latents import MAX_SEEDS

MAX_SIDE = 16384          # a frame side beyond this is almost certainly a typo
MAX_FRAMES = 1_000_000    # a walk's latent path is held in memory ([frames, z] float64): this caps it near 0.3 GB
# H.264's largest frame (level 6.2): 139,264 macroblocks of 16x16 pixels, at most 8192 pixels on a side.
# libx264 takes more, but at 16000x16000 ffmpeg spent over 30 s and 4 GB on a two-frame test encode.
MP4_MAX_SIDE = 8192
MP4_MAX_PIXELS = 139_264 * 256
# Bytes of memory per output pixel of a frame being rendered (the coordinate projection the CPU kernel keeps,
# 4 bytes x its width of 6, the float and uint8 frame, the writer's queue) and the resident baseline (Python,
# torch, a checkpoint); measured peaks of a 3240 still and a 1080 walk stay under this model.
BYTES_PER_PIXEL = 40
BASELINE_BYTES = 600 * 2**20


# As many keyframes as --seeds may name, from any source: each is held in memory with the walk's path.
MAX_KEYFRAMES = MAX_SEEDS
PATH_BYTES_PER_FRAME = 2 * 8 * 64  # a walk's latent path: [frames, z] float64 and one copy, z up to 64 of it


def _proc_value(path: str, key: str) -> int | None:
    """A `Key:   N kB` line of a /proc file, in bytes."""
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _limit_left() -> int | None:
    """What this process may still map under its own limits: an address-space rlimit (ulimit -v) less what it
    has mapped, and a cgroup v2 memory.max less its memory.current; None where neither is set."""
    left = []
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        mapped = _proc_value("/proc/self/status", "VmSize")
        if soft != resource.RLIM_INFINITY and mapped is not None:
            left.append(max(0, soft - mapped))
    except (ImportError, OSError, ValueError):
        pass
    try:
        with open("/sys/fs/cgroup/memory.max") as fh:
            cap = fh.read().strip()
        with open("/sys/fs/cgroup/memory.current") as fh:
            used = int(fh.read().strip())
        if cap != "max":
            left.append(max(0, int(cap) - used))
    except (OSError, ValueError):
        pass
    return min(left) if left else None


def available_memory() -> int | None:
    """Bytes of memory this process can still use: the machine's MemAvailable, or less where an address-space
    limit or a cgroup caps this process; None where none of these can be read."""
    have = _proc_value("/proc/meminfo", "MemAvailable")
    if have is None:
        try:
            have = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            have = None
    cap = _limit_left()
    if cap is not None:
        have = cap if have is None else min(have, cap)
    return have


def memory_needed(width: int, height: int, panels: int = 1, frames: int = 1) -> int:
    """Estimated peak bytes of rendering `frames` frames of width x height made of `panels` panels rendered alike
    (the frames count through the latent path held in memory)."""
    return (BASELINE_BYTES + BYTES_PER_PIXEL * width * height + (panels - 1) * 2**20 * 64
            + PATH_BYTES_PER_FRAME * frames)


def _gb(n: int) -> str:
    return f"{n / 2**30:.1f} GB"


def check_frame(width, height, what: str = "--size", key: str = "size") -> tuple[int, int]:
    """Both sides integers in 1..MAX_SIDE; returns them as ints."""
    for v in (width, height):
        if isinstance(v, bool) or not isinstance(v, int) and not hasattr(v, "__index__"):
            raise UserError(f"{what} must be whole pixels, got {width!r}x{height!r}", key=key)
    width, height = int(width), int(height)
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        from pipeline.scene.canvas import canvas_text

        fit = canvas_text(*(min(max(v, 1), MAX_SIDE) for v in (width, height)))
        raise UserError(f"{what} {width}x{height} is outside 1..{MAX_SIDE} pixels a side; give a size such as {fit}",
                        key=key)
    return width, height


def check_format(width: int, height: int, fmt: str | None, what: str = "--size", key: str = "size") -> None:
    """What the output format can hold: H.264 (MP4) needs even sides and at most its largest frame."""
    if fmt != "mp4":
        return
    if width % 2 or height % 2:
        # yuv420p stores chroma at half resolution: odd sizes cannot be encoded. We refuse rather than pad,
        # so a request never silently changes size.
        even = f"{width + width % 2}" if width == height else f"{width + width % 2}x{height + height % 2}"
        raise UserError(f"width and height must be even for H.264 yuv420p, got {width}x{height}; use an even "
                        f"{what} such as {even}", key=key)
    if max(width, height) > MP4_MAX_SIDE or width * height > MP4_MAX_PIXELS:
        raise UserError(f"{what} {width}x{height} is larger than H.264 (MP4) frames go (at most {MP4_MAX_SIDE} px a "
                        f"side and {MP4_MAX_PIXELS:,} pixels, e.g. 8192x4320); give a smaller size, or write "
                        f"PNG frames (-o folder/)", key=key)


def check_frames(frames: int, key: str = "frames") -> None:
    if frames < 1:
        raise UserError(f"--frames must be at least 1, got {frames}", key=key)
    if frames > MAX_FRAMES:
        raise UserError(f"--frames {frames:,} is more than the {MAX_FRAMES:,} a video may have (about "
                        f"{MAX_FRAMES // (30 * 3600)} hours at 30 fps); render it in parts", key=key)


def check_keyframes(n: int, key: str = "keyframes") -> None:
    """A walk's keyframe count, from whichever source (--keyframes, --seeds, --digits, a keyframes file)."""
    if n > MAX_KEYFRAMES:
        raise UserError(f"{n:,} keyframes is more than the {MAX_KEYFRAMES:,} a walk may visit; give fewer", key=key)


def check_memory(width: int, height: int, panels: int = 1, what: str = "--size", key: str = "size",
                 frames: int = 1) -> None:
    need, have = memory_needed(width, height, panels, frames), available_memory()
    if have is not None and need > have:
        raise UserError(f"{what} {width}x{height} needs about {_gb(need)} of memory to render, but {_gb(have)} is "
                        f"available; give a smaller size or free memory", key=key)


def preflight(width, height, frames: int = 1, fmt: str | None = None, panels: int = 1, what: str = "--size",
              key: str = "size") -> tuple[int, int]:
    """Every check a render job makes before it starts, cheapest first; returns (width, height) as ints."""
    width, height = check_frame(width, height, what, key)
    check_frames(frames)
    check_format(width, height, fmt, what, key)
    check_memory(width, height, panels, what, key, frames)
    return width, height
