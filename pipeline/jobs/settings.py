"""What a render job is asked to do: the settings records of walk, still and compare (no torch here, so the
CLI can build its options and help without importing it)."""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Callable

from pipeline.errors import UserError, about
from pipeline.scene.preflight import check_frames, check_keyframes, preflight
from pipeline.scene.camera import check_camera
from pipeline.scene.canvas import parse_canvas
from pipeline.scene.pacing import PACES
from pipeline.scene.timeline import Timeline, build_timeline, parse_fps, to_frames
from pipeline.latents import DEFAULT_EASE, INTERPOLATIONS, check_ease, parse_classes, parse_digits, parse_seeds

DEFAULT_CHECKPOINT = "e24"  # bundled checkpoint used when none is given

Progress = Callable[[int], None]  # called with the number of frames just finished


@dataclass(frozen=True)
class CameraSettings:
    """The camera every render kind shares (pipeline.scene.camera): each a constant, a ramp over the video or
    keyframes in the scene's time syntax; None leaves the still's framing."""
    zoom: str | float | None = None    # 2 (exactly --scale / 2), a geometric ramp 1:64, or "0s=1, 4s=16, 6s=2"
    pan: str | None = None             # the frame's centre in plane units: 0.5,-1, 0,0:2,1 or "0s=(0,0), 4s=(1,2)"
    rotate: str | float | None = None  # degrees counterclockwise about the centre: 90, 0:360 or "0s=0, 4s=90"


