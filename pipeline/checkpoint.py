"""Checkpoints as data: render checkpoints (e{epoch}.pt) and resumable training state (state.pt).

Both are plain dicts of tensors and plain values written with `torch.save` and read
with `torch.load(weights_only=True)`, so loading never runs code from the file.
Keys shared by both kinds (what rendering needs):

    format_version  int   FORMAT_VERSION
    kind            str   "render" or "train"
    family          str   generator family ("resnet" or "prev")
    generator_config dict the generator's config as plain values
    generator       dict  the generator's state_dict
    class_latents   Tensor float32 [10, z_dim]: mean encoder mu of each class
    digit_bank      dict  (optional) {"latents": float32 [N, z_dim], "labels": int64 [N]}: encodings
                          of single real digits, the article's keyframes
    meta            dict  provenance: hyperparameters, epoch, steps, dataset hashes, seed, version...

A training state adds the encoder/classifier/optimiser state_dicts, RNG states and
the position in the run (see pipeline.train.state).
"""
from __future__ import annotations

import io
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from pipeline import atomic
from pipeline.errors import UserError
from pipeline.torchfile import read_plain
from pipeline.models import GENERATOR_FAMILIES, build_generator, generator_config

FORMAT_VERSION = 1
KINDS = ("render", "train")
N_CLASSES = 10
REQUIRED_KEYS = ("format_version", "kind", "family", "generator_config", "generator", "class_latents", "meta")

# Bundled checkpoints (`--checkpoint e24` etc.); a module variable so tests can point it elsewhere.
ASSETS_DIR = Path(__file__).resolve().parent / "assets"


@dataclass
class Checkpoint:
    """A loaded checkpoint: the generator rebuilt from its config, ready to render (eval, float32, CPU)."""
    path: Path
    sha256: str                    # of the file's bytes
    kind: str                      # "render" or "train"
    format_version: int
    family: str
    generator: nn.Module
    generator_config: object       # the frozen config dataclass the generator was built from
    class_latents: torch.Tensor    # float32 [10, z_dim]
    meta: dict = field(default_factory=dict)
    digit_latents: torch.Tensor | None = None  # float32 [N, z_dim]: encodings of single real digits
    digit_labels: torch.Tensor | None = None   # int64 [N]: their classes

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def epoch(self) -> int | None:
        return self.meta.get("epoch")

    @property
    def z_dim(self) -> int:
        return self.generator_config.z_dim

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.generator.parameters())


# ----------------------------------------------------------------------------- writing

