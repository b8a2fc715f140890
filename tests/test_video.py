"""Video output: MP4/GIF/PNG round trips, exact sizes, atomic writes, ffmpeg cleanup and errors, sidecars."""
import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline.atomic import atomic_path
from pipeline.errors import UserError
from pipeline.video import (
    VideoError,
    check_video_size,
    check_writable,
    open_writer,
    output_format,
    probe,
)
from pipeline.provenance import publish, sidecar_path
from video_helpers import read_video

pytestmark = pytest.mark.filterwarnings("error")

W, H = 64, 48


def moving_frames(n, w=W, h=H):
    """Smooth frames [n, h, w] uint8 with a bright disc that moves: every frame differs."""
    y, x = np.mgrid[0:h, 0:w]
    out = np.empty((n, h, w), dtype=np.uint8)
    for i in range(n):
        cx = w * (0.2 + 0.6 * i / max(n - 1, 1))
        d2 = (x - cx) ** 2 + (y - h / 2) ** 2
        out[i] = np.clip(255 * np.exp(-d2 / (2 * (h / 6) ** 2)), 0, 255).astype(np.uint8)
    return out


def ffmpeg_children():
    """PIDs of live (not zombie) child processes of this test process that run ffmpeg."""
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        return [
            p.pid for p in psutil.Process().children(recursive=True)
            if "ffmpeg" in p.name() and p.status() != psutil.STATUS_ZOMBIE
        ]
    me, found = os.getpid(), []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue  # exited while we looked
        # comm may contain spaces or parens: split after the last ')'.
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
        if int(ppid) == me and "ffmpeg" in comm and state != "Z":
            found.append(int(d.name))
    return found


def pid_alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2] != "Z"


# ---------------------------------------------------------------- round trips


def test_mp4_round_trip(tmp_path):
    frames = moving_frames(9)
    out = tmp_path / "walk.mp4"
    with open_writer(out, (W, H), fps=24, preset="ultrafast") as w:
        w.write(frames[:4])  # a batch
        w.write(frames[4])  # a single frame
        w.write(frames[5:])
        assert w.frames_written == 9
    got = read_video(out)
    assert got.shape == (9, H, W) and got.dtype == np.uint8
    assert all(not np.array_equal(got[i], got[i + 1]) for i in range(8))
    err = np.abs(got.astype(int) - frames.astype(int))
    assert err.mean() < 2.0  # crf 18 on smooth content: close to the input
    assert sorted(os.listdir(tmp_path)) == ["walk.mp4"]  # no temp file left


def test_mp4_1080_is_not_resized_to_1088(tmp_path):
    out = tmp_path / "big.mp4"
    frames = moving_frames(2, 1080, 1080)
    with open_writer(out, (1080, 1080), preset="ultrafast") as w:
        w.write(frames)
    got = read_video(out)
    assert got.shape == (2, 1080, 1080)


def test_mp4_lossless_round_trip_identical(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (4, H, W), dtype=np.uint8)
    out = tmp_path / "exact.mp4"
    with open_writer(out, (W, H), lossless=True, preset="ultrafast") as w:
        w.write(frames)
    assert np.array_equal(read_video(out), frames)


def test_write_copies_the_callers_buffer(tmp_path):
    buf = np.zeros((1, H, W), dtype=np.uint8)
    out = tmp_path / "frames"
    with open_writer(out, (W, H), fmt="png") as w:
        for v in (10, 20, 30):
            buf[:] = v  # a renderer reusing its output buffer
            w.write(buf)
    assert [int(f.mean()) for f in read_video(out)] == [10, 20, 30]


def test_gif_round_trip_exact(tmp_path):
    frames = moving_frames(5)
    out = tmp_path / "clip.gif"
    with open_writer(out, (W + 1, H), fps=10) as w:  # odd sizes are fine for GIF
        w.write(np.pad(frames, ((0, 0), (0, 0), (0, 1))))
    got = read_video(out)
    assert got.shape == (5, H, W + 1)
    # The gray palette holds all 256 levels: GIF keeps gray frames exactly.
    assert np.array_equal(got[:, :, :W], frames)


def test_png_sequence(tmp_path):
    frames = moving_frames(7)
    out = tmp_path / "frames"
    with open_writer(out, (W, H)) as w:  # no suffix -> PNG sequence
        w.write(frames[:3])
        w.write(frames[3:])
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"frame_{i:06d}.png" for i in range(7)]
    assert np.array_equal(read_video(out), frames)
    # Rendering again replaces the earlier sequence (no stale frame_000006.png).
    with open_writer(out, (W, H), fmt="png") as w:
        w.write(frames[:2])
    assert len(list(out.iterdir())) == 2
    assert sorted(os.listdir(tmp_path)) == ["frames"]


