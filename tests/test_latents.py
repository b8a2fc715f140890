"""Latent paths: slerp geometry, easing, walks (loop seam, endpoints, cubic), class transitions, parsing."""
import numpy as np
import pytest

from pipeline.errors import UserError
from pipeline.latents import (
    EASINGS,
    class_path,
    digit_keyframes,
    ease,
    load_keyframes,
    parse_classes,
    parse_digits,
    slerp,
    walk_keyframes,
    walk_path,
)

pytestmark = pytest.mark.filterwarnings("error")


def angle(a, b):
    """Angle between vectors (rows), stable for tiny angles: 2 atan2(|ua - ub|, |ua + ub|)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    ua = a / np.linalg.norm(a, axis=-1, keepdims=True)
    ub = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return 2 * np.arctan2(np.linalg.norm(ua - ub, axis=-1), np.linalg.norm(ua + ub, axis=-1))


def steps(path):
    """Angles between consecutive frames [N-1]."""
    return angle(path[:-1], path[1:])


def same_norm(keys, r=5.0):
    return (r * keys / np.linalg.norm(keys, axis=1, keepdims=True)).astype(np.float32)


# ---------------------------------------------------------------- slerp


def test_slerp_endpoints_exact():
    a, b = walk_keyframes(1, 2, 16)
    assert np.array_equal(slerp(a, b, 0.0), a)
    assert np.array_equal(slerp(a, b, 1.0), b)
    path = slerp(a, b, np.linspace(0, 1, 7))
    assert path.shape == (7, 16) and path.dtype == np.float32
    assert np.array_equal(path[0], a) and np.array_equal(path[-1], b)


@pytest.mark.parametrize("scale_b", [1.0, 3.0])
def test_slerp_constant_angular_speed(scale_b):
    a, b = walk_keyframes(2, 2, 32)
    b = b * scale_b  # unequal norms must not break constant angular speed
    path = slerp(a, b, np.linspace(0, 1, 21))
    st = steps(path)
    assert np.max(np.abs(st - st.mean())) < 1e-6
    assert st.sum() == pytest.approx(angle(a, b), abs=1e-6)


def test_slerp_norm_stays_between_endpoint_norms():
    a, b = walk_keyframes(3, 2, 32)
    b_eq = b * np.linalg.norm(a) / np.linalg.norm(b)
    norms = np.linalg.norm(slerp(a, b_eq, np.linspace(0, 1, 50)).astype(np.float64), axis=1)
    assert np.allclose(norms, np.linalg.norm(a), rtol=1e-6)
    norms = np.linalg.norm(slerp(a, 2 * b, np.linspace(0, 1, 50)).astype(np.float64), axis=1)
    lo, hi = sorted([np.linalg.norm(a), 2 * np.linalg.norm(b)])
    assert norms.min() >= lo * (1 - 1e-6) and norms.max() <= hi * (1 + 1e-6)


def test_slerp_equals_textbook_formula_for_equal_norms():
    a, b = walk_keyframes(4, 2, 8).astype(np.float64)
    b = b * np.linalg.norm(a) / np.linalg.norm(b)
    t = np.linspace(0, 1, 9)[:, None]
    om = np.arccos(np.dot(a, b) / np.dot(a, a))
    ref = (np.sin((1 - t) * om) * a + np.sin(t * om) * b) / np.sin(om)
    assert np.allclose(slerp(a, b, t[:, 0]), ref, atol=1e-5)


def test_slerp_parallel_and_antiparallel_fall_back_to_lerp():
    a = walk_keyframes(5, 1, 8)[0]
    t = np.linspace(0, 1, 5)
    for b in (2 * a, -a):
        out = slerp(a, b, t)
        assert np.all(np.isfinite(out))
        lerp = (1 - t[:, None]) * a.astype(np.float64) + t[:, None] * b.astype(np.float64)
        assert np.allclose(out, lerp, atol=1e-6)


def test_slerp_rejects_mismatched_vectors():
    with pytest.raises(UserError, match="same length"):
        slerp(np.ones(3), np.ones(4), 0.5)


# ---------------------------------------------------------------- easing


@pytest.mark.parametrize("name", EASINGS)
def test_ease_endpoints_and_monotone(name):
    assert ease(name, 0.0) == 0.0 and ease(name, 1.0) == 1.0
    v = ease(name, np.linspace(0, 1, 101))
    assert np.all(np.diff(v) >= 0)


def test_ease_formulas():
    t = np.linspace(0, 1, 11)
    assert np.array_equal(ease("ease-out-sine", t), np.sin(t * np.pi / 2))
    assert np.allclose(ease("smoothstep", t), 3 * t**2 - 2 * t**3, atol=1e-15)


def test_ease_unknown_lists_choices():
    with pytest.raises(UserError, match="ease-in-out-sine, linear, ease-out-sine, smoothstep"):
        ease("bounce", 0.5)
    with pytest.raises(UserError, match="'sine' is now called 'ease-out-sine'"):
        ease("sine", 0.5)


def _step_sizes(path: np.ndarray) -> np.ndarray:
    """How far the latent moves between consecutive frames."""
    return np.linalg.norm(np.diff(path.astype(np.float64), axis=0), axis=1)


@pytest.mark.parametrize("interp", ["slerp", "lerp"])
def test_the_default_easing_has_no_jump_in_speed_at_a_keyframe(interp):
    """Across keyframe k (frame k*m) the steps just before and just after are both small: the speed goes
    to zero and comes back smoothly. ease-out-sine (the article's) arrives slowly and leaves at full speed."""
    from pipeline.latents import DEFAULT_EASE

    m = 30
    keys = walk_keyframes(5, 4, 32)
    for name in (DEFAULT_EASE, "smoothstep"):
        steps = _step_sizes(walk_path(keys, 3 * m + 1, ease=name, interp=interp))
        typical = steps.mean()
        for k in (1, 2):
            before, after = steps[k * m - 1], steps[k * m]
            assert before < 0.15 * typical and after < 0.15 * typical, (name, k, before, after)
            assert max(before, after) / min(before, after) < 1.5  # symmetric: no jump
    steps = _step_sizes(walk_path(keys, 3 * m + 1, ease="ease-out-sine", interp=interp))
    before, after = steps[m - 1], steps[m]
    assert after > 20 * before  # the lurch the default avoids


# ---------------------------------------------------------------- walks


def test_keyframes_are_numpy_pcg64_normals():
    k = walk_keyframes(0, 4, 8)
    ref = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
    assert k.dtype == np.float32 and np.array_equal(k, ref)
    # Pinned values of PCG64 seed 0: if numpy ever changed its stream, every old
    # render would silently change; this catches it.
    assert np.allclose(k[0, :3], [0.12573022, -0.13210486, 0.64042265], atol=1e-7)


@pytest.mark.parametrize("interp", ["slerp", "cubic", "lerp"])
@pytest.mark.parametrize("loop", [False, True])
def test_walk_path_deterministic(interp, loop):
    keys = walk_keyframes(7, 4, 16)
    p1 = walk_path(keys, 37, loop=loop, ease="ease-out-sine", interp=interp)
    p2 = walk_path(walk_keyframes(7, 4, 16), 37, loop=loop, ease="ease-out-sine", interp=interp)
    assert p1.dtype == np.float32 and p1.shape == (37, 16)
    assert p1.tobytes() == p2.tobytes()
    assert not np.array_equal(p1, walk_path(walk_keyframes(8, 4, 16), 37, loop=loop, interp=interp))


@pytest.mark.parametrize("interp", ["slerp", "cubic", "lerp"])
@pytest.mark.parametrize("ease_name", EASINGS)
def test_walk_passes_through_keyframes_exactly(interp, ease_name):
    keys = walk_keyframes(3, 4, 16)
    m = 6
    path = walk_path(keys, 3 * m + 1, ease=ease_name, interp=interp)
    assert np.array_equal(path[0], keys[0]) and np.array_equal(path[-1], keys[-1])
    for j in range(4):
        assert np.array_equal(path[j * m], keys[j])
    loop = walk_path(keys, 4 * m, loop=True, ease=ease_name, interp=interp)
    for j in range(4):
        assert np.array_equal(loop[j * m], keys[j])


@pytest.mark.parametrize("k", [2, 3, 9])
def test_lerp_article_timing_keyframes_on_every_30th_frame_constant_steps(k):
    """The article's videos: 30 frames per transition, straight lines at constant speed. With K keyframes,
    frames = 30*(K-1)+1 puts keyframe i at frame 30*i, and every step within a segment is the same."""
    keys = walk_keyframes(21, k, 32)
    m = 30
    path = walk_path(keys, m * (k - 1) + 1, interp="lerp", ease="linear").astype(np.float64)
    assert path.shape == (m * (k - 1) + 1, 32)
    for i in range(k):
        assert np.allclose(path[m * i], keys[i], rtol=0, atol=1e-6)
    for i in range(k - 1):
        seg = path[m * i : m * (i + 1) + 1]
        d = np.diff(seg, axis=0)  # [30, Z]
        expected = (keys[i + 1].astype(np.float64) - keys[i]) / m
        assert np.allclose(d, expected[None, :], rtol=0, atol=1e-6)  # constant velocity: straight, same speed
        mid = path[m * i + m // 2]
        assert np.allclose(mid, (keys[i].astype(np.float64) + keys[i + 1]) / 2, atol=1e-6)  # the straight line


def test_lerp_loop_article_timing():
    keys = walk_keyframes(22, 4, 16)
    m = 30
    path = walk_path(keys, m * 4, loop=True, interp="lerp").astype(np.float64)
    for i in range(4):
        assert np.allclose(path[m * i], keys[i], atol=1e-6)
    closed = np.concatenate([path[3 * m:], path[:1]])  # keyframe 3 -> 0 across the seam
    assert np.allclose(np.diff(closed, axis=0), (keys[0].astype(np.float64) - keys[3]) / m, atol=1e-6)


def test_walk_not_looping_endpoints_exact_with_uneven_frames():
    keys = walk_keyframes(9, 5, 8)
    path = walk_path(keys, 23)
    assert np.array_equal(path[0], keys[0]) and np.array_equal(path[-1], keys[-1])


def test_loop_seam_step_equals_the_other_steps():
    keys = same_norm(walk_keyframes(11, 3, 32))
    n = 30
    path = walk_path(keys, n, loop=True).astype(np.float64)
    assert not np.array_equal(path[-1], path[0])  # no duplicated frame at the seam
    last_segment = path[2 * n // 3:]  # frames on keyframe 2 -> 0, then the seam
    closed = np.concatenate([last_segment, path[:1]])
    dist = np.linalg.norm(np.diff(closed, axis=0), axis=1)
    assert np.max(np.abs(dist - dist.mean())) < 1e-5 * dist.mean()
    ang = steps(closed)
    assert np.max(np.abs(ang - ang.mean())) < 1e-6


def test_loop_frame_n_would_be_frame_zero():
    # Sampling the same loop twice as densely puts the old frames on the even
    # indices: the path is a periodic function of time sampled at i / n.
    keys = walk_keyframes(12, 3, 16)
    coarse = walk_path(keys, 9, loop=True, ease="smoothstep")
    fine = walk_path(keys, 18, loop=True, ease="smoothstep")
    assert np.array_equal(fine[::2], coarse)


def test_cubic_is_smooth_where_slerp_turns():
    keys = walk_keyframes(13, 4, 16)
    m = 200

    def turn_at_keyframes(path):
        d = np.diff(path.astype(np.float64), axis=0)  # velocity per step
        return [angle(d[j * m - 1], d[j * m]) for j in (1, 2)]

    assert max(turn_at_keyframes(walk_path(keys, 3 * m + 1, interp="cubic"))) < 0.05
    assert min(turn_at_keyframes(walk_path(keys, 3 * m + 1, interp="slerp"))) > 0.3


def test_cubic_norm_does_not_collapse():
    keys = walk_keyframes(14, 5, 64)
    path = walk_path(keys, 81, loop=True, interp="cubic")
    kn = np.linalg.norm(keys, axis=1)
    norms = np.linalg.norm(path.astype(np.float64), axis=1)
    assert norms.min() > 0.9 * kn.min() and norms.max() < 1.1 * kn.max()


def test_single_keyframe_and_single_frame():
    keys = walk_keyframes(1, 1, 4)
    assert np.array_equal(walk_path(keys, 5), np.repeat(keys, 5, axis=0))
    two = walk_keyframes(1, 2, 4)
    assert np.array_equal(walk_path(two, 1, loop=True), two[:1])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_frames=0), "number of frames"),
        (dict(n_frames=1), "at least 2 frames"),
        (dict(n_frames=10, ease="bounce"), "unknown easing"),
        (dict(n_frames=10, interp="spline"), "unknown interpolation"),
    ],
)
def test_walk_path_errors(kwargs, match):
    with pytest.raises(UserError, match=match):
        walk_path(walk_keyframes(0, 3, 4), **kwargs)