def atomic_torch_save(obj, path: str | os.PathLike) -> Path:
    """torch.save to a temp file in the same directory, then rename: a reader never sees half a file."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic.write_bytes(path, buf.getvalue())


def _cpu_state(module: nn.Module) -> dict:
    # clone: the saved tensors must not alias live parameters that keep training
    return {k: v.detach().to("cpu").clone() for k, v in module.state_dict().items()}


def render_payload(generator: nn.Module, class_latents: torch.Tensor, meta: dict,
                   digit_bank: dict | None = None) -> dict:
    """The keys every checkpoint kind carries (a training state adds its own on top)."""
    cfg = generator.cfg
    latents = class_latents.detach().to("cpu", torch.float32).clone()
    if latents.shape != (N_CLASSES, cfg.z_dim):
        raise ValueError(f"class_latents must be [{N_CLASSES}, {cfg.z_dim}], got {tuple(latents.shape)}")
    extra = {}
    if digit_bank is not None:
        bank = {"latents": digit_bank["latents"].detach().to("cpu", torch.float32).clone(),
                "labels": digit_bank["labels"].detach().to("cpu", torch.int64).clone()}
        problem = _bank_problem(bank, cfg.z_dim)
        if problem:
            raise ValueError(problem)
        extra["digit_bank"] = bank
    return {
        "format_version": FORMAT_VERSION,
        "family": cfg.family,
        "generator_config": asdict(cfg),
        "generator": _cpu_state(generator),
        "class_latents": latents,
        "meta": dict(meta),
        **extra,
    }


# Sane bounds for the integer fields of a generator config (the article uses z 32, width 6/128, 24 blocks).
CONFIG_BOUNDS = {"z_dim": (1, 4096), "width": (1, 4096), "n_blocks": (1, 1024), "relu_layers": (0, 64),
                 "tanh_layers": (0, 64)}


def _config_problem(cfg) -> str:
    """Why a generator config is unusable (out-of-range sizes, non-finite scales), or "" if it is fine."""
    import math
    from dataclasses import fields

    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if f.name in CONFIG_BOUNDS:
            lo, hi = CONFIG_BOUNDS[f.name]
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                return f"{f.name} = {value!r} is outside {lo}..{hi}"
        elif isinstance(value, float) and not math.isfinite(value):
            return f"{f.name} = {value!r} is not finite"
    return ""


# What a generator may cost, checked from its config alone before anything is built: the article's largest
# (prev: 54,273 parameters, 4 layers of 128) is far inside. Parameters: 16 M floats are 64 MB. Layers: each
# is a module to build and a step per pixel to render (e24 has 120). Activations: the reference renders
# 65,536-pixel chunks (render.reference.CHUNK) keeping about three [chunk, width] float32 tensors alive.
MAX_PARAMETERS = 16_000_000
MAX_LAYERS = 2048
MAX_ACTIVATION_BYTES = 512 * 2**20
ACTIVATION_PIXELS = 1 << 16
ACTIVATION_TENSORS = 3


def _weights_problem(cfg, stored) -> str:
    """Why the stored weights cannot be this config's generator (or the generator would be too big), or "".

    The expected shapes come from models.parameter_shapes (no module built, nothing allocated), so a config
    claiming width 4096 beside 6-wide weights is refused in microseconds, not after gigabytes."""
    from math import prod

    from pipeline.models.generators import parameter_shapes

    layers = cfg.n_blocks * (cfg.relu_layers + 1) if cfg.family == "resnet" else cfg.tanh_layers
    if layers + 2 > MAX_LAYERS:
        return f"the generator would have {layers + 2:,} layers, more than the {MAX_LAYERS:,} cppn-video builds"
    activation = ACTIVATION_TENSORS * 4 * cfg.width * ACTIVATION_PIXELS
    if activation > MAX_ACTIVATION_BYTES:
        return (f"generator width {cfg.width} needs {activation / 2**30:.1f} GB of activations per "
                f"{ACTIVATION_PIXELS:,}-pixel chunk, more than the {MAX_ACTIVATION_BYTES / 2**30:.1f} GB allowed")
    shapes = parameter_shapes(cfg)
    count = sum(prod(shape) for shape in shapes.values())
    if count > MAX_PARAMETERS:
        return f"the generator would have {count:,} parameters, more than the {MAX_PARAMETERS:,} allowed"
    if not isinstance(stored, dict):
        return f"generator weights are {type(stored).__name__}, not a table of tensors"
    missing = [k for k in shapes if k not in stored]
    extra = [str(k) for k in stored if k not in shapes]
    if missing or extra:
        what = (f"missing {', '.join(missing[:3])}" if missing else "") + ("; " if missing and extra else "") + \
               (f"unexpected {', '.join(extra[:3])}" if extra else "")
        return f"generator weights do not match its config ({what})"
    for name, shape in shapes.items():
        t = stored[name]
        if not isinstance(t, torch.Tensor) or tuple(t.shape) != shape:
            found = list(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            return f"generator weights do not match its config ({name} is {found}, the config says {list(shape)})"
    return ""


def _bank_problem(bank, z_dim: int) -> str:
    """Why a digit bank is malformed, or "" if it is fine."""
    if not isinstance(bank, dict) or set(bank) != {"latents", "labels"}:
        return "digit_bank must be a dict with exactly the keys latents and labels"
    lat, lab = bank["latents"], bank["labels"]
    if not isinstance(lat, torch.Tensor) or not isinstance(lab, torch.Tensor):
        return "digit_bank latents and labels must be tensors"
    if lat.dim() != 2 or lat.shape[1] != z_dim or lat.dtype != torch.float32:
        return f"digit_bank latents must be float32 [N, {z_dim}], got {lat.dtype} {tuple(lat.shape)}"
    if lab.shape != (lat.shape[0],) or lab.dtype != torch.int64:
        return f"digit_bank labels must be int64 [{lat.shape[0]}], got {lab.dtype} {tuple(lab.shape)}"
    if lab.numel() and (int(lab.min()) < 0 or int(lab.max()) >= N_CLASSES):
        return f"digit_bank labels must be within 0..{N_CLASSES - 1}"
    if not torch.isfinite(lat).all():
        return "digit_bank latents must be finite"
    return ""


def save_render_checkpoint(path: str | os.PathLike, generator: nn.Module, class_latents: torch.Tensor,
                           meta: dict, digit_bank: dict | None = None) -> Path:
    """Write a render checkpoint (generator + its config + class latents + digit bank + meta) atomically."""
    payload = render_payload(generator, class_latents, meta, digit_bank)
    payload["kind"] = "render"
    return atomic_torch_save(payload, path)


# ----------------------------------------------------------------------------- finding

def list_bundled() -> list[str]:
    """Names of the checkpoints shipped in pipeline/assets (e.g. ["default", "e24", "e6", "prev"])."""
    d = Path(ASSETS_DIR)
    if not d.is_dir():
        return []
    return sorted(p.stem for p in d.glob("*.pt") if p.is_file())


def bundled_path(name: str) -> Path | None:
    """The file of a bundled checkpoint named `name` ("e24" or "e24.pt"), or None when there is none."""
    stem = name[:-3] if name.endswith(".pt") else name
    if not stem or "/" in stem or os.sep in stem:
        return None
    path = Path(ASSETS_DIR) / f"{stem}.pt"
    return path if path.is_file() else None


def resolve_checkpoint(name_or_path: str | os.PathLike) -> Path:
    """An existing file -> itself; otherwise a bundled name (`e24`, `prev`, ...) -> its file."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        raise UserError(f"{path} is a directory, not a checkpoint; name a file such as {path / 'e24.pt'}")
    name = str(name_or_path)
    bundled = bundled_path(name)
    if bundled is not None:
        return bundled
    names = list_bundled()
    listing = f"bundled: {', '.join(names)}" if names else "no checkpoints are bundled"
    raise UserError(f"checkpoint {name} not found: no such file and no bundled checkpoint of that name "
                    f"({listing}); pass a path to a .pt file written by `cppn-video train`")