def test_png_refuses_a_directory_with_other_files(tmp_path):
    d = tmp_path / "mine"
    d.mkdir()
    (d / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="not a PNG frame directory"):
        open_writer(d, (W, H), fmt="png")
    assert (d / "notes.txt").read_text() == "keep me"


# ---------------------------------------------------------------- interruption and failures


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_interrupted_write_leaves_nothing_and_kills_ffmpeg(tmp_path, exc):
    out = tmp_path / "walk.mp4"
    frames = moving_frames(4)
    with pytest.raises(exc):
        with open_writer(out, (W, H), preset="ultrafast") as w:
            pid = w._proc.pid
            assert pid in ffmpeg_children()
            w.write(frames)
            w.write(frames)
            raise exc("stop")
    assert not out.exists()
    assert os.listdir(tmp_path) == []  # the temp file is gone too
    assert not pid_alive(pid)
    assert ffmpeg_children() == []


@pytest.mark.parametrize("fmt", ["gif", "png"])
def test_interrupted_other_formats_leave_nothing(tmp_path, fmt):
    out = tmp_path / ("clip.gif" if fmt == "gif" else "frames")
    with pytest.raises(RuntimeError):
        with open_writer(out, (W, H), fmt=fmt) as w:
            w.write(moving_frames(3))
            raise RuntimeError("stop")
    assert os.listdir(tmp_path) == []
    assert ffmpeg_children() == []


def test_ffmpeg_failure_shows_its_stderr(tmp_path):
    out = tmp_path / "walk.mp4"
    with pytest.raises(VideoError) as info:
        with open_writer(out, (W, H), preset="no-such-preset") as w:
            for _ in range(20):  # the failure surfaces in write() or at close
                w.write(moving_frames(2))
                time.sleep(0.01)
    msg = str(info.value)
    assert "ffmpeg failed" in msg and "no-such-preset" in msg
    assert "broken pipe" not in msg.lower()
    assert os.listdir(tmp_path) == []
    assert ffmpeg_children() == []


def test_ffmpeg_dying_mid_stream_is_reported_not_a_broken_pipe(tmp_path):
    out = tmp_path / "walk.mp4"
    with pytest.raises(VideoError) as info:
        with open_writer(out, (W, H), preset="ultrafast") as w:
            w.write(moving_frames(2))
            w._proc.kill()
            for _ in range(50):  # the thread's broken pipe re-raises here as a VideoError
                w.write(moving_frames(2))
                time.sleep(0.01)
    assert "ffmpeg failed while encoding walk.mp4 (killed by signal 9)" in str(info.value)
    assert os.listdir(tmp_path) == []
    assert ffmpeg_children() == []


def test_write_returns_while_the_encoder_is_busy_and_the_queue_is_bounded(tmp_path):
    out = tmp_path / "walk.mp4"
    batch = np.repeat(moving_frames(4), 20, axis=0)  # 80 frames, 245 kB: more than a pipe holds
    with open_writer(out, (W, H), preset="ultrafast", queue_batches=2) as w:
        os.kill(w._proc.pid, signal.SIGSTOP)  # an encoder that makes no progress
        try:
            t0 = time.perf_counter()
            for _ in range(3):  # one in the thread (stuck on the pipe), two in the queue
                w.write(batch)
            assert time.perf_counter() - t0 < 2.0  # the caller went back to "rendering"
            fourth = threading.Thread(target=w.write, args=(batch,))
            fourth.start()
            fourth.join(0.5)
            assert fourth.is_alive()  # a full queue blocks: memory stays bounded
        finally:
            os.kill(w._proc.pid, signal.SIGCONT)
        fourth.join()
    assert read_video(out).shape == (4 * 80, H, W)


def test_probe_fails_fast_with_stderr():
    t0 = time.perf_counter()
    with pytest.raises(VideoError, match="invalid preset"):
        probe("mp4", (W, H), preset="no-such-preset")
    assert time.perf_counter() - t0 < 10
    probe("mp4", (W, H), preset="ultrafast")  # a good setting passes
    probe("gif", (W + 1, H))
    probe("png", (W, H))
    assert ffmpeg_children() == []


def test_no_frames_is_an_error(tmp_path):
    out = tmp_path / "empty.mp4"
    with pytest.raises(VideoError, match="no frames"):
        with open_writer(out, (W, H)):
            pass
    assert os.listdir(tmp_path) == []


