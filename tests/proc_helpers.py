"""Run the CLI as a user would, stop it with a signal, and find every process and temp file it left."""
from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from pipeline.atomic import temp_owner

REPO = Path(__file__).resolve().parents[1]
_TAG = "CPPN_VIDEO_TEST_RUN"


def alive(pid: int) -> bool:
    """True for a live process (not a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def tagged(tag: str) -> list[int]:
    """Live processes started (directly or not) by the run tagged `tag`: the tag is in their environment,
    which children inherit, so ffmpeg in its own process group and workers orphaned by a dead parent count."""
    found = []
    needle = f"{_TAG}={tag}".encode()
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and int(d.name) != os.getpid():
            try:
                if needle in (d / "environ").read_bytes().split(b"\0") and alive(int(d.name)):
                    found.append(int(d.name))
            except OSError:
                pass
    return found


def leftovers(root: Path) -> list[Path]:
    """Temp files and folders (named as pipeline.atomic.temp_sibling names them) anywhere under root."""
    return [p for p in Path(root).rglob(".*") if temp_owner(p.name) is not None]


def stop_cli(args: list[str], ready, how: str, cwd: Path | None = None, timeout: float = 120,
             env: dict | None = None, tag: str | None = None) -> tuple[subprocess.CompletedProcess, list[int]]:
    """Start `cppn-video ARGS`, wait until ready() is true, then stop it: how="sigint" sends SIGINT to the
    whole process group (a terminal's Ctrl-C), "sighup" SIGHUP to it (the terminal or ssh session closed),
    "sigterm" SIGTERM to the main process alone (kill, a scheduler). Returns (the finished process with its stderr, pids of the run still alive 10 s later).
    tag: the run's tag (default a fresh one), for a ready() that looks at the run's processes with tagged()."""
    tag = tag or secrets.token_hex(8)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", _TAG: tag, **(env or {})}
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", *args], cwd=cwd, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                _, err = proc.communicate()
                raise AssertionError(f"the run ended or stalled before it was ready (exit {proc.returncode}):\n{err}")
            time.sleep(0.05)
        if how in ("sigint", "sighup"):
            os.killpg(proc.pid, signal.SIGINT if how == "sigint" else signal.SIGHUP)
        else:
            assert how == "sigterm", how
            proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    deadline = time.monotonic() + 10
    while tagged(tag) and time.monotonic() < deadline:  # multiprocessing's resource tracker exits on its own
        time.sleep(0.1)
    survivors = tagged(tag)
    for pid in survivors:
        os.kill(pid, signal.SIGKILL)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), survivors


def run_interpreted(script: str, timeout: float = 600) -> str:
    """Run a Python script with Triton's interpreter on (TRITON_INTERPRET=1 must be set before triton is
    imported, so in a process of its own), the repository as its argv[1]; returns its stdout, fails on a
    non-zero exit with the end of its stderr."""
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run([sys.executable, "-c", script, str(REPO)], capture_output=True, text=True, env=env,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout
