"""Suite-wide settings: torch on one thread.

The tests run small tensors, where torch's thread pool costs more than it gives, and on a shared 2-core
machine its spinning threads made some test files 20x slower. Code paths with their own threading (the
fused CPU kernel's worker threads, segmented renders) are unaffected.
"""
import signal

import pytest
import torch


def pytest_configure(config):
    """A suite started from a non-interactive shell's background job (`cmd &`, some CI runners) inherits
    SIGINT ignored, and an ignored signal stays ignored across exec: the CLI processes the signal tests start
    would then never see Ctrl-C (Python installs its KeyboardInterrupt handler only where SIGINT is not
    ignored). The tests are about what a user's terminal delivers, so give this process, and through it
    every child, the dispositions a terminal session has. Runs in each xdist worker too."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is signal.SIG_IGN:
            signal.signal(sig, signal.SIG_DFL)


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# The files that take longest (seconds of test time on 2 quiet Zen 2 cores, 2026-12-07), started first: the
# suite hands out one file at a time per worker (pytest-xdist --dist loadfile) in collection order, and
# alphabetically test_signals.py came near the end, so one worker ran it alone while the other sat idle.
# Longest first keeps both cores busy to the end (pyproject's --no-loadscope-reorder keeps xdist from
# reordering files by their number of tests). A file not named here keeps its place after them.
SLOW_FIRST = ["test_signals.py", "test_farm.py", "test_long_runs.py", "test_batch.py", "test_triton.py",
              "test_train.py", "test_segments.py", "test_memory.py", "test_serve_browser.py", "test_heap.py",
              "test_serve_api.py", "test_native.py", "test_preflight.py", "test_video.py", "test_audio.py"]


def pytest_collection_modifyitems(session, config, items):
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: keeps the order within files