def test_wrong_frames_are_refused(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        with open_writer(tmp_path / "a.mp4", (W, H)) as w:
            w.write(np.zeros((1, H, W), dtype=np.float32))
    with pytest.raises(ValueError, match=rf"\[N, {H}, {W}\]"):
        with open_writer(tmp_path / "a.mp4", (W, H)) as w:
            w.write(np.zeros((1, W, H), dtype=np.uint8))
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------- input checks


def test_odd_size_refused_before_starting(tmp_path):
    with pytest.raises(UserError, match="even for H.264 yuv420p.*--size such as 1080"):
        open_writer(tmp_path / "a.mp4", (1079, 1080))
    assert os.listdir(tmp_path) == []
    assert check_video_size((65, 49), "gif") == (65, 49)
    for bad in [(0, 10), (-2, 10), (10.0, 10), (10,)]:
        with pytest.raises(UserError):
            check_video_size(bad, "mp4")


def test_unwritable_outputs(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        check_writable(tmp_path / "missing" / "a.mp4")
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(UserError, match="not a directory"):
        open_writer(f / "a.mp4", (W, H))
    with pytest.raises(UserError, match="is a directory"):
        check_writable(tmp_path, "mp4")
    if os.geteuid() != 0:  # root writes anywhere: the permission case needs a user
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        with pytest.raises(UserError, match="cannot write"):
            check_writable(ro / "a.mp4")


def test_output_format():
    assert output_format("a.mp4") == "mp4" and output_format("b.GIF") == "gif"
    assert output_format("frames") == "png" and output_format("x.mp4", "png") == "png"
    with pytest.raises(UserError, match="suffix"):
        output_format("a.avi")
    with pytest.raises(UserError, match="mp4, gif, png"):
        output_format("a.mp4", "webm")


# ---------------------------------------------------------------- helpers


def test_atomic_path(tmp_path):
    target = tmp_path / "still.png"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".png" and tmp != target
        tmp.write_bytes(b"done")
        assert not target.exists()
    assert target.read_bytes() == b"done"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError
    assert target.read_bytes() == b"done"  # the old file survives a failed rewrite
    assert os.listdir(tmp_path) == ["still.png"]


def test_sidecar_round_trip(tmp_path):
    video = tmp_path / "walk.mp4"
    tmp = tmp_path / ".walk.mp4.0123abcd.partial.mp4"
    tmp.write_bytes(b"video")
    keys = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    info = {"seed": np.int64(7), "size": (W, H), "keyframes": keys, "ckpt": Path("a.pt"), "fps": np.float32(30),
            "loss": float("nan"), "epoch": np.float64("inf")}
    assert publish(tmp, video, info) == video
    path = sidecar_path(video)
    assert path == tmp_path / "walk.mp4.json"
    text = path.read_text()
    data = json.loads(text)
    assert list(data) == sorted(data)
    assert data["seed"] == 7 and data["size"] == [W, H] and data["ckpt"] == "a.pt" and data["fps"] == 30.0
    assert data["loss"] is None and data["epoch"] is None  # JSON has no NaN: a sidecar loads anywhere
    assert np.array_equal(np.asarray(data["keyframes"], dtype=np.float32), keys)  # exact for reproduction
    assert sorted(os.listdir(tmp_path)) == ["walk.mp4", "walk.mp4.json"]


def _earlier_output(tmp_path):
    video = tmp_path / "walk.mp4"
    video.write_bytes(b"old video")
    sidecar_path(video).write_text('{"old": true}')
    tmp = tmp_path / ".walk.mp4.0123abcd.partial.mp4"
    tmp.write_bytes(b"new video")
    return video, tmp


def test_publish_failing_sidecar_changes_nothing(tmp_path):
    video, tmp = _earlier_output(tmp_path)
    with pytest.raises(TypeError, match="JSON sidecar"):
        publish(tmp, video, {"what": object()})
    assert video.read_bytes() == b"old video" and sidecar_path(video).read_text() == '{"old": true}'
    assert sorted(os.listdir(tmp_path)) == ["walk.mp4", "walk.mp4.json"]  # the temp output is gone


def test_publish_on_a_full_disk_changes_nothing(tmp_path, monkeypatch):
    import errno

    import pipeline.provenance as video_mod

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    video, tmp = _earlier_output(tmp_path)
    monkeypatch.setattr(video_mod.os, "fsync", full)
    with pytest.raises(OSError, match="No space left"):
        publish(tmp, video, {"new": True})
    assert video.read_bytes() == b"old video" and sidecar_path(video).read_text() == '{"old": true}'
    assert sorted(os.listdir(tmp_path)) == ["walk.mp4", "walk.mp4.json"]


def test_publish_replaces_video_and_sidecar_together(tmp_path):
    video, tmp = _earlier_output(tmp_path)
    publish(tmp, video, {"new": True})
    assert video.read_bytes() == b"new video" and json.loads(sidecar_path(video).read_text()) == {"new": True}
    # Without a sidecar of its own, a new video never keeps the old one's.
    tmp.write_bytes(b"newer")
    publish(tmp, video)
    assert video.read_bytes() == b"newer" and not sidecar_path(video).exists()


def test_close_with_sidecar_writes_both(tmp_path):
    out = tmp_path / "walk.mp4"
    with open_writer(out, (W, H), preset="ultrafast") as w:
        w.write(moving_frames(3))
        w.finish()
        assert not out.exists()  # encoded, but not published yet
        w.close(sidecar={"frames": w.frames_written})
    assert read_video(out).shape == (3, H, W)
    assert json.loads(sidecar_path(out).read_text()) == {"frames": 3}
    assert sorted(os.listdir(tmp_path)) == ["walk.mp4", "walk.mp4.json"]


def test_an_encoder_that_stops_reading_times_out(tmp_path):
    out = tmp_path / "walk.mp4"
    big = np.zeros((40, 256, 256), dtype=np.uint8)  # 2.6 MB: far more than a pipe buffer holds
    t0 = time.monotonic()
    with pytest.raises(VideoError, match="ffmpeg stopped reading frames for .* walk.mp4"):
        with open_writer(out, (256, 256), preset="ultrafast", queue_batches=1, stall_timeout=1.0) as w:
            pid = w._proc.pid
            os.kill(pid, signal.SIGSTOP)  # hung: alive, reading nothing
            for _ in range(10):
                w.write(big)
    assert time.monotonic() - t0 < 20
    assert not pid_alive(pid)
    assert os.listdir(tmp_path) == []


def test_an_encoder_that_never_exits_times_out_at_close(tmp_path):
    out = tmp_path / "walk.mp4"
    with pytest.raises(VideoError, match="did not finish walk.mp4 within 1 s"):
        with open_writer(out, (W, H), preset="ultrafast", stall_timeout=1.0) as w:
            w.write(moving_frames(2))
            time.sleep(0.5)  # the frames are in the pipe
            pid = w._proc.pid
            os.kill(pid, signal.SIGSTOP)
    assert not pid_alive(pid)
    assert os.listdir(tmp_path) == []


def test_ffmpeg_runs_in_its_own_process_group(tmp_path):
    with open_writer(tmp_path / "walk.mp4", (W, H), preset="ultrafast") as w:
        assert os.getpgid(w._proc.pid) == w._proc.pid != os.getpgid(0)  # a terminal's Ctrl-C reaches us, not it
        w.write(moving_frames(2))


def test_png_frames_on_a_full_disk_is_one_clean_error(tmp_path, capfd):
    out = tmp_path / "frames"
    with pytest.raises(VideoError, match="cannot write PNG frames .*No space left on device"):
        with open_writer(out, (W, H), fmt="png") as w:
            (w._tmp / "frame_000001.png").symlink_to("/dev/full")  # the second frame hits a full disk
            for _ in range(20):
                w.write(moving_frames(2))
                time.sleep(0.01)
    assert "Exception ignored" not in capfd.readouterr().err
    assert os.listdir(tmp_path) == []


def test_mp4_colour_tags_are_in_the_stream(tmp_path):
    """BT.709 primaries, transfer and matrix, limited range: read back from the file, not just passed."""
    import subprocess

    from pipeline.video import ffmpeg_exe

    out = tmp_path / "walk.mp4"
    with open_writer(out, (W, H), preset="ultrafast") as w:
        w.write(moving_frames(2))
    res = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(out)], capture_output=True, text=True)
    (video,) = [ln for ln in res.stderr.splitlines() if "Video:" in ln]
    assert "yuv420p(tv, bt709, progressive)" in video, video  # ffmpeg prints one bt709 when all three agree


def test_grey_mp4_decodes_to_neutral_chroma(tmp_path):
    """Grey frames stay grey: every decoded U and V sample is exactly 128 (the encoder's own colour tags made
    swscale round V to 127, a faint cyan), and the grey levels map to 16 + 219 g / 255 within x264's error."""
    import subprocess

    from pipeline.video import ffmpeg_exe

    ramp = np.tile(np.linspace(0, 255, W).round().astype(np.uint8), (2, H, 1))  # [2, H, W], every grey level
    out = tmp_path / "grey.mp4"
    with open_writer(out, (W, H), preset="ultrafast") as w:
        w.write(ramp)
    raw = subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-i", str(out), "-f", "rawvideo", "-pix_fmt", "yuv420p",
                          "pipe:1"], capture_output=True, check=True).stdout
    n = W * H
    planes = np.frombuffer(raw, np.uint8).reshape(2, n * 3 // 2)
    assert (planes[:, n:] == 128).all(), np.unique(planes[:, n:], return_counts=True)
    luma = planes[:, :n].reshape(2, H, W).astype(int)
    assert np.abs(luma - np.round(16 + 219 * ramp.astype(int) / 255)).max() <= 2