@dataclass(frozen=True)
class VideoSettings(CameraSettings):
    """What every video render shares (walks and comparisons): length, latent path, timing and encoding. The
    subclasses add their frame geometry; presets and the CLI see the fields flat."""
    frames: int | None = None      # frames in the video (None: from duration or times, else DEFAULT_FRAMES)
    fps: float | str = 30.0        # frames per second: 24, 29.97 or an exact ratio such as "30000/1001"
    duration: str | None = None    # the video's length as time: "12s", "1:30", "240" (frames); not with frames
    times: str | None = None       # each keyframe's time, "0,2s,5s,8s" (the first 0); the rest of the walk timed
                                   # around them
    hold: str | None = None        # how long every keyframe dwells ("0.5s"), or one value per keyframe
                                   # ("1s,0,0.5s"); held frames are exactly the keyframe
    pace: str = "uniform"          # "uniform": re-time each transition so the picture changes evenly (measured
                                   # on a small proxy render, docs/PERFORMANCE.md "Even pacing"); "none": equal
                                   # path steps (what renders made before pacing existed)
    palette: str | None = None     # colour map for the grey levels: viridis, magma, inferno, ... (scene.palette)
    colors: str | None = None      # a gradient of your own instead: "#0b1d3a,#f5e6c8"
    seed: int = 0                  # seed of the default keyframes (which stored digits, or which random latents)
    keyframes: int = 8             # keyframes visited by the walk when no other path is given
    random_keyframes: bool = False  # those keyframes are random latents N(0, I); default: the checkpoint's stored
                                   # encodings of real digits in a seeded order (latents.bank_keyframe_rows),
                                   # which show a digit far more often (random latents where it stores none)
    seeds: str | None = None       # "3,17,42" or "0-31,40": one keyframe per seed (still --seed N shows keyframe N)
    frames_per_transition: int | None = None  # set: frames = this x transitions (+1 unless loop/repeat)
    loop: bool = False             # return to the first keyframe (seamless loop, no duplicated frame)
    ease: str = DEFAULT_EASE       # easing within each segment (see latents.ease): ease-in-out-sine, linear,
                                   # ease-out-sine (the article's sin(t*pi/2)), smoothstep
    interp: str = "slerp"          # slerp (great circles), lerp (straight lines, the article's videos) or
                                   # cubic (smooth spline through keyframes); class transitions always lerp
    repeat_keyframes: bool = False  # each transition renders both its ends, as the article's sampler did (a
                                   # keyframe shows twice in a row; frames = per-transition x transitions)
    scale: float | None = 8.0      # coordinate range [-scale, scale]; larger zooms out (training used 8); None:
                                   # the smallest (>= 8) that keeps every keyframe's ink off the frame's outer 2%
                                   # (jobs.framing; the CLI's default), recorded as the number chosen
    invert: bool = False           # dark strokes on white, as the article's "normal" renders
    classes: str | None = None     # class order such as "0-9": transitions between class means (in a
                                   # comparison, each panel with its own checkpoint's)
    keyframes_file: str | None = None  # .npy [K, z_dim] keyframes instead of random ones
    digits: str | None = None      # digit sequence such as "8,6,4,2,0,1,3,5,7": keyframes are the checkpoint's
                                   # stored encodings of single real digits (the article's keyframes); the
                                   # i-th occurrence of a digit takes its i-th stored encoding
    images: str | None = None      # "a.png,b.png": keyframes are these pictures of digits projected into the
                                   # checkpoint (jobs.projected; a comparison's panels each into their own)
    projection_steps: int | None = None  # Adam steps of that projection (None: project.fit.STEPS)
    crf: int = 18                  # H.264 quality (lower is better; 0 is lossless but plays in few players)
    preset: str = "medium"         # x264 speed/size trade-off
    lossless: bool = False         # exact gray frames (tests, segment joins); few players can play it
    fmt: str | None = None         # mp4, gif or png; None picks from the output's suffix
    device: str = "auto"           # auto, cpu or cuda[:N] (every panel of a comparison renders there)
    path: str = "auto"             # render path: auto, cpu-fused, triton, torch, reference
    batch: int | None = None       # frames per render batch (None: by frame size); never changes the bytes
    encoders: int | str = "auto"   # x264 encoders one renderer feeds (contiguous ranges joined losslessly, each
                                   # with its share of the cores; jobs.encoders): "auto" = cores // 4 on a GPU,
                                   # 1 on the CPU; lossless output is the same bytes for any count
    audio: str | None = None       # soundtrack (WAV, MP3, FLAC, OGG, M4A, ...): muxed into the MP4 as AAC; without
                                   # frames/duration the video is as long as the track (pipeline.audio)
    audio_offset: str | None = None  # where in the track the video starts: "12s", "1:30", frames
    sync: str | None = None        # "beats": keyframes on the track's beats; "onsets": on its strongest onsets
    beats_per_keyframe: int = 1    # with sync: a keyframe every N beats (or onsets)
    react: str | None = None       # "zoom=0.2,speed=0.5": onsets pulse the zoom, loudness speeds the walk


    DEFAULT_FRAMES = 600

    def rendered_interp(self) -> str:
        """The path between keyframes as rendered: class transitions always lerp (latents.class_path)."""
        return "lerp" if self.classes is not None else self.interp

    def length(self) -> int | None:
        """The video's frame count as the settings give it (frames, or duration at fps), None when neither."""
        if self.frames is not None and self.duration is not None:
            raise UserError(f"--frames {self.frames} and --duration {self.duration} both set the video's length; "
                            f"give one", key="duration")
        if self.duration is not None:
            return to_frames(self.duration, self.fps, "--duration", "duration")
        if self.frames is None and self.audio is not None and self.frames_per_transition is None:
            from pipeline.audio.music import track_frames

            return track_frames(self)  # as long as the soundtrack
        return self.frames

    def synced_times(self, n_keys: int) -> list[int] | None:
        """Keyframe frames on the soundtrack's beats or onsets (--sync), None when not synced."""
        if self.sync is None or self.audio is None:
            return None
        from pipeline.audio.music import keyframe_times

        return keyframe_times(self, n_keys, self.length() or self.DEFAULT_FRAMES)

    def timeline(self, n_keys: int) -> Timeline | None:
        """Keyframe times and holds in frames, or None for the classic equal time per transition."""
        synced = self.synced_times(n_keys)
        if synced is not None:
            return build_timeline(n_keys, self.length(), self.fps, loop=self.loop, times=synced, hold=self.hold)
        if self.times is None and self.hold is None:
            return None
        if self.repeat_keyframes or self.frames_per_transition is not None:
            raise UserError("--times and --hold time the keyframes themselves; leave out --frames-per-transition "
                            "and --repeat-keyframes", key="times" if self.times is not None else "hold")
        return build_timeline(n_keys, self.length() or (None if self.times is not None else self.DEFAULT_FRAMES),
                              self.fps, loop=self.loop, times=self.times, hold=self.hold)


