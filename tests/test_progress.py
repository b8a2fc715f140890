"""Honest time: the estimate and ETA leave out the warm-up, agree with the rate, and a plain line is printed
regularly where no terminal shows the bar (a fake clock drives it all)."""
import io

from rich.console import Console

from pipeline.cli import common


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def _run(steps, total, terminal=True):
    """steps: (seconds, frames) per batch after progress(0); returns the console's text."""
    clock, buf = FakeClock(), io.StringIO()
    console = Console(file=buf, width=80, force_terminal=terminal, color_system=None)
    with common.progress_bar("rendering a.mp4", total, unit="frames", console=console, clock=clock) as advance:
        advance(0)
        for seconds, frames in steps:
            clock.t += seconds
            advance(frames)
    return buf.getvalue().replace("\x1b[2K", "").replace("\r", "\n"), clock.t


def test_the_estimate_leaves_out_the_warm_up_and_is_within_2x():
    # a first batch of 4 frames that takes 40 s (compilation, warm-up), then 1 s a frame: 40 + 596 s in all
    steps = [(40.0, 4)] + [(4.0, 4)] * 149
    text, real = _run(steps, 600)
    (line,) = [ln for ln in text.splitlines() if ln.startswith("estimate:")]
    assert line == "estimate: 10 min 36 s for 600 frames (1.00 s per frame after warm-up)"
    assert real / 2 <= 636 <= real * 2 and real == 636  # exact here; the old first-batch estimate said 1 h 40 min


def test_the_eta_agrees_with_the_rate():
    clock, buf = FakeClock(), io.StringIO()
    console = Console(file=buf, width=80, force_terminal=True, color_system=None)
    with common.progress_bar("rendering a.mp4", 300, unit="frames", console=console, clock=clock) as advance:
        advance(0)
        clock.t += 30.0  # warm-up batch
        advance(10)
        for _ in range(5):
            clock.t += 20.0  # 0.5 frames/s
            advance(10)
    text = buf.getvalue().replace("\x1b[2K", "").replace("\r", "\n")
    last = [ln for ln in text.splitlines() if "frames/s" in ln][-1]
    assert "60/300" in last and "0.50 frames/s" in last and "ETA 0:08:00" in last, last  # 240 frames / 0.5


def test_off_a_terminal_a_plain_line_comes_at_least_every_10_s():
    steps = [(3.0, 1)] * 40  # 120 s of work, a frame every 3 s
    text, _ = _run(steps, 40, terminal=False)
    lines = [ln for ln in text.splitlines() if ln.startswith("rendering a.mp4: ")]
    done = [int(ln.split(": ")[1].split("/")[0]) for ln in lines]
    gaps = [3 * (b - a) for a, b in zip([0] + done, done)]  # seconds between lines (a frame is 3 s)
    assert len(lines) >= 120 / common.PLAIN_EVERY_S and max(gaps) <= common.PLAIN_EVERY_S, text
    assert "frames/s" in lines[-1] and "ETA" in lines[1] and "/40 frames (" in lines[0]
