"""What a finished video file holds, read from its container alone (no decoding, no ffmpeg): an MP4's video
track (codec, frame size, sample count from its sample table) or a GIF's screen size and image count.

The writer checks these against what it sent before publishing, so an encoder that exits 0 after writing
junk, a truncated file or one with the wrong number of frames is never published as a finished video. Reading
an MP4 costs a few reads of its index (faststart puts it at the front); a GIF is walked block by block."""
from __future__ import annotations

import mmap
import struct
from pathlib import Path

_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}


class Malformed(ValueError):
    """The file is not the container it should be; the message says where it breaks."""


def _boxes(buf, start: int, end: int):
    """(type, payload start, payload end) of each ISO-BMFF box in buf[start:end]."""
    pos = start
    while pos < end:
        if end - pos < 8:
            raise Malformed(f"a box header is cut off at byte {pos}")
        size, kind = struct.unpack_from(">I4s", buf, pos)
        head = 8
        if size == 1:
            if end - pos < 16:
                raise Malformed(f"a box header is cut off at byte {pos}")
            size = struct.unpack_from(">Q", buf, pos + 8)[0]
            head = 16
        elif size == 0:
            size = end - pos
        if size < head or pos + size > end:
            raise Malformed(f"box {kind!r} at byte {pos} claims {size} bytes, the file has {end - pos}")
        yield kind, pos + head, pos + size
        pos += size


def _tracks(buf, start: int, end: int, path=()):
    """Every box below moov, with its path of container types."""
    for kind, a, b in _boxes(buf, start, end):
        here = path + (kind,)
        yield here, a, b
        if kind in _CONTAINERS:
            yield from _tracks(buf, a, b, here)


def mp4_video(path) -> dict:
    """{"codec", "width", "height", "frames"} of the MP4's video tracks (a list of one per track in "tracks");
    raises Malformed when the file is not an MP4 with a readable sample table."""
    with open(path, "rb") as fh:
        size = fh.seek(0, 2)
        if size < 16:
            raise Malformed(f"{size} bytes is no MP4")
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            top = list(_boxes(buf, 0, size))
            if top[0][0] != b"ftyp":
                raise Malformed("it does not start with an ftyp box")
            moov = [(a, b) for kind, a, b in top if kind == b"moov"]
            if len(moov) != 1:
                raise Malformed(f"it has {len(moov)} moov boxes (its index), not 1")
            tracks, current = [], None
            for where, a, b in _tracks(buf, *moov[0], (b"moov",)):
                kind = where[-1]
                if kind == b"trak":
                    current = {"handler": None, "codec": None, "width": None, "height": None, "frames": None}
                    tracks.append(current)
                elif current is None:
                    continue
                elif kind == b"hdlr" and b - a >= 12:
                    current["handler"] = bytes(buf[a + 8:a + 12])
                elif kind == b"stsd" and b - a >= 8 + 8 + 28:
                    entry = a + 8
                    current["codec"] = bytes(buf[entry + 4:entry + 8]).decode("latin-1")
                    current["width"], current["height"] = struct.unpack_from(">HH", buf, entry + 8 + 24)
                elif kind == b"stsz" and b - a >= 12:
                    current["frames"] = struct.unpack_from(">I", buf, a + 8)[0]
    video = [t for t in tracks if t["handler"] == b"vide"]
    if len(video) != 1:
        raise Malformed(f"it has {len(video)} video tracks, not 1")
    return {k: v for k, v in video[0].items() if k != "handler"} | {"tracks": len(tracks)}


def gif_video(path) -> dict:
    """{"width", "height", "frames"} of a GIF (its logical screen and image count); raises Malformed when the
    blocks do not parse up to the trailer."""
    with open(path, "rb") as fh:
        size = fh.seek(0, 2)
        if size < 14:
            raise Malformed(f"{size} bytes is no GIF")
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            if bytes(buf[:6]) not in (b"GIF87a", b"GIF89a"):
                raise Malformed("it does not start with a GIF signature")
            width, height, flags = struct.unpack_from("<HHB", buf, 6)
            pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
            frames = 0

            def sub_blocks(pos: int) -> int:
                while True:
                    if pos >= size:
                        raise Malformed("it ends inside a block")
                    n = buf[pos]
                    pos += 1 + n
                    if n == 0:
                        return pos

            while True:
                if pos >= size:
                    raise Malformed("it ends without its trailer (truncated)")
                tag = buf[pos]
                if tag == 0x3B:
                    break
                if tag == 0x21:
                    pos = sub_blocks(pos + 2)
                elif tag == 0x2C:
                    if pos + 10 > size:
                        raise Malformed("an image descriptor is cut off")
                    local = buf[pos + 9]
                    pos += 10 + (3 << ((local & 7) + 1) if local & 0x80 else 0)
                    pos = sub_blocks(pos + 1)  # after the LZW minimum code size
                    frames += 1
                else:
                    raise Malformed(f"unknown block 0x{tag:02x} at byte {pos}")
    return {"width": width, "height": height, "frames": frames}


def output_problem(path, fmt: str, width: int, height: int, frames: int) -> str:
    """Why the file at `path` is not the `fmt` video of `frames` frames of width x height that was written
    ("" when it is). PNG folders are counted; MP4 and GIF files are read as above."""
    path = Path(path)
    try:
        if fmt == "png":
            found = sum(1 for p in path.iterdir() if p.name.endswith(".png"))
            return "" if found == frames else f"it holds {found} PNG frames, {frames} were written"
        got = mp4_video(path) if fmt == "mp4" else gif_video(path)
    except Malformed as e:
        return f"it is not a valid {fmt.upper()} file ({e})"
    except (OSError, ValueError, struct.error) as e:
        return f"it cannot be read back ({e})"
    if fmt == "mp4" and got["codec"] not in ("avc1", "avc3"):
        return f"its video track is {got['codec']!r}, not H.264"
    if (got["width"], got["height"]) != (width, height):
        return f"its frames are {got['width']}x{got['height']}, {width}x{height} were written"
    if got["frames"] != frames:
        return f"it holds {got['frames']} frames, {frames} were written"
    return ""
