"""Latent paths for videos: seeded keyframes, slerp/lerp/cubic walks, class transitions, real-digit keyframes,
easing."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.errors import UserError

# Every function here is a pure function of its arguments: float64 numpy math
# (identical on any machine with IEEE doubles), float32 results, and keyframes from
# numpy's PCG64 (`default_rng`), whose stream numpy keeps stable across versions
# and platforms -- unlike torch's generators, which differ between CPU and CUDA.

# Robert Penner's names, the common convention. The default has no jump in speed at a keyframe: speed
# falls to zero on arrival and rises from zero on departure, so the motion never jerks.
EASINGS = ("ease-in-out-sine", "linear", "ease-out-sine", "smoothstep")
DEFAULT_EASE = "ease-in-out-sine"
_RENAMED = {"sine": "ease-out-sine"}  # older name -> honest name
INTERPOLATIONS = ("slerp", "cubic", "lerp")
N_CLASSES = 10

# Below this angle (radians) two directions count as parallel: slerp's
# sin(omega) denominator loses precision, and lerp is then equal to slerp to
# well within float32 anyway.
_PARALLEL_EPS = 1e-6


def check_ease(name: str) -> str:
    """`name` if it is a known easing, else UserError (an old name gets its new one)."""
    if name in EASINGS:
        return name
    if name in _RENAMED:
        raise UserError(f"easing {name!r} is now called {_RENAMED[name]!r} (sin(t*pi/2): fast start, stops at each "
                        f"keyframe, the article's); {DEFAULT_EASE!r} moves without a jump in speed")
    raise UserError(f"unknown easing {name!r}; choose one of: {', '.join(EASINGS)}")


def ease(name: str, t):
    """Map progress t in [0, 1] to eased progress; ease(name, 0) == 0 and ease(name, 1) == 1 exactly.

    ease-in-out-sine: (1 - cos(t*pi))/2, slow start and arrival: speed is zero at each keyframe on both
      sides, so it never jumps (the default).
    linear: t, constant speed within a segment (it changes at a keyframe when segments differ in length).
    ease-out-sine: sin(t*pi/2), the article's: full speed at departure, zero at arrival, so the speed
      jumps from zero to its maximum at every keyframe.
    smoothstep: 3t^2 - 2t^3, like ease-in-out-sine with a slightly flatter middle.
    """
    check_ease(name)
    t = np.asarray(t, dtype=np.float64)
    if name == "linear":
        out = t.copy()
    elif name == "ease-in-out-sine":
        out = 0.5 - 0.5 * np.cos(t * np.pi)
    elif name == "ease-out-sine":
        out = np.sin(t * (np.pi / 2))
    else:
        out = t * t * (3.0 - 2.0 * t)
    # Pin the endpoints so keyframes are hit bit-exactly whatever the libm.
    out = np.where(t == 0.0, 0.0, np.where(t == 1.0, 1.0, out))
    return out if out.ndim else float(out)


_ease = ease  # walk_path and class_path take an argument named `ease`


def _slerp64(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """float64 slerp of vectors a, b [Z] at times t [T] -> [T, Z] (see `slerp`)."""
    t = t[:, None]  # [T, 1]
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0.0 or nb == 0.0:
        out = (1.0 - t) * a + t * b
    else:
        ua, ub = a / na, b / nb
        # The angle via atan2 of |ua-ub| and |ua+ub| is accurate for tiny and
        # near-pi angles, where arccos(dot) loses half the digits.
        omega = 2.0 * np.arctan2(np.linalg.norm(ua - ub), np.linalg.norm(ua + ub))
        if omega < _PARALLEL_EPS or np.pi - omega < _PARALLEL_EPS:
            # Parallel: lerp is slerp. Antiparallel: no unique great circle, and
            # lerp (which passes near the origin) is the honest deterministic answer.
            out = (1.0 - t) * a + t * b
        else:
            s = np.sin(omega)
            direction = (np.sin((1.0 - t) * omega) / s) * ua + (np.sin(t * omega) / s) * ub  # [T, Z]
            # Directions move along the great circle at constant angular speed; the
            # norm moves linearly between the endpoints' norms. For equal norms
            # this is the textbook slerp; for unequal norms the textbook formula
            # would lose its constant angular speed, this keeps it.
            out = ((1.0 - t) * na + t * nb) * direction
    # Exact endpoints: a frame at t=0 or t=1 is the keyframe itself, bit for bit.
    out = np.where(t == 0.0, a[None, :], out)
    return np.where(t == 1.0, b[None, :], out)


def slerp(a, b, t) -> np.ndarray:
    """Spherical interpolation from a to b: t scalar -> [Z], t array [T] -> [T, Z], float32.

    Directions follow the great circle at constant angular speed in t, the norm goes
    linearly from |a| to |b| (so it stays within their range), endpoints are exact,
    and (nearly) parallel or antiparallel vectors fall back to lerp.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise UserError(f"slerp needs two vectors of the same length, got shapes {a.shape} and {b.shape}")
    t_arr = np.asarray(t, dtype=np.float64)
    out = _slerp64(a, b, t_arr.reshape(-1)).astype(np.float32)
    return out[0] if t_arr.ndim == 0 else out


