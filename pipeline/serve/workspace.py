"""What the web app may touch: the checkpoints it was given (by id, never by path), the output folder, and a
cache of renderers for the live preview. No web framework here, so it is testable and reusable on its own."""
from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.atomic import temp_owner
from pipeline.checkpoint import Checkpoint, list_bundled, load_checkpoint, resolve_checkpoint
from pipeline.errors import UserError
from pipeline.jobs.settings import DEFAULT_CHECKPOINT
from pipeline.latents import seed_latents

PREVIEW_MAX = 1024       # live frames are for looking, not keeping: larger ones would stall every other request
WALK_PREVIEW_MAX = 256   # the keyframe strip's low-resolution walk preview, per side
WALK_PREVIEW_FRAMES = 240
THUMB_MAX = 256
MAX_KEYFRAMES = 1000
MAX_SEEDS = 256
RENDERERS_KEPT = 8       # (checkpoint, size, scale) renderers kept warm; a fused kernel per size is cheap
N_DIRECTIONS = 3         # sliders: the principal directions of the class latents
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class CheckpointChoice:
    id: str       # what a request names
    source: str   # a bundled name or the path given on the command line (what the CLI command reproduces)
    bundled: bool


class Workspace:
    """The checkpoints on offer (bundled names, then the paths given) and the output folder.

    ckpts: names or paths given on the command line (each is loaded now, so a bad one fails at start);
    out: the only folder outputs go to (created if needed).
    """

    def __init__(self, ckpts=(), out="serve-out"):
        self.out = Path(out).expanduser().resolve()
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot create --out {self.out} ({e.strerror or e}); choose a writable folder") from None
        if not self.out.is_dir():
            raise UserError(f"--out {self.out} is not a folder; choose a folder")
        self.choices: OrderedDict[str, CheckpointChoice] = OrderedDict()
        self._loaded: dict[str, Checkpoint] = {}
        for name in ckpts:
            path = resolve_checkpoint(name)
            bundled = str(name) in list_bundled()
            ck = load_checkpoint(path)  # a bad file fails now, with the library's one-line error
            cid = self._free_id(str(name) if bundled else Path(path).stem)
            self.choices[cid] = CheckpointChoice(cid, str(name) if bundled else str(Path(path).resolve()), bundled)
            self._loaded[cid] = ck
        for name in list_bundled():
            if name not in self.choices and not any(c.bundled and c.source == name for c in self.choices.values()):
                self.choices[name] = CheckpointChoice(name, name, True)
        if not self.choices:
            raise UserError("no checkpoints to serve: none are bundled and none were given; pass --ckpt FILE.pt")
        self._load_lock = threading.Lock()
        self._renderers: OrderedDict[tuple, object] = OrderedDict()
        self.render_lock = threading.Lock()  # one preview render at a time: they share the cores anyway

    def _free_id(self, base: str) -> str:
        cid, n = base, 2
        while cid in self.choices:
            cid, n = f"{base}-{n}", n + 1
        return cid

    @property
    def default_id(self) -> str:
        """The first checkpoint given, else the bundled default."""
        if self._loaded:
            return next(iter(self.choices))
        return DEFAULT_CHECKPOINT if DEFAULT_CHECKPOINT in self.choices else next(iter(self.choices))

    def opening(self) -> str:
        """Which checkpoint the page opens on and why, in one line (and what is wrong with it, if it renders
        blank: a collapsed run, pipeline.train.health's sign, on its 10 class latents at the training size)."""
        cid = self.default_id
        if self._loaded:
            why = "given with --ckpt" + (" (the first)" if len(self._loaded) > 1 else "")
        else:
            why = "the default" if cid == DEFAULT_CHECKPOINT else "the first bundled"
        note = collapse_note(self.checkpoint(cid))
        return f"opened {cid}: {why}" + (f"; it is collapsed ({note}): pick another in the page's list"
                                         if note else "")

    # ------------------------------------------------------------------ checkpoints

    def choice(self, cid) -> CheckpointChoice:
        if not isinstance(cid, str) or cid not in self.choices:
            raise UserError(f"unknown checkpoint {cid!r}; choose one of: {', '.join(self.choices)}", key="ckpt")
        return self.choices[cid]

    def checkpoint(self, cid) -> Checkpoint:
        choice = self.choice(cid)
        with self._load_lock:
            if choice.id not in self._loaded:
                self._loaded[choice.id] = load_checkpoint(choice.source)
            return self._loaded[choice.id]

    def checkpoint_info(self, cid) -> dict:
        """What the page needs to move around one checkpoint's latent space (all plain lists)."""
        ck = self.checkpoint(cid)
        classes = ck.class_latents.double().numpy()  # [10, Z]
        center = classes.mean(axis=0)
        # Principal directions of the class means: the axes along which the digits differ most.
        _, sv, vt = np.linalg.svd(classes - center, full_matrices=False)
        k = min(N_DIRECTIONS, vt.shape[0])
        spread = sv[:k] / np.sqrt(classes.shape[0])  # standard deviation of the class means along each
        return {"id": cid, "name": ck.name, "family": ck.family, "epoch": ck.epoch, "z_dim": ck.z_dim,
                "source": self.choices[cid].source, "class_latents": _rows(classes),
                "directions": _rows(vt[:k]), "spread": [float(s) for s in spread]}

    def listing(self) -> list[dict]:
        return [{"id": c.id, "bundled": c.bundled, "label": c.id if c.bundled else f"{c.id} ({c.source})"}
                for c in self.choices.values()]

    # ------------------------------------------------------------------ rendering

    def renderer(self, cid, size: int, scale: float = 8.0):
        from pipeline.render import Renderer

        key = (cid, size, scale)
        found = self._renderers.get(key)
        if found is None:
            found = Renderer(self.checkpoint(cid).generator, size, size, scale=scale)
            self._renderers[key] = found
            while len(self._renderers) > RENDERERS_KEPT:
                self._renderers.popitem(last=False)
        self._renderers.move_to_end(key)
        return found

    def render(self, cid, z: np.ndarray, size: int, invert: bool = False, scale: float = 8.0,
               camera=None) -> np.ndarray:
        """uint8 frames [N, size, size] of latents z [N, Z] (one preview render at a time), under each frame's
        camera (a CameraTrack of N frames) when given."""
        with self.render_lock:
            return self.renderer(cid, size, scale).render(z, invert=invert, camera=camera)

    def seed_latents(self, cid, seeds: list[int]) -> np.ndarray:
        return seed_latents(seeds, self.checkpoint(cid).z_dim)

    # ------------------------------------------------------------------ files

    def output_file(self, name) -> Path:
        """A finished file in the output folder by its bare name; anything else (a path, a temp file, a
        folder, a link out of it) is a UserError, so no request can reach a file outside --out."""
        path = self.out / check_file_name(name)
        if temp_owner(path.name) is not None or not path.is_file() or path.resolve().parent != self.out:
            raise NotFound(f"no file {name!r} in the output folder")
        return path


