"""Streaming video output (H.264 MP4, GIF, PNG frames) through imageio-ffmpeg's ffmpeg, written atomically
(published with its sidecar by pipeline.provenance)."""
from __future__ import annotations

import errno
import os
import queue
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from pipeline.atomic import check_replaceable, remove, temp_sibling
from pipeline.errors import UserError
from pipeline.provenance import publish, sidecar_path

FORMATS = ("mp4", "gif", "png")
_SUFFIX_FORMATS = {".mp4": "mp4", ".gif": "gif"}
FRAME_NAME = "frame_{:06d}.png"  # PNG sequences: frame_000000.png, frame_000001.png, ...
_FRAME_GLOB = "frame_*.png"
_STDERR_LINES = 12  # how much of ffmpeg's stderr a VideoError shows
_PROBE_TIMEOUT_S = 30.0  # a two-frame encode takes well under a second; this only catches hangs
_WAKE_S = 0.1  # the writer thread looks at least this often whether it was asked to stop
# ffmpeg taking longer than this to accept one frame, or to finish after the last, is hung (x264's slowest
# preset needs seconds per 3240 px frame, and its lookahead some dozens of frames at the end).
STALL_TIMEOUT_S = 600.0


class VideoError(UserError):
    """ffmpeg is missing, cannot encode what was asked, or failed while encoding."""


# ---------------------------------------------------------------- checks (before rendering)