@dataclass(frozen=True)
class WalkSettings(VideoSettings):
    """Everything that determines a walk video's frames and encoding (written to its sidecar)."""
    size: int | str = 1080         # frame size in pixels: 1080 (square) or "1920x1080"
    workers: int = 1               # frame segments rendered in parallel processes (see render_walk_segmented);
                                   # how it runs, never what it makes

    def n_keyframes(self) -> int:
        """How many keyframes the path visits (read from the settings alone, no checkpoint needed)."""
        if self.seeds is not None:
            return len(parse_seeds(self.seeds))
        if self.digits is not None:
            return len(parse_digits(self.digits))
        if self.classes is not None:
            return len(parse_classes(self.classes))
        if self.images is not None:
            from pipeline.jobs.projected import image_paths

            return len(image_paths(self.images))
        if self.keyframes_file is not None:
            import numpy as np

            try:
                return int(np.load(self.keyframes_file, mmap_mode="r").shape[0])
            except (OSError, ValueError, IndexError) as e:
                raise UserError(f"cannot read --keyframes-file {self.keyframes_file} ({e})") from None
        return self.keyframes

    def canvas(self) -> tuple[int, int]:
        """(width, height) of a frame."""
        return parse_canvas(self.size)

    def resolved(self) -> "WalkSettings":
        """These settings with `frames` worked out (from frames_per_transition, duration or the keyframes'
        times); resolving twice gives the same."""
        m = self.frames_per_transition
        if m is not None and self.duration is not None:
            raise UserError("--frames-per-transition and --duration both set the video's length; give one",
                            key="duration")
        if m is None:
            synced = self.synced_keyframes()
            if synced is not None:
                return synced.resolved()
            timeline = self.timeline(self.n_keyframes())
            frames = timeline.frames if timeline is not None else self.length()
            return replace(self, frames=self.DEFAULT_FRAMES if frames is None else frames, duration=None)
        if m < 1:
            raise UserError(f"--frames-per-transition must be at least 1, got {m}")
        transitions = self.n_keyframes() - 1 + (1 if self.loop else 0)
        if transitions < 1:
            raise UserError("--frames-per-transition needs at least 2 keyframes (or one with --loop)")
        frames = m * transitions + (0 if self.loop or self.repeat_keyframes else 1)
        return replace(self, frames=frames)

    def synced_keyframes(self) -> "WalkSettings | None":
        """With --sync and the default keyframes (no path chosen): these settings with as many keyframes as the
        track offers places for; None otherwise."""
        if self.sync is None or self.audio is None or any(
                v is not None for v in (self.seeds, self.digits, self.classes, self.keyframes_file, self.images)):
            return None
        from pipeline.audio.music import sync_count

        count = sync_count(self, self.length() or self.DEFAULT_FRAMES)
        return None if count is None or count == self.keyframes else replace(self, keyframes=count)

    def validate(self) -> None:
        """Raise UserError (its `key` naming the setting) for settings that cannot make a video."""
        from pipeline.audio.music import check_music

        check_music(self)  # first: the soundtrack sets the length and keyframe times checked below
        chosen = [name for name, value in (("digits", self.digits), ("classes", self.classes),
                                           ("keyframes_file", self.keyframes_file), ("seeds", self.seeds),
                                           ("images", self.images))
                  if value is not None]
        if len(chosen) > 1:
            raise UserError(f"{' and '.join('--' + c.replace('_', '-') for c in chosen)} each choose the latent "
                            f"path; give only one of --digits, --classes, --keyframes-file, --seeds, --images",
                            key=chosen[1])
        if self.projection_steps is not None and not 0 <= self.projection_steps <= 10_000:
            raise UserError(f"projection_steps must be 0..10000, got {self.projection_steps}",
                            key="projection_steps")
        with about("seeds"):
            if self.seeds is not None:
                parse_seeds(self.seeds)
        with about("digits"):
            if self.digits is not None:
                parse_digits(self.digits)  # a bad sequence fails before any checkpoint is read
        with about("classes"):
            if self.classes is not None:
                parse_classes(self.classes)
        if self.keyframes < 1 and not chosen:
            raise UserError(f"--keyframes must be at least 1, got {self.keyframes}", key="keyframes")
        check_keyframes(self.n_keyframes(), key=chosen[0] if chosen else "keyframes")
        parse_fps(self.fps)
        with about("frames_per_transition" if self.frames_per_transition is not None else "frames"):
            check_frames(self.resolved().frames, key=None)
        # the frame (a comparison's whole frame: layout.compare_geometry), and the memory of its path
        preflight(*self.canvas(), frames=self.resolved().frames)
        if self.pace not in PACES:
            raise UserError(f"unknown --pace {self.pace!r}; choose one of {', '.join(PACES)}", key="pace")
        from pipeline.scene.palette import palette_of

        palette_of(self)
        with about("ease"):
            check_ease(self.ease)
        if self.interp not in INTERPOLATIONS:
            raise UserError(f"unknown interpolation --interp {self.interp!r}; choose one of "
                            f"{', '.join(INTERPOLATIONS)}", key="interp")
        if self.batch is not None and self.batch < 1:
            raise UserError(f"--batch must be at least 1, got {self.batch}", key="batch")
        if isinstance(getattr(self, "workers", 1), bool) or getattr(self, "workers", 1) < 1:
            raise UserError(f"--workers must be at least 1, got {self.workers}", key="workers")
        with about("encoders"):
            from pipeline.jobs.encoders import parse_encoders

            parse_encoders(self.encoders)
        check_camera(self)