class NotFound(UserError):
    """A request named something that is not there (HTTP 404)."""


def collapse_note(ck: Checkpoint) -> str:
    """Why a checkpoint draws nothing ("" when it draws): its class latents rendered at 26x26 are as blank as a
    collapsed training run's fakes (pipeline.train.health)."""
    import torch

    from pipeline.render import Renderer
    from pipeline.train.health import BLANK_FRACTION, fake_stats

    with Renderer(ck.generator, 26, 26, scale=8.0, path="auto", device="cpu") as r, torch.no_grad():
        stats = fake_stats(r.render_float(ck.class_latents.float()))
    if stats["fake_blank"] < BLANK_FRACTION:
        return ""
    return (f"{stats['fake_blank']:.0%} of its class means render blank, mean intensity {stats['fake_mean']:.2f}")


def check_file_name(name) -> str:
    """A bare file name (letters, digits, . _ -; no folders, not hidden), else UserError."""
    if not isinstance(name, str) or not _FILE_NAME.fullmatch(name) or ".." in name:
        raise UserError(f"bad file name {name!r}: use a bare name of letters, digits, '.', '_' and '-' (no folders)",
                        key="name")
    return name


def _rows(a: np.ndarray) -> list[list[float]]:
    return [[float(v) for v in row] for row in np.asarray(a, dtype=np.float64)]
