"""Run the real entry point (run_cli: one-line errors, exit codes) in this process, as users see it, without
paying a new interpreter and a torch import per call. Signals and child processes still need a real process
(tests/proc_helpers.py)."""
from __future__ import annotations

import io
import signal
import subprocess
import sys
import warnings

from pipeline.cli import cli
from pipeline.cli.common import run_cli
from pipeline.stops import STOP_SIGNALS


def run_main(args: list[str]) -> subprocess.CompletedProcess:
    """`cppn-video ARGS` -> CompletedProcess(returncode, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    saved = (sys.argv, sys.stdout, sys.stderr, {s: signal.getsignal(s) for s in STOP_SIGNALS},
             warnings.formatwarning)
    sys.argv, sys.stdout, sys.stderr = ["cppn-video", *map(str, args)], out, err
    try:
        run_cli(cli)
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv, sys.stdout, sys.stderr = saved[:3]
        for sig, handler in saved[3].items():
            signal.signal(sig, handler)
        warnings.formatwarning = saved[4]
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())