def output_format(path, fmt: str | None = None) -> str:
    """The format to write: `fmt` if given, else from the suffix (.mp4, .gif; a directory -> png)."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise UserError(f"unknown video format {fmt!r}; choose one of: {', '.join(FORMATS)}")
        return fmt
    path = Path(path)
    if path.is_dir() or path.suffix == "":
        return "png"
    found = _SUFFIX_FORMATS.get(path.suffix.lower())
    if found is None:
        raise UserError(
            f"cannot tell the video format of {path} from its suffix; "
            "name it .mp4 or .gif, or give a directory for PNG frames"
        )
    return found


def check_video_size(size, fmt: str = "mp4") -> tuple[int, int]:
    """Validate a (width, height) frame size for `fmt`; returns it as ints."""
    try:
        width, height = size
    except (TypeError, ValueError):
        raise UserError(f"size must be (width, height), got {size!r}") from None
    for v in (width, height):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise UserError(f"width and height must be positive integers, got {width!r}x{height!r}")
    width, height = int(width), int(height)
    from pipeline.scene.preflight import check_format

    check_format(width, height, fmt)
    return width, height


def _is_frame_dir(path: Path) -> bool:
    """True when path is a directory holding nothing but an earlier PNG frame sequence."""
    return path.is_dir() and all(p.is_file() and p.match(_FRAME_GLOB) for p in path.iterdir())


def check_writable(path, fmt: str | None = None) -> None:
    """Raise UserError (one line) unless an output could be written at `path`."""
    path = Path(path)
    fmt = output_format(path, fmt)
    parent = path.absolute().parent
    if not parent.exists():
        raise UserError(f"output directory {parent} does not exist; create it or choose another output path")
    if not parent.is_dir():
        raise UserError(f"{parent} is not a directory; choose another output path")
    if fmt == "png":
        if path.exists() and not _is_frame_dir(path):
            raise UserError(
                f"{path} exists and is not a PNG frame directory from an earlier run; "
                "remove it or choose another output path"
            )
    elif path.is_dir():
        raise UserError(f"output {path} is a directory; give a file name such as {path / ('video.' + fmt)}")
    check_replaceable(path, folder_ok=fmt == "png")  # never a device, FIFO or socket at the target
    check_replaceable(sidecar_path(path))
    # os.access would lie when running as root or on read-only mounts: try it.
    # The probe file goes in `finally`: a Ctrl-C or SIGTERM landing between its creation and its removal (a
    # signal test caught one) must not leave it beside the output.
    probe_file = temp_sibling(path, "writetest")
    ours = True
    try:
        try:
            fd = os.open(probe_file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except OSError as e:
            ours = e.errno != errno.EEXIST  # a random name taken by another file: never remove that one
            raise UserError(f"cannot write to {parent} ({e.strerror}); choose a writable output path") from None
        os.close(fd)
    finally:
        if ours:
            try:
                os.unlink(probe_file)
            except OSError:  # never created (unwritable or read-only folder): nothing to remove
                pass


def _check_fps(fps) -> str:
    """Validate fps (> 0; a ratio such as "30000/1001" stays exact) and format it for ffmpeg."""
    from pipeline.scene.timeline import fps_text

    return fps_text(fps)


def _check_crf(crf) -> None:
    if isinstance(crf, bool) or not isinstance(crf, (int, float, np.integer, np.floating)) or not 0 <= crf <= 51:
        raise UserError(f"crf must be between 0 and 51 (lower is better quality; 18 is near transparent), got {crf!r}")


# ---------------------------------------------------------------- ffmpeg


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary that imageio-ffmpeg ships (or IMAGEIO_FFMPEG_EXE)."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as e:
        raise VideoError(f"ffmpeg not found ({e}); reinstall imageio-ffmpeg or set IMAGEIO_FFMPEG_EXE") from None


def encoder_thread_args(fmt: str, threads: int | None) -> list[str]:
    """ffmpeg output options that hold one encoder to `threads` cores (None: x264's own default, 1.5x every
    core, which oversubscribes a box running several encoders or a renderer beside it). For MP4 both the
    encoder's frame threads and its lookahead threads are capped; GIF's encoder is single-threaded already."""
    if threads is None:
        return []
    n = int(threads)
    if isinstance(threads, bool) or n < 1:
        raise ValueError(f"encoder threads must be at least 1, got {threads!r}")
    args = ["-threads", str(n), "-filter_threads", "1"]
    if fmt == "mp4":
        args += ["-x264-params", f"threads={n}:lookahead-threads={max(1, n // 4)}"]
    return args


def _ffmpeg_command(fmt: str, size, fps: str, crf, preset: str, lossless: bool, out: Path,
                    palette_image: Path | None = None, threads: int | None = None) -> list[str]:
    """palette_image: frames come as RGB (a palette applied), and a GIF takes its colours from this image.
    threads: the encoder's thread budget (encoder_thread_args)."""
    width, height = size
    colour = palette_image is not None
    cmd = [
        ffmpeg_exe(), "-hide_banner", "-nostats", "-loglevel", "warning", "-y",
        # Raw 8-bit gray frames on stdin (a third of the bytes of RGB, no colour conversion on our side), or
        # RGB ones when a palette colours them.
        "-f", "rawvideo", "-pix_fmt", "rgb24" if colour else "gray", "-s", f"{width}x{height}", "-framerate", fps,
        "-i", "pipe:0",
    ]
    if colour and fmt == "gif":
        cmd += ["-i", str(palette_image)]
    cmd += ["-an"] + encoder_thread_args(fmt, threads)
    if fmt == "mp4" and colour:
        if lossless:
            # libx264rgb at qp 0 keeps the RGB bytes exactly (tests, segment joins)
            cmd += ["-c:v", "libx264rgb", "-preset", str(preset), "-qp", "0", "-pix_fmt", "rgb24"]
        else:
            # RGB -> yuv420p with the BT.709 matrix and limited range that the stream is tagged with (swscale's
            # default matrix would be BT.601, shifting every hue a little)
            cmd += ["-c:v", "libx264", "-preset", str(preset), "-crf", str(crf),
                    "-vf", "scale=out_color_matrix=bt709:out_range=tv,format=yuv420p", "-pix_fmt", "yuv420p",
                    "-color_range", "tv", "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
                    "-bsf:v", "h264_metadata=colour_primaries=1:transfer_characteristics=1:matrix_coefficients=1"
                              ":video_full_range_flag=0"]
        cmd += ["-movflags", "+faststart", "-f", "mp4", str(out)]
    elif fmt == "gif" and colour:
        # The frames hold only the palette's 256 colours, so the palette image is the GIF's exact global palette:
        # no palettegen pass over the whole video, no dithering, and it streams.
        cmd += ["-filter_complex", "[0:v][1:v]paletteuse=dither=none", "-loop", "0", "-f", "gif", str(out)]
    elif fmt == "mp4":
        cmd += ["-c:v", "libx264", "-preset", str(preset)]
        if lossless:
            # 4:0:0 gray at qp 0 decodes back to the identical bytes (tests rely on
            # it), but plays in few players (not Safari/QuickTime): opt-in only.
            cmd += ["-qp", "0", "-pix_fmt", "gray"]
        else:
            # yuv420p + tagged BT.709 limited range: what every player (and Safari)
            # plays. We pass the exact size: no scaler and no macro-block padding,
            # so 1080x1080 stays 1080x1080. The h264_metadata filter writes all four
            # tags into the stream's VUI; it edits headers only, never pixels. The
            # encoder's own -colorspace/-color_range options are left out on purpose:
            # with them swscale converts gray through a colour matrix and rounds
            # chroma to 127 (a faint cyan) and grey levels by one; without them gray
            # -> yuv420p is exact (Y = 16 + 219 g / 255, U = V = 128; test_video).
            cmd += [
                "-crf", str(crf), "-pix_fmt", "yuv420p",
                "-bsf:v", "h264_metadata=colour_primaries=1:transfer_characteristics=1:matrix_coefficients=1"
                          ":video_full_range_flag=0",
            ]
        # faststart moves the index to the front so browsers play while downloading.
        cmd += ["-movflags", "+faststart", "-f", "mp4", str(out)]
    elif fmt == "gif":
        # GIF is always palette-based; for gray frames the gif encoder's `gray`
        # input writes a 256-level gray palette, which holds every gray value
        # exactly: no palettegen pass, no dithering, and it streams. Frame delays
        # are whole centiseconds, so 30 fps plays at 1/0.03 = 33.3 fps.
        cmd += ["-pix_fmt", "gray", "-loop", "0", "-f", "gif", str(out)]
    else:
        raise ValueError(f"ffmpeg does not write format {fmt!r}")
    return cmd


def stderr_tail(text: str, n: int = _STDERR_LINES) -> str:
    """The last n lines of ffmpeg's stderr, indented; ffmpeg names the cause first and then
    prints a cascade of consequences, so the first error line is kept even when older."""
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return "  (ffmpeg printed nothing)"
    shown = lines[-n:]
    first_error = next((ln for ln in lines if "error" in ln.lower()), None)
    if first_error is not None and first_error not in shown:
        shown = [first_error, "..."] + shown[1:]
    return "\n".join("  " + ln for ln in shown)


def probe(fmt: str, size, fps=30, crf=18, preset: str = "medium", lossless: bool = False, palette=None) -> None:
    """Check, in about a second, that `fmt` can be written at `size` with these settings.

    Encodes two frames to a throwaway file with the same ffmpeg command a render will
    use, so a missing binary or encoder, a bad preset or an impossible size fails
    before an hour of rendering rather than after. Raises VideoError.
    """
    fmt = output_format("", fmt or "mp4")
    width, height = check_video_size(size, fmt)
    fps_s = _check_fps(fps)
    frames = np.zeros((2, height, width), dtype=np.uint8)
    frames[1] = np.arange(width, dtype=np.uint8)[None, :]  # two different frames
    if fmt == "png":
        try:
            import imageio.v3 as iio

            iio.imwrite("<bytes>", frames[1], extension=".png")
        except Exception as e:  # any failure of the PNG plugin is the same answer
            raise VideoError(f"cannot write PNG frames ({e}); reinstall imageio and pillow") from None
        return
    _check_crf(crf)
    with tempfile.TemporaryDirectory(prefix="cppn-video-probe-") as tmp:
        out = Path(tmp) / f"probe.{fmt}"
        palette_image = None
        if palette is not None:
            import imageio.v3 as iio

            palette_image = Path(tmp) / "palette.png"
            iio.imwrite(palette_image, palette.lut.reshape(16, 16, 3), extension=".png")
            frames = palette.apply(frames)
        cmd = _ffmpeg_command(fmt, (width, height), fps_s, crf, preset, lossless, out, palette_image)
        try:
            res = subprocess.run(
                cmd, input=frames.tobytes(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                timeout=_PROBE_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            raise VideoError(f"ffmpeg did not finish a two-frame {fmt} test encode in {_PROBE_TIMEOUT_S:.0f} s") from None
        except OSError as e:
            raise VideoError(f"cannot run ffmpeg {cmd[0]} ({e.strerror}); reinstall imageio-ffmpeg") from None
        if res.returncode != 0 or not out.is_file() or out.stat().st_size == 0:
            raise VideoError(
                f"ffmpeg cannot encode {fmt} at {width}x{height} (preset {preset!r}, crf {crf}); "
                f"exit code {res.returncode}, its last lines:\n"
                + stderr_tail(res.stderr.decode("utf-8", "replace"))
            )
        check_output(out, out, fmt, width, height, 2)  # an encoder that exits 0 after writing junk: now, not after


def check_output(tmp, path, fmt: str, width: int, height: int, frames: int) -> None:
    """Read the finished file `tmp` back (container, video track, frame size, frame count: pipeline.container,
    no decoding) before it is published as `path`; raises VideoError when it is not what was sent."""
    from pipeline.container import output_problem

    problem = output_problem(tmp, fmt, width, height, frames)
    if problem:
        raise VideoError(f"ffmpeg reported success, but the {fmt} it wrote for {Path(path).name} does not read "
                         f"back: {problem}; nothing was published (reinstall imageio-ffmpeg, or set "
                         f"IMAGEIO_FFMPEG_EXE to a working ffmpeg)")


# ---------------------------------------------------------------- the writer


class VideoWriter:
    """Streams uint8 gray frames to an MP4, GIF or PNG sequence; see `open_writer`.

    `write` copies the frames into a bounded queue and returns at once; a background
    thread feeds them to ffmpeg (or PNG files), so rendering the next batch overlaps
    encoding this one. Errors in that thread re-raise in the caller at the next
    `write` or at `close`. The output appears at `path` only when `close` succeeds;
    `abort` (or an exception inside `with`) kills ffmpeg and removes the temp output.
    """

    def __init__(self, path, size, fps=30, fmt=None, crf=18, preset="medium", lossless=False, queue_batches=2,
                 stall_timeout: float = STALL_TIMEOUT_S, palette=None, before_publish=None, threads=None):
        self.path = Path(path)
        # before_publish(temp file, frames): runs on the finished temp output before it is read back and published
        # (jobs.render.soundtrack_hook adds a soundtrack there)
        self.before_publish = before_publish
        self.palette = palette  # scene.palette.Palette: grey frames in, RGB frames out
        self.fmt = output_format(self.path, fmt)
        self.width, self.height = check_video_size(size, self.fmt)
        fps_s = _check_fps(fps)
        if self.fmt == "mp4":
            _check_crf(crf)
        check_writable(self.path, self.fmt)
        self.frames_written = 0  # frames accepted by write() so far
        self._encoded = 0  # frames handed to ffmpeg / written as PNG by the thread
        self._error: BaseException | None = None
        self._aborting = False
        self._closed = False
        self._finished = False
        self.stall_timeout = float(stall_timeout)
        self._last_progress = time.monotonic()
        self._busy = False  # the thread is inside a write to ffmpeg's stdin
        self._proc: subprocess.Popen | None = None
        self._stderr = None
        # Each queued item is a batch [N, H, W]. At most queue_batches wait here (plus
        # the one the thread is writing), so memory stays bounded when the encoder is
        # slower than the renderer: write() then blocks until a slot frees up.
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, int(queue_batches)))
        self._tmp = temp_sibling(self.path)
        self._palette_dir = None
        if self.fmt == "png":
            os.mkdir(self._tmp)
        else:
            palette_image = None
            if palette is not None:
                self._palette_dir = tempfile.TemporaryDirectory(prefix="cppn-video-palette-")
                palette_image = Path(self._palette_dir.name) / "palette.png"
                import imageio.v3 as iio

                iio.imwrite(palette_image, palette.lut.reshape(16, 16, 3), extension=".png")
            cmd = _ffmpeg_command(self.fmt, (self.width, self.height), fps_s, crf, preset, lossless, self._tmp,
                                  palette_image, threads)
            self.command = cmd  # what ran (tests read the thread budget from it)
            # stderr goes to an anonymous file: a pipe nobody reads could fill and
            # deadlock ffmpeg, and the file keeps everything for the error message.
            self._stderr = tempfile.TemporaryFile()
            try:
                # Its own process group: a terminal's Ctrl-C reaches us, and we stop ffmpeg (abort), instead
                # of ffmpeg dying first and the render failing with a broken pipe.
                self._proc = subprocess.Popen(
                    cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._stderr, process_group=0
                )
            except OSError as e:
                self._stderr.close()
                raise VideoError(f"cannot run ffmpeg {cmd[0]} ({e.strerror}); reinstall imageio-ffmpeg") from None
        self._thread = threading.Thread(target=self._run, name="video-writer", daemon=True)
        self._thread.start()

    # -- context manager
    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False

    # -- background thread
    def _run(self) -> None:
        while True:
            # A timed wait, not a bare get(): a stop signal raises KeyboardInterrupt in the main thread at any
            # bytecode, also inside the queue's Condition.notify between taking this thread's waiter and
            # waking it, and then no later put() wakes it (abort's join waited out its 10 s: a segment worker
            # stopped by its parent took 10 s to exit). abort() sets _aborting first, so this ends within
            # one timeout of it however the wakeup went.
            try:
                batch = self._queue.get(timeout=_WAKE_S)
            except queue.Empty:
                if self._aborting:
                    return
                continue
            if batch is None:
                return
            if self._error is not None or self._aborting:
                _release(batch)
                continue  # keep draining so a blocked write() can return
            try:
                if _is_lease(batch):  # a renderer's pinned slot (render.host_ring): its copy done, then piped
                    batch.wait()
                    self._sink(batch.array)
                else:
                    self._sink(batch)
            except BaseException as e:  # reported to the caller, never lost in the thread
                if self._aborting:
                    continue  # abort() killed ffmpeg on purpose; nothing to report
                try:
                    self._error = self._wrap_error(e)
                except BaseException:
                    self._error = e
            finally:
                _release(batch)  # the slot goes back to the renderer once its bytes are in the pipe

    def _sink(self, batch: np.ndarray) -> None:
        if self.palette is not None:
            batch = self.palette.apply(batch)  # [N, H, W, 3]
        if self._proc is not None:
            # The whole batch in one write of its contiguous bytes (no per-frame loop); _busy and
            # _last_progress show a stall as before (a batch is seconds of x264 work at most, the timeout minutes).
            self._last_progress = time.monotonic()
            self._busy = True
            self._proc.stdin.write(memoryview(np.ascontiguousarray(batch)).cast("B"))
            self._busy = False
            self._last_progress = time.monotonic()
            self._encoded += len(batch)
            return
        import imageio.v3 as iio

        for frame in batch:
            # Encode in memory and write the bytes ourselves: imageio writing to a file on a full disk
            # prints an "Exception ignored ... Traceback" block from its plugin's finaliser.
            data = iio.imwrite("<bytes>", frame, extension=".png")
            with open(self._tmp / FRAME_NAME.format(self._encoded), "wb") as fh:
                fh.write(data)
            self._encoded += 1

    def _stderr_text(self) -> str:
        if self._stderr is None or self._stderr.closed:
            return ""
        fd = self._stderr.fileno()
        # pread leaves the shared file offset alone (ffmpeg writes through a dup of it).
        return os.pread(fd, os.fstat(fd).st_size, 0).decode("utf-8", "replace")

    def _ffmpeg_failed(self, what: str) -> VideoError:
        rc = self._proc.returncode if self._proc is not None else None
        status = f"killed by signal {-rc}" if rc is not None and rc < 0 else f"exit code {rc}"
        return VideoError(
            f"ffmpeg failed {what} {self.path.name} ({status}); its last lines:\n" + stderr_tail(self._stderr_text())
        )

    def _wrap_error(self, e: BaseException) -> BaseException:
        if isinstance(e, UserError):
            return e
        if self._proc is not None and isinstance(e, OSError):
            # A broken pipe means ffmpeg exited: its stderr says why.
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            return self._ffmpeg_failed("while encoding")
        if isinstance(e, OSError):
            return VideoError(f"cannot write PNG frames to {self.path} ({e.strerror or e})")
        return e

    def _check_stalled(self) -> None:
        """An encoder that stopped reading (hung, stopped with SIGSTOP) would block us forever: give up."""
        waited = time.monotonic() - self._last_progress
        if self._proc is not None and self._busy and waited > self.stall_timeout:
            self.abort()
            raise VideoError(f"ffmpeg stopped reading frames for {waited:.0f} s while writing {self.path.name}; "
                             f"it was stopped and nothing was written (is the machine overloaded?)")

    def _raise_pending(self) -> None:
        if self._error is not None:
            err = self._error
            self.abort()
            raise err

    # -- public API
    def write(self, frames, copy: bool = True) -> None:
        """Queue frames [H, W] or [N, H, W] uint8 for encoding and return (blocking only while the queue
        is full). The frames are copied, so the caller may reuse its buffer; copy=False hands a C-contiguous
        uint8 array over instead (the caller never touches it again: a renderer's fresh batch), saving the copy.
        A lease (render.host_ring.HostBatch: .array, .wait(), .release()) is queued as it is: the thread waits for
        its copy, pipes its bytes and releases it (also when the write fails or the writer aborts)."""
        if not _is_lease(frames):
            return self._put(frames, frames, copy)
        try:
            self._put(frames.array, frames, False)
        except BaseException:
            frames.release()
            raise

    def _put(self, frames, item, copy: bool) -> None:
        """write(): check `frames` and queue `item` (the frames, or the lease they belong to)."""
        if self._closed:
            raise ValueError(f"writer for {self.path} is already closed")
        arr = np.asarray(frames)
        if arr.dtype != np.uint8:
            raise ValueError(f"frames must be uint8, got {arr.dtype}")
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3 or arr.shape[1:] != (self.height, self.width):
            raise ValueError(f"frames must be [N, {self.height}, {self.width}] (or [H, W]), got {list(np.shape(frames))}")
        if arr.shape[0] == 0:
            _release(item)
            return
        self._raise_pending()
        if item is not frames:
            arr = item  # the lease: its slot is C-contiguous and never copied
        elif copy or not arr.flags.c_contiguous:
            arr = np.array(arr, dtype=np.uint8, order="C", copy=True)
        while True:
            try:
                # Short timeouts: if the thread failed while we wait, say so now.
                self._queue.put(arr, timeout=0.1)
                break
            except queue.Full:
                self._raise_pending()
                self._check_stalled()
        self.frames_written += len(arr)

    def finish(self) -> None:
        """Wait until every frame is encoded and ffmpeg has exited; the output stays at its temp name until
        close(). Raises VideoError on failure (the temp output is then removed)."""
        if self._finished:
            return
        try:
            self._queue.put(None)
            while self._thread.is_alive():
                self._thread.join(timeout=0.1)
                self._check_stalled()
            self._raise_pending()
            if self.frames_written == 0:
                raise VideoError(f"no frames were written to {self.path}; nothing to save")
            if self._proc is not None:
                try:
                    self._proc.stdin.close()
                except OSError:
                    pass  # ffmpeg already gone; its exit code and stderr say why
                try:
                    self._proc.wait(timeout=self.stall_timeout)
                except subprocess.TimeoutExpired:
                    raise VideoError(f"ffmpeg did not finish {self.path.name} within {self.stall_timeout:.0f} s "
                                     f"of its last frame; it was stopped and nothing was written") from None
                if self._proc.returncode != 0:
                    raise self._ffmpeg_failed("finishing")
        except BaseException:
            self.abort()
            raise
        self._finished = True

    def close(self, sidecar: dict | None = None) -> Path:
        """Finish encoding and move the output into place; returns its path. Raises VideoError on failure.

        sidecar: the JSON record to write beside the video (see publish): the two appear together or, on
        any failure, neither changes.
        """
        if self._closed:
            return self.path
        try:
            self.finish()
            if self.fmt == "png" and self.path.exists() and not _is_frame_dir(self.path):
                # check_writable refused such a folder; check again, it may have changed since
                raise UserError(f"{self.path} now holds files other than PNG frames; not replacing it")
            if self.before_publish is not None:
                self.before_publish(self._tmp, self.frames_written)
            check_output(self._tmp, self.path, self.fmt, self.width, self.height, self.frames_written)
            publish(self._tmp, self.path, sidecar)
        except BaseException:
            self.abort()
            raise
        self._closed = True
        self._release()
        return self.path

    def _release(self) -> None:
        if self._stderr is not None:
            self._stderr.close()
        if self._palette_dir is not None:
            self._palette_dir.cleanup()

    def _drain(self) -> None:
        try:
            while True:
                _release(self._queue.get_nowait())
        except queue.Empty:
            pass

    def abort(self) -> None:
        """Stop now: kill ffmpeg, stop the thread, remove the temp output. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._aborting = True
        self._drain()
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()  # unblocks a thread stuck writing to its stdin
        if self._proc is not None:
            self._proc.wait()
        while True:  # wake the thread; the queue was just drained, so this fits at once
            try:
                self._queue.put_nowait(None)
                break
            except queue.Full:  # another thread wrote meanwhile
                self._drain()
        self._thread.join(timeout=10)
        if self._proc is not None:
            try:
                self._proc.stdin.close()
            except OSError:
                pass
        remove(self._tmp)
        self._release()


def _is_lease(batch) -> bool:
    """A renderer's host slot (render.host_ring.HostBatch) rather than an array of frames."""
    return hasattr(batch, "release") and hasattr(batch, "wait")


