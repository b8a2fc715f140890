"""Any picture of a digit -> a 26x26 MNIST-style image: white strokes on black, size-normalised and centred
the way MNIST's digits were made.

MNIST (LeCun et al.): each digit's bounding box scaled to fit 20x20 keeping its aspect ratio (anti-aliased,
so edges are grey), placed in a 28x28 field with its centre of mass at the centre; the generators were
trained on 26x26 crops of those (pipeline.data). Dark-on-light pictures (a drawing, a photo of paper,
typeset text) are detected from their border and inverted.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import UserError

FIELD = 28          # MNIST's image side
BOX = 20            # the side a digit's bounding box is scaled to fit
CROP = 26           # the generators' training crop (the middle of the field)
INK = 0.2           # a pixel is stroke when its ink is at least this fraction of the image's strongest
MAX_PIXELS = 64_000_000  # a picture larger than this is refused before it is decoded (8000x8000)


@dataclass(frozen=True)
class DigitImage:
    path: str
    sha256: str          # of the file's bytes
    image: np.ndarray    # float32 [26, 26] in [0, 1], white on black
    inverted: bool       # it was dark on light
    blank: bool          # nothing on it stood out from its background


def read_digit_image(path: str | os.PathLike) -> DigitImage:
    """Read PNG/JPEG/... of any size and polarity; one UserError line for a missing, corrupt or non-image file."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise UserError(f"image {p} not found; check the path") from None
    except IsADirectoryError:
        raise UserError(f"image {p} is a folder, not an image file") from None
    except OSError as e:
        raise UserError(f"cannot read image {p} ({e.strerror or e})") from None
    return digit_image_of(data, p)


def digit_image_of(data: bytes, name: str | os.PathLike = "the image") -> DigitImage:
    """An image file's bytes (an upload, a drawing) read as read_digit_image reads a file; `name` names it in
    errors and in `path`."""
    p = Path(name)
    grey = _decode(data, p)
    ink, inverted = _as_ink(grey)
    image, blank = mnist_normalise(ink)
    return DigitImage(path=str(p), sha256=hashlib.sha256(data).hexdigest(), image=image, inverted=inverted,
                      blank=blank)


def _decode(data: bytes, p: Path) -> np.ndarray:
    """File bytes -> float64 [H, W] luminance in [0, 1] (alpha composited onto white)."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise UserError(f"image {p} is {w}x{h}, over {MAX_PIXELS:,} pixels; scale it down first")
            im.load()
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                rgba = np.asarray(im.convert("RGBA"), dtype=np.float64) / 255.0
                alpha = rgba[..., 3]
                lum = rgba[..., :3] @ np.array([0.299, 0.587, 0.114])
                return lum * alpha + (1.0 - alpha)  # transparent = paper
            grey = im.convert("F") if im.mode in ("I", "I;16", "F") else im.convert("L")
            arr = np.asarray(grey, dtype=np.float64)
            if im.mode in ("I", "I;16", "F"):
                top = arr.max()
                return arr / top if top > 0 else arr
            return arr / 255.0
    except UserError:
        raise
    except UnidentifiedImageError:
        raise UserError(f"{p} is not an image in a format this reads; give a PNG or JPEG of a digit") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{p} is not a readable image ({why}); give a PNG or JPEG of a digit") from None


def _as_ink(grey: np.ndarray) -> tuple[np.ndarray, bool]:
    """Luminance -> ink in [0, 1] (1 = stroke) and whether it was inverted. The background is the border's
    median: light paper means dark strokes."""
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    background = float(np.median(border))
    inverted = background > 0.5
    ink = (background - grey) if inverted else (grey - background)
    return np.clip(ink, 0.0, None), inverted


def mnist_normalise(ink: np.ndarray) -> tuple[np.ndarray, bool]:
    """Ink [H, W] (any size) -> (float32 [26, 26] white on black in [0, 1], blank). Blank: nothing stood out."""
    top = float(ink.max()) if ink.size else 0.0
    if top < 0.05:  # under 5% contrast against the background: no strokes
        return np.zeros((CROP, CROP), np.float32), True
    ink = ink / top
    rows, cols = np.nonzero(ink >= INK)
    ink = np.where(ink >= INK * 0.5, ink, 0.0)  # faint paper texture and noise off the strokes
    box = ink[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    h, w = box.shape
    f = BOX / max(h, w)
    nh, nw = max(1, round(h * f)), max(1, round(w * f))
    small = _resize(box, nh, nw)
    field = np.zeros((FIELD, FIELD))
    total = small.sum()
    cy = (small.sum(1) @ np.arange(nh)) / total
    cx = (small.sum(0) @ np.arange(nw)) / total
    top_, left = int(round(FIELD / 2 - cy)), int(round(FIELD / 2 - cx))  # MNIST: centre of mass at (14, 14)
    top_, left = min(max(top_, 0), FIELD - nh), min(max(left, 0), FIELD - nw)
    field[top_:top_ + nh, left:left + nw] = small
    off = (FIELD - CROP) // 2
    out = field[off:off + CROP, off:off + CROP]
    return np.clip(out / max(out.max(), 1e-12), 0.0, 1.0).astype(np.float32), False


def _resize(a: np.ndarray, h: int, w: int) -> np.ndarray:
    """Anti-aliased resize of a float image (Pillow's Lanczos on 32-bit float pixels)."""
    from PIL import Image

    return np.asarray(Image.fromarray(a.astype(np.float32), mode="F").resize((w, h), Image.LANCZOS),
                      dtype=np.float64).clip(0.0, None)