@dataclass(frozen=True)
class StillSettings(CameraSettings):
    size: int | str = 3240         # image size in pixels: 3240 (square) or "3840x2160"
    seed: int = 0                  # seed of the latent (ignored with digit)
    digit: int | None = None       # render this digit instead of a random latent: a stored encoding of a
                                   # single real digit when the checkpoint has them, else the class mean
    sample: int = 0                # with digit: which stored encoding of it (wraps around the ones stored)
    class_means: bool = False      # with digit: render the class mean even when encodings are stored
    image: str | None = None       # a picture of a digit: the still renders its projection into the checkpoint
                                   # (jobs.projected)
    projection_steps: int | None = None  # Adam steps of that projection (None: project.fit.STEPS)
    scale: float | None = 8.0      # coordinate range [-scale, scale]; None: the automatic margin (as a walk's)
    invert: bool = False           # dark strokes on white
    device: str = "auto"           # auto, cpu or cuda[:N]
    path: str = "auto"             # render path
    palette: str | None = None     # colour map (see VideoSettings.palette)
    colors: str | None = None      # or a gradient of your own, "#0b1d3a,#f5e6c8"

    def canvas(self) -> tuple[int, int]:
        return parse_canvas(self.size)

    def validate(self) -> None:
        preflight(*self.canvas(), fmt="png")
        from pipeline.scene.palette import palette_of

        palette_of(self)
        if self.digit is not None and not 0 <= self.digit <= 9:
            raise UserError(f"--digit must be 0..9, got {self.digit}", key="digit")
        if self.sample < 0:
            raise UserError(f"--sample must be at least 0, got {self.sample}", key="sample")
        if self.image is not None and self.digit is not None:
            raise UserError("--image and --digit each choose the still's latent; give one", key="image")
        if self.projection_steps is not None and not 0 <= self.projection_steps <= 10_000:
            raise UserError(f"projection_steps must be 0..10000, got {self.projection_steps}",
                            key="projection_steps")
        check_camera(self)


@dataclass(frozen=True)
class CompareSettings(VideoSettings):
    """Everything that determines a comparison video's frames and encoding (written to its sidecar): the
    shared walk, and how the panels are laid out and captioned."""
    frames: int | None = None      # frames in the video (default 300, shorter than a walk's: every panel renders)
    panel_size: int | str | None = None  # each checkpoint's panel in pixels: 1080 or "1080x1350" (even for MP4);
                                   # None: as large as fits 1920 wide, at most 1080 (layout.auto_panel: 640 for 3)
    DEFAULT_FRAMES = 300
    labels: tuple[str, ...] | None = None  # one caption per checkpoint (or "a,b,c"); None: name and what it is
    layout: str | None = None      # "CxR": C columns by R rows of panels; None: all panels in one row

    def walk(self) -> WalkSettings:
        """The per-panel walk these settings describe (a panel is a walk video of panel_size frames)."""
        shared = {f.name: getattr(self, f.name) for f in fields(VideoSettings)}
        if self.length() is None and self.times is None and self.frames_per_transition is None:
            shared["frames"] = self.DEFAULT_FRAMES
        # an automatic panel is square: its walk's framing and pacing are the same at any side >= 48
        return WalkSettings(**shared, size=self.panel_size if self.panel_size is not None else 1080)

    def check(self, panels: int, fmt: str | None):
        """Everything a comparison of `panels` checkpoints into format `fmt` is refused for before any
        checkpoint loads: the shared walk's settings, the labels, and the whole frame through the preflight
        (size, format, memory) -> its layout.Geometry. render_compare, presets and the CLI all ask here."""
        from pipeline.jobs.layout import compare_geometry

        walk = self.walk()
        walk.validate()
        if panels < 1:
            raise UserError("no checkpoints to compare; give one or more checkpoint files or bundled names")
        if self.labels is not None:
            given = len(self.labels.split(",") if isinstance(self.labels, str) else self.labels)
            if given != panels:
                raise UserError(f"{given} labels were given for {panels} checkpoints; give one label per "
                                f"checkpoint, separated by commas (a preset: a list as long as ckpts)",
                                key="labels")
        with about("layout"):
            return compare_geometry(self.panel_size, self.layout, panels, walk.resolved().frames, fmt)