def _release(batch) -> None:
    if batch is not None and _is_lease(batch):
        batch.release()


def open_writer(
    path,
    size: tuple[int, int],
    fps=30,
    fmt: str | None = None,
    crf=18,
    preset: str = "medium",
    lossless: bool = False,
    queue_batches: int = 2,
    stall_timeout: float = STALL_TIMEOUT_S,
    palette=None,
    before_publish=None,
    threads: int | None = None,
) -> VideoWriter:
    """Start writing a video of `size` = (width, height) gray frames at `path`.

    fmt: "mp4" (H.264 yuv420p, `crf`, `preset`; `lossless=True` for exact gray
    frames that few players play), "gif", or "png" (a directory of frame_NNNNNN.png);
    None picks it from the suffix (a directory or no suffix -> png). Use as a context
    manager; call `probe` first to fail fast on a bad format or settings. An ffmpeg that accepts
    no frame for `stall_timeout` seconds (or does not exit that long after the last) is stopped
    and the write fails with VideoError. threads: the encoder's thread budget (None: x264's default).
    """
    return VideoWriter(path, size, fps=fps, fmt=fmt, crf=crf, preset=preset, lossless=lossless,
                       queue_batches=queue_batches, stall_timeout=stall_timeout, palette=palette,
                       before_publish=before_publish, threads=threads)


__all__ = [
    "FORMATS",
    "VideoError",
    "VideoWriter",
    "check_video_size",
    "check_writable",
    "ffmpeg_exe",
    "open_writer",
    "output_format",
    "probe",
]
