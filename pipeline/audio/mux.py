"""The soundtrack into a finished MP4: the video stream copied (never re-encoded), the sound from its offset as
AAC, cut or padded with silence to the video's exact length. Every writer of an MP4 with --audio calls it on its
temp file before publishing (a one-process render, a segmented one after its lossless join, the farm's), so the
sound costs one stream copy and an AAC encode, whatever rendered the frames."""
from __future__ import annotations

import subprocess
from pathlib import Path

from pipeline.errors import UserError

AAC_BITRATE = "192k"
SAMPLE_RATE = 48000


def mux_command(video: Path, audio: str, offset: float, seconds: float, out: Path) -> list[str]:
    from pipeline.video import ffmpeg_exe

    return [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-y",
            "-i", str(video), "-ss", f"{offset:.6f}", "-i", str(audio),
            "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy",
            "-af", "apad", "-c:a", "aac", "-b:a", AAC_BITRATE, "-ar", str(SAMPLE_RATE),
            "-t", f"{seconds:.6f}", "-movflags", "+faststart", "-f", "mp4", str(out)]


def mux_audio(video: Path, settings, frames: int) -> None:
    """Replace the MP4 `video` (a temp file, not yet published) by itself with settings.audio's sound; raises
    VideoError when ffmpeg fails or the result lacks its sound track (the temp files are removed)."""
    from pipeline.atomic import temp_sibling
    from pipeline.audio.music import soundtrack
    from pipeline.container import mp4_video
    from pipeline.scene.timeline import parse_fps
    from pipeline.video import VideoError, stderr_tail

    snd = soundtrack(settings)
    if snd is None:
        return
    video = Path(video)
    seconds = float(frames / parse_fps(settings.fps))
    out = temp_sibling(video)
    try:
        res = subprocess.run(mux_command(video, snd.path, snd.offset, seconds, out), stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, process_group=0)
        if res.returncode != 0:
            raise VideoError(f"ffmpeg could not add the sound of {snd.path} (exit code {res.returncode}); its last "
                             f"lines:\n" + stderr_tail(res.stderr.decode("utf-8", "replace")))
        tracks = mp4_video(out)["tracks"]
        if tracks != 2:
            raise VideoError(f"the MP4 with the sound of {snd.path} has {tracks} tracks, not 2 (video, sound); "
                             f"nothing was published")
        out.replace(video)
    except BaseException:
        out.unlink(missing_ok=True)
        raise


def check_not_audio(out, settings) -> None:
    """An output never replaces its soundtrack (an input): one line before anything renders."""
    from pipeline.provenance import check_not_input

    audio = getattr(settings, "audio", None)
    if audio is not None:
        try:
            check_not_input(out, [audio])
        except UserError as e:
            raise UserError(str(e), key="audio") from None