def test_walk_rejects_bad_keyframes():
    with pytest.raises(UserError, match=r"\[K, z_dim\]"):
        walk_path(np.zeros(4), 10)
    with pytest.raises(UserError, match="NaN"):
        walk_path(np.full((2, 4), np.nan), 10)
    with pytest.raises(UserError, match="seed"):
        walk_keyframes(-1, 2, 4)


# ---------------------------------------------------------------- class transitions


def test_class_path_endpoints_and_order():
    lat = walk_keyframes(21, 10, 8)
    order = [3, 1, 4]
    m = 8
    path = class_path(lat, order, 2 * m + 1, ease="ease-out-sine")
    assert path.shape == (2 * m + 1, 8)
    assert [np.array_equal(path[j * m], lat[c]) for j, c in enumerate(order)] == [True] * 3
    # Straight lines between class latents (lerp), linear ease: the midpoint frame.
    mid = class_path(lat, order, 2 * m + 1)[m // 2]
    assert np.allclose(mid, (lat[3] + lat[1]) / 2, atol=1e-6)
    looped = class_path(lat, order, 3 * m, loop=True)
    assert [np.array_equal(looped[j * m], lat[c]) for j, c in enumerate(order)] == [True] * 3
    assert not np.array_equal(looped[-1], lat[3])  # ends one step before returning


def test_class_path_errors():
    lat = walk_keyframes(21, 10, 8)
    with pytest.raises(UserError, match="class 10 is out of range"):
        class_path(lat, [0, 10], 5)
    with pytest.raises(UserError, match="at least 2 classes"):
        class_path(lat, [4], 5)


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("0-9", list(range(10))),
        ("3,1,4", [3, 1, 4]),
        ("0-9,0", list(range(10)) + [0]),
        (" 9-7 , 2 ", [9, 8, 7, 2]),
    ],
)
def test_parse_classes(spec, expected):
    assert parse_classes(spec) == expected


