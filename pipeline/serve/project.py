"""The page's own digits: a drawing (the canvas) or an uploaded picture, projected live into the checkpoint shown
(pipeline.project.fit with the live settings below), answered with its latent, a preview render, what the
evaluation classifier reads in it and any warnings. The page adds the latent to its keyframe strip."""
from __future__ import annotations

import base64
import io
import time

import numpy as np

from pipeline.errors import UserError

MAX_BYTES = 4 * 1024 * 1024   # a canvas PNG is a few kB; a phone photo a few MB
LIVE_STEPS = 30               # fewer Adam steps than `cppn-video project` (60) and one start, for an answer in
LIVE_STARTS = 1               # about a second on 2 cores (docs/PERFORMANCE.md, "Your own digits")
CONFIDENT = 0.5               # as pipeline.project.job: below this the render is not read as a digit
_NETS: dict = {}


def upload_bytes(raw: bytes | None = None, data_url: str | None = None) -> bytes:
    """The image's bytes from a raw body or a data: URL (data:image/png;base64,...), size-bounded."""
    if data_url is not None:
        if not isinstance(data_url, str) or not data_url.startswith("data:image/") or ";base64," not in data_url:
            raise UserError("png: give a data URL of an image (data:image/png;base64,...)", key="png")
        if len(data_url) > MAX_BYTES * 4 // 3 + 100:
            raise UserError(f"the image is over {MAX_BYTES // 2**20} MB; give a smaller picture", key="png")
        try:
            raw = base64.b64decode(data_url.split(",", 1)[1], validate=True)
        except ValueError:
            raise UserError("png: the data URL is not valid base64", key="png") from None
    if not raw:
        raise UserError("the image is empty; draw a digit or choose a picture", key="png")
    if len(raw) > MAX_BYTES:
        raise UserError(f"the image is {len(raw) / 2**20:.1f} MB, over {MAX_BYTES // 2**20} MB; give a smaller "
                        f"picture", key="png")
    return raw


def _nets():
    if not _NETS:
        from pipeline.evaluate import load_digit_cnn
        from pipeline.project.fit import load_feature_cnn

        _NETS["features"] = load_feature_cnn()
        _NETS["judge"] = load_digit_cnn().model
    return _NETS["features"], _NETS["judge"]


def _png_url(image: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image, mode="L").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def warm_up(ws, cid) -> dict:
    """Project nothing, once, so the first drawing does not pay the fit's one-time set-up (autograd and oneDNN
    for its shapes, the checkpoint's candidate renders: 1.5-3.5 s on 2 cores); the page asks when a pen first
    touches the canvas, while the digit is being drawn."""
    from pipeline.project.fit import project_images

    ck = ws.checkpoint(cid)
    features, _ = _nets()
    t0 = time.perf_counter()
    with ws.render_lock:
        project_images(ck, np.zeros((1, 26, 26), np.float32), features=features, steps=2, starts=LIVE_STARTS)
    return {"ckpt": cid, "warm": True, "seconds": round(time.perf_counter() - t0, 3)}


def project_upload(ws, cid, data: bytes, size: int = 128, invert: bool = False, name: str = "the drawing") -> dict:
    """One picture's bytes -> {z, png (the preview at `size`), read, confidence, warnings, sha256, steps, starts,
    seconds}; UserError for a picture that cannot be read, before any projecting."""
    from pipeline.digit_classifier import classify
    from pipeline.project.fit import project_images
    from pipeline.project.images import digit_image_of

    read = digit_image_of(data, name)
    ck = ws.checkpoint(cid)
    features, judge = _nets()
    t0 = time.perf_counter()
    with ws.render_lock:  # the generator is shared with the previews
        pr = project_images(ck, read.image[None], features=features, steps=LIVE_STEPS, starts=LIVE_STARTS)
    seconds = time.perf_counter() - t0
    probs = classify(judge, pr.renders).numpy()[0]
    cls, conf = int(probs.argmax()), float(probs.max())
    warnings = []
    if read.blank:
        warnings.append("the picture is blank (nothing stands out from its background); draw a digit")
    elif conf < CONFIDENT:
        warnings.append(f"the render is not read as a digit (best guess {cls} at {conf:.0%}); draw it larger "
                        f"or bolder")
    preview = ws.render(cid, pr.latents, size, invert)[0]
    return {"ckpt": cid, "z": [float(v) for v in pr.latents[0]], "png": _png_url(preview), "read": cls,
            "confidence": round(conf, 4), "warnings": warnings, "sha256": read.sha256, "inverted": read.inverted,
            "steps": LIVE_STEPS, "starts": LIVE_STARTS, "seconds": round(seconds, 3)}
