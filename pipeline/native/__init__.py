"""Compile small C kernels at run time and load them with ctypes (cached on disk per source, flags and CPU)."""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

# gnu11, not c11: ISO mode turns off FMA contraction, which made the render kernel ~25% slower here.
FLAGS = ["-O3", "-march=native", "-shared", "-fPIC", "-std=gnu11"]
INCLUDE = Path(__file__).resolve().parent  # shared headers (cppn_vec.h)
_lock = threading.Lock()
_loaded: dict[tuple, ctypes.CDLL] = {}
_failed: dict[tuple, str] = {}


class KernelUnavailable(RuntimeError):
    """No C compiler, or the kernel failed to compile or load: callers fall back to a torch path."""


def cache_dir() -> Path:
    root = os.environ.get("CPPN_VIDEO_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "cppn-video")
    return Path(root) / "kernels"


def _cpu_tag() -> str:
    """-march=native binds the binary to the CPU model: part of the cache key for shared home dirs."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith(("model name", "flags")):
                    return hashlib.sha256(line.encode()).hexdigest()[:8]
    except OSError:
        pass
    return "cpu"


def compile_and_load(name: str, source: str, defines: dict[str, int] | None = None) -> ctypes.CDLL:
    """The shared library built from C `source` with `-D` defines; compiled once, then loaded from the cache.

    Raises KernelUnavailable (remembered per process, so a missing compiler is tried once).
    """
    defs = [f"-D{k}={v}" for k, v in sorted((defines or {}).items())]
    memo = (name, source, tuple(defs))
    with _lock:
        if memo in _loaded:
            return _loaded[memo]
        if memo in _failed:
            raise KernelUnavailable(_failed[memo])
        try:
            lib = _build(name, source, defs)
        except KernelUnavailable as exc:
            _failed[memo] = str(exc)
            raise
        _loaded[memo] = lib
        return lib


def _build(name: str, source: str, defs: list[str]) -> ctypes.CDLL:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        raise KernelUnavailable("no C compiler found (set CC)")
    headers = "".join(p.read_text() for p in sorted(INCLUDE.glob("*.h")))  # a header change rebuilds
    key = hashlib.sha256("\0".join([source, headers, cc, sys.platform, *FLAGS, *defs]).encode()).hexdigest()[:16]
    target = cache_dir() / f"{name}_{key}-{_cpu_tag()}.so"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, src = tempfile.mkstemp(suffix=".c", dir=target.parent)
        with os.fdopen(fd, "w") as fh:
            fh.write(source)
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
        os.close(fd)
        try:
            cmd = [cc, *FLAGS, f"-I{INCLUDE}", *defs, "-o", tmp, src, "-lm"]
            result = subprocess.run(cmd, capture_output=True, text=True)
            if result.returncode != 0:
                raise KernelUnavailable(f"compiling the {name} kernel failed: {result.stderr.strip()[-500:]}")
            os.replace(tmp, target)  # atomic: a concurrent process sees no file or a whole one
        except OSError as exc:
            raise KernelUnavailable(f"running the C compiler failed: {exc}") from exc
        finally:
            for path in (src, tmp):
                if os.path.exists(path):
                    os.unlink(path)
    try:
        return ctypes.CDLL(str(target))
    except OSError as exc:
        raise KernelUnavailable(f"loading the {name} kernel failed: {exc}") from exc