@pytest.mark.parametrize(
    "spec, match",
    [
        ("", "empty"),
        ("a,b", "bad class list"),
        ("0-10", "out of range"),
        ("3,12", "out of range"),
        ("-1,2", "bad class list"),
        ("5", "at least 2"),
        ("4,4", "at least 2"),
    ],
)
def test_parse_classes_errors(spec, match):
    with pytest.raises(UserError, match=match):
        parse_classes(spec)


# ---------------------------------------------------------------- keyframe files


@pytest.mark.parametrize("spec, expected", [
    ("8,6,4,2,0,1,3,5,7", [8, 6, 4, 2, 0, 1, 3, 5, 7]),
    ("1,4,6,9,4,5,6,2", [1, 4, 6, 9, 4, 5, 6, 2]),
    ("0-3", [0, 1, 2, 3]),
    ("8,8", [8, 8]),  # a digit may repeat: two different real eights
])
def test_parse_digits(spec, expected):
    assert parse_digits(spec) == expected


@pytest.mark.parametrize("spec, match", [
    ("", "empty digit list"),
    ("8", "at least 2 digits"),
    ("a,1", "bad digit list"),
    ("3,12", "digit 12 in '3,12' is out of range"),
])
def test_parse_digits_errors(spec, match):
    with pytest.raises(UserError, match=match) as err:
        parse_digits(spec)
    assert "\n" not in str(err.value)