# ----------------------------------------------------------------------------- reading

def read_checkpoint_dict(path: str | os.PathLike) -> tuple[dict, str]:
    """Read and validate a checkpoint file -> (the raw dict, sha256 of its bytes); errors are one line."""
    path = Path(path)
    data, digest = read_plain(path, "checkpoint", "pass a .pt file written by `cppn-video train`")
    if not isinstance(data, dict) or "format_version" not in data:
        raise UserError(f"{path} is a torch file but not a cppn-video checkpoint (no format_version); "
                        f"use a .pt file written by `cppn-video train`")
    version = data["format_version"]
    if version != FORMAT_VERSION:
        newer = isinstance(version, int) and version > FORMAT_VERSION
        fix = "upgrade cppn-video" if newer else "retrain or convert it"
        raise UserError(f"{path} has checkpoint format {version!r}, this cppn-video reads format "
                        f"{FORMAT_VERSION}; {fix}")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise UserError(f"{path} is not a complete cppn-video checkpoint (missing {', '.join(missing)}); "
                        f"use a .pt file written by `cppn-video train`")
    if data["kind"] not in KINDS:
        raise UserError(f"{path} has unknown checkpoint kind {data['kind']!r} (expected render or train)")
    if data["family"] not in GENERATOR_FAMILIES:
        raise UserError(f"{path} is for unknown model family {data['family']!r}; this cppn-video knows "
                        f"{', '.join(GENERATOR_FAMILIES)}")
    return data, digest


def load_checkpoint(path_or_name: str | os.PathLike) -> Checkpoint:
    """Load a render checkpoint or training state (a path or a bundled name) as a Checkpoint."""
    path = resolve_checkpoint(path_or_name)
    data, digest = read_checkpoint_dict(path)
    family = data["family"]
    values = dict(data["generator_config"])
    if values.get("family", family) != family:
        raise UserError(f"{path} is inconsistent: family {family!r} but its generator config says "
                        f"{values['family']!r}; the file is corrupt")
    try:
        cfg = generator_config(family, **values)
    except (TypeError, ValueError) as e:
        raise UserError(f"{path} has a generator config this cppn-video cannot build ({e}); "
                        f"it may come from another version") from None
    problem = _config_problem(cfg)
    if problem:  # checked before building: a hostile config must not allocate gigabytes
        raise UserError(f"{path}: generator config {problem}; the file is corrupt or not from cppn-video")
    problem = _weights_problem(cfg, data["generator"])
    if problem:  # before building: the module is made only for weights that are there and fit the bounds
        raise UserError(f"{path}: {problem}; the file is corrupt or not from cppn-video")
    generator = build_generator(cfg)
    try:
        generator.load_state_dict(data["generator"], strict=True)
    except (RuntimeError, TypeError, AttributeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{path}: generator weights do not match its config ({first}); the file is corrupt") from None
    bad = [name for name, t in generator.state_dict().items() if not torch.isfinite(t).all()]
    if bad:
        raise UserError(f"{path}: generator weights {', '.join(bad[:3])} hold NaN or infinite values; it would "
                        f"render blank frames; use an earlier checkpoint of the run")
    generator = generator.float().eval()
    for p in generator.parameters():
        p.requires_grad_(False)  # rendering never needs gradients
    latents = data["class_latents"]
    if not isinstance(latents, torch.Tensor) or tuple(latents.shape) != (N_CLASSES, cfg.z_dim):
        shape = tuple(latents.shape) if isinstance(latents, torch.Tensor) else type(latents).__name__
        raise UserError(f"{path}: class latents must be [{N_CLASSES}, {cfg.z_dim}], found {shape}; the file is corrupt")
    bank = data.get("digit_bank")
    if bank is not None:
        problem = _bank_problem(bank, cfg.z_dim)
        if problem:
            raise UserError(f"{path}: {problem}; the file is corrupt")
    meta = data["meta"] if isinstance(data["meta"], dict) else {}
    return Checkpoint(path=path, sha256=digest, kind=data["kind"], format_version=data["format_version"],
                      family=family, generator=generator, generator_config=cfg,
                      class_latents=latents.to(torch.float32), meta=meta,
                      digit_latents=None if bank is None else bank["latents"],
                      digit_labels=None if bank is None else bank["labels"])
