"""The soundtrack's options (walk, compare, grid) and the line that says what the sound did."""
from __future__ import annotations

import click


def audio_options(f):
    """--audio, --audio-offset, --sync, --beats-per-keyframe, --react (pipeline.audio)."""
    for decorator in reversed([
        click.option("--audio", default=None, metavar="FILE",
                     help="Soundtrack (WAV, MP3, FLAC, OGG, M4A, or a video's sound), muxed into the MP4 as AAC. "
                          "Without --frames/--duration the video is as long as the track."),
        click.option("--audio-offset", default=None, metavar="TIME",
                     help="Start this far into the track: 12s, 1:30 or frames."),
        click.option("--sync", type=click.Choice(["beats", "onsets"]), default=None,
                     help="Put the keyframes on the track's beats (the tempo is found and reported), or on its "
                          "strongest onsets. With the default keyframes there are as many as there are places."),
        click.option("--beats-per-keyframe", type=click.IntRange(min=1), default=1, show_default=True,
                     help="With --sync: a keyframe every N beats (or onsets)."),
        click.option("--react", default=None, metavar="zoom=A,speed=B",
                     help="Let the sound move the picture: zoom=0.2 pulses the camera 20% closer on each onset, "
                          "speed=0.5 lets loudness speed up (and quiet slow down) the walk between keyframes, by "
                          "up to half its mean speed; both smoothed, keyframes stay on their times."),
    ]):
        f = decorator(f)
    return f


def echo_audio(info: dict) -> None:
    """How the sound fits the video, and with --sync the tempo found, one line each."""
    audio = info.get("audio")
    if not audio:
        return
    click.echo(audio["note"])
    if audio.get("sync"):
        if audio.get("tempo_bpm") is None:
            click.echo(f"no beat: {audio.get('problem')}; the keyframes are evenly timed")
        else:
            frames = audio.get("keyframe_frames") or []
            click.echo(f"tempo {audio['tempo_bpm']:.1f} BPM, {len(audio['beats_s'])} beats; {len(frames)} keyframes "
                       f"on the {audio['sync']} (sidecar: audio.beats_s)")
