"""Suite-wide settings: torch on one thread.

The tests run small tensors, where torch's thread pool costs more than it gives, and on a shared 2-core
machine its spinning threads made some test files 20x slower. Code paths with their own threading (the
fused CPU kernel's worker threads, segmented renders) are unaffected.
"""
import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
