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