def test_digit_keyframes_pick_successive_examples_and_wrap():
    labels = np.array([0, 0, 0, 1, 1, 2], dtype=np.int64)  # three 0s, two 1s, one 2
    latents = np.arange(6 * 3, dtype=np.float32).reshape(6, 3)
    keys, rows = digit_keyframes([0, 1, 0, 2, 1, 1, 2, 0, 0], latents, labels)
    assert rows.tolist() == [0, 3, 1, 5, 4, 3, 5, 2, 0]
    assert keys.dtype == np.float32 and np.array_equal(keys, latents[rows])


def test_digit_keyframes_without_bank_or_digit_is_one_line():
    with pytest.raises(UserError, match="stores no single-digit encodings.*--classes.*trained by this version") as e:
        digit_keyframes([1, 2], None, None, source="checkpoint old")
    assert "checkpoint old" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(UserError, match="no encoding of digit 7"):
        digit_keyframes([1, 7], np.zeros((2, 3), np.float32), np.array([1, 2]))


def test_load_keyframes_round_trip(tmp_path):
    keys = np.random.default_rng(0).standard_normal((3, 8))
    np.save(tmp_path / "k.npy", keys)
    got = load_keyframes(tmp_path / "k.npy", z_dim=8)
    assert got.dtype == np.float32 and np.array_equal(got, keys.astype(np.float32))