def _check_count(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise UserError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def walk_keyframes(seed: int, k: int, z_dim: int) -> np.ndarray:
    """K keyframes drawn from N(0, I) with numpy's PCG64 seeded by `seed`: float32 [K, z_dim]."""
    seed = _check_count("seed", seed, 0)
    k = _check_count("the number of keyframes", k, 1)
    z_dim = _check_count("z_dim", z_dim, 1)
    return np.random.default_rng(seed).standard_normal((k, z_dim)).astype(np.float32)


MAX_SEEDS = 100_000  # a seed list longer than this is a typo (0-1000000), not a render


def parse_seeds(spec) -> list[int]:
    """stylegan3's seed lists: "0-31,40" -> [0, 1, ..., 31, 40]; ranges are inclusive, order is kept."""
    text = str(spec).strip()
    example = "give seeds like 3,17,42 or 0-31,40 (whole numbers >= 0)"
    if not text:
        raise UserError(f"empty --seeds; {example}")
    out: list[int] = []
    for part in text.split(","):
        lo, sep, hi = part.strip().partition("-")
        try:
            a = int(lo)
            b = int(hi) if sep else a
        except ValueError:
            raise UserError(f"bad --seeds {text!r} at {part.strip()!r}; {example}") from None
        if a < 0 or b < a:
            raise UserError(f"bad --seeds range {part.strip()!r} in {text!r}; ranges go up (3-7), {example}")
        if len(out) + b - a + 1 > MAX_SEEDS:
            raise UserError(f"--seeds {text!r} names more than {MAX_SEEDS:,} seeds; give fewer")
        out.extend(range(a, b + 1))
    return out


def seed_latents(seeds, z_dim: int) -> np.ndarray:
    """One latent per seed, N(0, I) from numpy's PCG64 seeded by it: float32 [len(seeds), z_dim].

    Seed s gives the same latent wherever it is used: `still --seed s`, a keyframe of `walk --seeds ...,s,...`
    and the first keyframe of `walk --seed s` (walk_keyframes draws its rows from the same stream).
    """
    z_dim = _check_count("z_dim", z_dim, 1)
    return np.stack([walk_keyframes(s, 1, z_dim)[0] for s in seeds]) if len(seeds) else np.zeros((0, z_dim), np.float32)


def _segments(n_frames: int, n_segments: int, loop: bool):
    """Segment index j [N] and progress u [N] in [0, 1] of every frame, equal time per segment.

    Integer arithmetic, so frames that land on a keyframe do so exactly (u = 0 or 1).
    Not looping: frame i sits at time i*S/(N-1), the last frame at the end of the last
    segment. Looping: frame i sits at i*S/N, so frame N would be frame 0 again and the
    seam step equals every other step.
    """
    i = np.arange(n_frames, dtype=np.int64)
    denom = n_frames if loop else n_frames - 1
    num = i * n_segments
    j = num // denom
    u = (num % denom).astype(np.float64) / denom
    if not loop:
        # The last frame is the end of the last segment (u = 1), not the start of
        # a segment that does not exist.
        last = j == n_segments
        j = np.where(last, n_segments - 1, j)
        u = np.where(last, 1.0, u)
    return j, u


def _segments_inclusive(n_frames: int, n_segments: int):
    """As the article's sampler timed a walk: each transition renders both its ends, so every keyframe
    between two transitions shows on two frames in a row. Frames are shared out as evenly as possible
    (the earlier transitions take one more when they do not divide); a transition of c frames steps u
    by 1/(c-1) from 0 to 1 inclusive (a transition of one frame shows its start)."""
    base, extra = divmod(n_frames, n_segments)
    counts = [base + (1 if s < extra else 0) for s in range(n_segments)]
    j = np.repeat(np.arange(n_segments), counts)
    u = np.concatenate([np.arange(c, dtype=np.float64) / max(c - 1, 1) for c in counts])
    return j, u


def _catmull_rom(p0, p1, p2, p3, u):
    """Uniform Catmull-Rom between p1 and p2 with neighbours p0, p3: rows [T, Z], u [T, 1]."""
    m1 = (p2 - p0) / 2.0  # tangents
    m2 = (p3 - p1) / 2.0
    u2, u3 = u * u, u * u * u
    return (
        (2 * u3 - 3 * u2 + 1) * p1
        + (u3 - 2 * u2 + u) * m1
        + (-2 * u3 + 3 * u2) * p2
        + (u3 - u2) * m2
    )


def walk_path(
    keyframes,
    n_frames: int,
    loop: bool = False,
    ease: str = "linear",
    interp: str = "slerp",
    repeat_keyframes: bool = False,
    timeline=None,
    pacing=None,
    speed=None,
) -> np.ndarray:
    """Latents of every frame of a walk through keyframes [K, Z]: float32 [n_frames, Z].

    speed: each frame's relative speed [n_frames] (a soundtrack's loudness), applied before the easing by
    scene.pacing.speed_warp; keyframes stay on their frames.

    timeline (pipeline.scene.timeline.Timeline): keyframe times and holds in frames instead of equal time per
    segment (its `frames` must be n_frames). pacing: per-segment maps from pipeline.scene.pacing, applied
    after the easing, so the picture changes evenly.

    Equal time per segment, `ease` applied within each segment. Not looping: frame 0
    is keyframe 0 and the last frame is keyframe K-1 exactly (needs n_frames >= 2
    when K > 1). Looping: the last segment goes K-1 -> 0 and the last frame is one
    step before keyframe 0, so the video repeats without a duplicated frame.

    Frames per transition: with m frames per transition, n_frames = m*(K-1) + 1 (not
    looping) or m*K (looping) puts keyframe i exactly at frame m*i, each keyframe
    shown once; with linear ease and lerp every step within a segment is the same
    (1/m of it). The article's videos: 30 per transition, 9 digits -> 241 frames.

    repeat_keyframes: time the walk as the article's sampler did: each transition renders
    both its ends (u = 0 .. 1 in steps of 1/(m-1) for m frames per transition), so a keyframe
    between two transitions appears on two frames in a row; n_frames = m * (number of
    transitions), e.g. 9 digits at 30 per transition -> 240 frames.

    interp: "slerp" (great circles between keyframes), "lerp" (straight lines), or
    "cubic": a uniform Catmull-Rom spline through the keyframes (periodic when
    looping, one-sided end tangents otherwise), C1 with linear easing. A straight
    cubic would shrink the norm between keyframes (random Gaussian vectors are
    nearly orthogonal), moving the latent off the prior's shell, so each frame is
    rescaled to the norm given by the same spline applied to the keyframe norms;
    that factor is 1 at keyframes and smooth, so the path still passes through
    them and stays C1.

    Why not scipy.interpolate (stylegan3's interp1d(kind="cubic")): its splines are
    global, so appending a keyframe to a walk would move every earlier transition,
    and a frame would depend on keyframes far away; Catmull-Rom depends only on the
    four keyframes around a transition, hits every keyframe bit-exactly (u = 0 and
    1 evaluate to the key itself), and needs nothing beyond numpy.
    """
    keys = np.asarray(keyframes, dtype=np.float64)
    if keys.ndim != 2 or keys.shape[0] < 1 or keys.shape[1] < 1:
        raise UserError(f"keyframes must have shape [K, z_dim] with K >= 1, got {keys.shape}")
    if not np.all(np.isfinite(keys)):
        raise UserError("keyframes contain NaN or infinite values; use finite latents")
    if interp not in INTERPOLATIONS:
        raise UserError(f"unknown interpolation {interp!r}; choose one of: {', '.join(INTERPOLATIONS)}")
    _ease(ease, 0.0)  # unknown easing -> UserError before any work
    n_frames = _check_count("the number of frames", n_frames, 1)
    n_keys = keys.shape[0]
    if n_keys == 1:
        return np.repeat(keys, n_frames, axis=0).astype(np.float32)
    if not loop and n_frames < 2:
        raise UserError(
            "a walk that is not looped needs at least 2 frames to start and end on its keyframes; "
            "use more frames or loop"
        )

    n_segments = n_keys if loop else n_keys - 1
    if repeat_keyframes and n_frames < n_segments:
        raise UserError(f"with repeated keyframes every transition needs a frame: use at least {n_segments} frames")
    if timeline is not None:
        if timeline.frames != n_frames or len(timeline.arrive) != n_keys or timeline.loop != loop:
            raise ValueError("the timeline does not match the walk's frames, keyframes or loop")
        seg, u = timeline.positions()
    else:
        seg, u = _segments_inclusive(n_frames, n_segments) if repeat_keyframes else _segments(n_frames, n_segments, loop)
    if speed is not None:
        from pipeline.scene.pacing import speed_warp

        u = speed_warp(seg, np.atleast_1d(np.asarray(u, dtype=np.float64)), speed)
    u = np.atleast_1d(np.asarray(_ease(ease, u), dtype=np.float64))
    if pacing is not None:
        from pipeline.scene.pacing import repace

        u = repace(seg, u, pacing)
    out = np.empty((n_frames, keys.shape[1]), dtype=np.float64)
    for s in range(n_segments):
        rows = np.nonzero(seg == s)[0]
        if rows.size:
            out[rows] = segment_latents(keys, s, u[rows], interp, loop)
    return out.astype(np.float32)


def segment_latents(keys: np.ndarray, s: int, u: np.ndarray, interp: str, loop: bool) -> np.ndarray:
    """float64 latents [T, Z] at progress u [T] along segment s (keyframe s -> s+1, wrapping when looping)."""
    keys = np.asarray(keys, dtype=np.float64)
    u = np.asarray(u, dtype=np.float64)
    a, b = keys[s], keys[(s + 1) % keys.shape[0]]
    if interp == "slerp":
        return _slerp64(a, b, u)
    if interp == "lerp":
        out = (1.0 - u[:, None]) * a + u[:, None] * b
        return np.where(u[:, None] == 1.0, b, out)  # exact endpoint
    return _cubic_segment(keys, s, u, loop)


def _cubic_segment(keys: np.ndarray, s: int, u: np.ndarray, loop: bool) -> np.ndarray:
    """Norm-corrected Catmull-Rom on segment s (keyframe s -> s+1) at progress u [T] -> [T, Z]."""
    n_keys = keys.shape[0]
    norms = np.linalg.norm(keys, axis=1)  # [K]

    def neighbour(i: int) -> int:
        # Periodic when looping; otherwise clamp, which with the reflection below
        # gives the one-sided end tangent p1 - p0.
        return i % n_keys if loop else min(max(i, 0), n_keys - 1)

    i0, i1, i2, i3 = neighbour(s - 1), neighbour(s), neighbour(s + 1), neighbour(s + 2)
    p0, p1, p2, p3 = keys[i0], keys[i1], keys[i2], keys[i3]
    q0, q1, q2, q3 = norms[i0], norms[i1], norms[i2], norms[i3]
    if not loop and s == 0:
        # Reflect the missing neighbour so the tangent (p2 - p0)/2 is p2 - p1.
        p0, q0 = 2 * p1 - p2, 2 * q1 - q2
    if not loop and s == n_keys - 2:
        p3, q3 = 2 * p2 - p1, 2 * q2 - q1
    uc = u[:, None]  # [T, 1]
    pts = _catmull_rom(p0, p1, p2, p3, uc)  # [T, Z]
    target = _catmull_rom(q0, q1, q2, q3, uc)  # [T, 1]
    have = np.linalg.norm(pts, axis=1, keepdims=True)
    # Where the spline passes through (almost) zero there is no direction to
    # rescale; leave those frames as they are rather than divide by ~0.
    scale = np.where(have > 1e-12, np.maximum(target, 0.0) / np.maximum(have, 1e-12), 1.0)
    pts = pts * scale
    pts = np.where(uc == 0.0, p1, pts)  # exact keyframes
    return np.where(uc == 1.0, p2, pts)


def class_path(
    class_latents,
    order: list[int],
    n_frames: int,
    loop: bool = False,
    ease: str = "linear",
    repeat_keyframes: bool = False,
    timeline=None,
    pacing=None,
    speed=None,
) -> np.ndarray:
    """Latents of a video morphing through class latents [C, Z] in `order`: float32 [n_frames, Z].

    Equal time per transition; same loop, endpoint and repeat_keyframes rules as `walk_path`.
    """
    lat = np.asarray(class_latents, dtype=np.float64)
    if lat.ndim != 2 or lat.shape[0] < 1:
        raise UserError(f"class latents must have shape [classes, z_dim], got {lat.shape}")
    order = [int(c) for c in order]
    if len(order) < 2:
        raise UserError(f"class transitions need at least 2 classes in the order, got {order}")
    bad = [c for c in order if not 0 <= c < lat.shape[0]]
    if bad:
        raise UserError(f"class {bad[0]} is out of range; the checkpoint has classes 0..{lat.shape[0] - 1}")
    # Lerp, not slerp: class latents are means of the encoder's posteriors, points
    # well inside the prior rather than on its sqrt(z_dim) shell, and the straight
    # line between two means is the article's own morph. Slerp's arc would bend
    # around the origin, a point with no meaning for these means.
    return walk_path(lat[order], n_frames, loop=loop, ease=ease, interp="lerp", repeat_keyframes=repeat_keyframes,
                     timeline=timeline, pacing=pacing, speed=speed)


def _parse_order(spec: str, n_classes: int, noun: str, examples: str) -> list[int]:
    """"0-9", "3,1,4", "0-9,0" or "9-0" -> a list of indices in 0..n_classes-1 (errors name the `noun`)."""
    nouns = "classes" if noun == "class" else f"{noun}s"
    text = str(spec).strip()
    if not text:
        raise UserError(f"empty {noun} list; give {nouns} like {examples} (each 0..{n_classes - 1})")
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        lo, sep, hi = part.partition("-")
        try:
            if sep:
                a, b = int(lo.strip()), int(hi.strip())
                step = 1 if b >= a else -1
                items = list(range(a, b + step, step))
            else:
                items = [int(part)]
        except ValueError:
            raise UserError(f"bad {noun} list {spec!r} at {part!r}; give {nouns} like {examples} or 0-9,0") from None
        for c in items:
            if not 0 <= c < n_classes:
                raise UserError(f"{noun} {c} in {spec!r} is out of range; {nouns} are 0..{n_classes - 1}")
        out.extend(items)
    return out


def parse_classes(spec: str, n_classes: int = N_CLASSES) -> list[int]:
    """Parse a class order like "0-9", "3,1,4", "0-9,0" or "9-0" into a list of class indices."""
    out = _parse_order(spec, n_classes, "class", "0-9, 3,1,4")
    if len(set(out)) < 2:
        raise UserError(f"class list {spec!r} needs at least 2 different classes, e.g. 0-9 or 3,1")
    return out


def parse_digits(spec: str, n_classes: int = N_CLASSES) -> list[int]:
    """Parse a digit sequence like "8,6,4,2,0,1,3,5,7" or "0-9" (same syntax as `parse_classes`).

    Unlike a class order, a digit may repeat (each occurrence is another real example of it), so
    "8,8" is a walk between two different eights; at least 2 entries are needed.
    """
    out = _parse_order(spec, n_classes, "digit", "8,6,4,2,0,1,3,5,7")
    if len(out) < 2:
        raise UserError(f"digit list {spec!r} needs at least 2 digits to walk between, e.g. 8,6,4 or 0-9")
    return out


def digit_keyframes(order, digit_latents, digit_labels, source: str = "the checkpoint"):
    """Keyframes [K, Z] for a digit sequence from a bank of single-digit encodings; also their bank rows [K].

    The i-th occurrence of a digit in `order` takes the i-th stored encoding of that digit (in the
    bank's order), wrapping around when the bank holds fewer, so a repeated digit shows another real
    example. digit_latents [N, Z] / digit_labels [N] (tensors or arrays); None: the checkpoint has no
    bank, which is a UserError naming the fixes. Returns (float32 [K, Z], int64 [K]).
    """
    if digit_latents is None or digit_labels is None:
        raise UserError(f"{source} stores no single-digit encodings (it predates them), so --digits has no real "
                        f"digits to use; use --classes for class means, or a checkpoint trained by this version")
    lat = np.asarray(digit_latents, dtype=np.float32)
    lab = np.asarray(digit_labels, dtype=np.int64).reshape(-1)
    rows: list[int] = []
    seen: dict[int, int] = {}
    for d in order:
        d = int(d)
        candidates = np.nonzero(lab == d)[0]
        if candidates.size == 0:
            have = sorted(set(lab.tolist()))
            raise UserError(f"{source} stores no encoding of digit {d} (it has digits "
                            f"{','.join(map(str, have)) or 'none'}); leave {d} out of --digits or use --classes")
        i = seen.get(d, 0)
        seen[d] = i + 1
        rows.append(int(candidates[i % candidates.size]))
    idx = np.asarray(rows, dtype=np.int64)
    return lat[idx].copy(), idx


def load_keyframes(path, z_dim: int | None = None) -> np.ndarray:
    """Keyframes [K, z_dim] from a .npy file, validated: float32 [K, z_dim]."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"keyframes file {path} does not exist; give a .npy file of shape [K, z_dim]")
    try:
        # allow_pickle=False: a keyframe file is data and must never run code.
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise UserError(f"keyframes file {path} is not a readable .npy array ({e}); save it with numpy.save") from None
    if not isinstance(arr, np.ndarray):
        arr.close()  # an .npz archive, opened lazily
        raise UserError(f"keyframes file {path} is an .npz archive; save one [K, z_dim] array with numpy.save")
    if arr.dtype.kind not in "fiu":
        raise UserError(f"keyframes file {path} holds {arr.dtype} values; it must hold real numbers")
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise UserError(f"keyframes file {path} has shape {arr.shape}; it must be [K, z_dim] with K >= 1")
    if z_dim is not None and arr.shape[1] != z_dim:
        raise UserError(
            f"keyframes file {path} has z_dim {arr.shape[1]} but the checkpoint's generator takes {z_dim}"
        )
    if not np.all(np.isfinite(arr)):
        raise UserError(f"keyframes file {path} contains NaN or infinite values; use finite latents")
    return arr.astype(np.float32)


__all__ = [
    "EASINGS",
    "INTERPOLATIONS",
    "ease",
    "slerp",
    "walk_keyframes",
    "walk_path",
    "class_path",
    "parse_classes",
    "parse_digits",
    "digit_keyframes",
    "load_keyframes",
]
