"""Where cppn-video keeps its per-user cache (downloaded data, compiled kernels)."""
from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """$XDG_CACHE_HOME/cppn-video, else ~/.cache/cppn-video (the XDG base-directory convention)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cppn-video"