def test_load_keyframes_errors(tmp_path):
    f = tmp_path / "k.npy"
    with pytest.raises(UserError, match="does not exist"):
        load_keyframes(f)
    f.write_text("not numpy")
    with pytest.raises(UserError, match="not a readable .npy"):
        load_keyframes(f)
    np.save(f, np.zeros(8))
    with pytest.raises(UserError, match=r"shape \(8,\)"):
        load_keyframes(f)
    np.save(f, np.zeros((0, 8)))
    with pytest.raises(UserError, match="K >= 1"):
        load_keyframes(f)
    np.save(f, np.zeros((2, 8)))
    with pytest.raises(UserError, match="z_dim 8 but the checkpoint's generator takes 6"):
        load_keyframes(f, z_dim=6)
    np.save(f, np.array([[1.0, np.inf]]))
    with pytest.raises(UserError, match="NaN or infinite"):
        load_keyframes(f)
    np.save(f, np.zeros((2, 8), dtype=bool))
    with pytest.raises(UserError, match="real numbers"):
        load_keyframes(f)
    z = tmp_path / "k.npz"
    np.savez(z, a=np.zeros((2, 8)))
    with pytest.raises(UserError, match="npz archive"):
        load_keyframes(z)
    with pytest.raises(UserError, match=str(f.name)):
        load_keyframes(f)


def test_repeat_keyframes_times_the_walk_as_the_articles_sampler():
    """Each transition renders both its ends: 9 keyframes at 30 per transition -> 240 frames, keyframe i+1 on
    frames 30i+29 and 30(i+1), constant steps of 1/29 of a transition in between."""
    rng = np.random.default_rng(0)
    keys = rng.standard_normal((9, 32)).astype(np.float32)
    path = walk_path(keys, 240, interp="lerp", repeat_keyframes=True).astype(np.float64)
    assert path.shape == (240, 32)
    assert np.allclose(path[0], keys[0], atol=1e-6) and np.allclose(path[-1], keys[-1], atol=1e-6)
    for i in range(8):
        seg = path[30 * i:30 * i + 30]
        assert np.allclose(seg[0], keys[i], atol=1e-6) and np.allclose(seg[-1], keys[i + 1], atol=1e-6)
        steps = np.diff(seg, axis=0)
        assert np.allclose(steps, (keys[i + 1] - keys[i]) / 29.0, atol=1e-5)
    # frames that do not divide evenly: the earlier transitions take one more
    path = walk_path(keys[:4], 8, interp="lerp", repeat_keyframes=True)
    firsts = [0, 3, 6]  # counts 3, 3, 2
    for k, f in enumerate(firsts):
        assert np.allclose(path[f], keys[k], atol=1e-6)
    assert np.allclose(path[2], keys[1], atol=1e-6) and np.allclose(path[5], keys[2], atol=1e-6)
    with pytest.raises(UserError, match="at least 8 frames"):
        walk_path(keys, 5, interp="lerp", repeat_keyframes=True)
