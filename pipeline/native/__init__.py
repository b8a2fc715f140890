"""Compile small C kernels at run time and load them with ctypes (cached on disk per source, flags and CPU).

The cache (`$CPPN_VIDEO_CACHE/kernels`, else `$XDG_CACHE_HOME/cppn-video/kernels`, else
`~/.cache/cppn-video/kernels`) is trusted only as far as it is checked:

- its folder must belong to the user and be writable by nobody else (it is created 0700); otherwise the
  kernel is built in a private temporary folder for this process and the cache is not used;
- each library is recorded with the SHA-256 of the file the compiler wrote (`<lib>.sha256`); a library
  whose bytes differ (corrupted, truncated, replaced) or that has no record is rebuilt, never loaded;
- the key covers the source, headers, compiler command, flags and the CPU: model name *and* feature
  flags, since `-march=native` code from an AVX-512 host dies with SIGILL on one without it.

`CPPN_VIDEO_ISA` picks the instruction set the kernels are built for: `native` (the default: everything this
CPU has), `avx512` (x86-64-v4), `avx2` (x86-64-v3: AVX2 and FMA, what a Zen 2 has) or `x86-64` (SSE2 only,
no FMA). An AVX-512 machine set to `avx2` builds and runs exactly the code an AVX2-only machine would (vector
width and FMA contraction follow the target, so frames and training gradients round as they do there); with
`ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2` torch is limited the same way. An ISA this CPU lacks is
refused (the kernel is unavailable and callers fall back to torch, with the reason), never built and run.

Whenever a kernel cannot be built or loaded, callers fall back to a torch path; a RuntimeWarning says
so once per kernel, with the reason.
"""
from __future__ import annotations

import atexit
import ctypes
import hashlib
import os
import platform
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import warnings
from pathlib import Path

from pipeline.paths import cache_root

# gnu11, not c11: ISO mode turns off FMA contraction, which made the render kernel ~25% slower here.
FLAGS = ["-O3", "-shared", "-fPIC", "-std=gnu11"]
ISA_ENV = "CPPN_VIDEO_ISA"
# instruction set -> (compiler target flag, /proc/cpuinfo flags the CPU needs for it)
ISAS = {
    "native": ("-march=native", ()),
    "avx512": ("-march=x86-64-v4", ("avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl", "avx2", "fma")),
    "avx2": ("-march=x86-64-v3", ("avx2", "fma", "f16c", "bmi1", "bmi2", "movbe")),
    "x86-64": ("-march=x86-64", ("sse2",)),
}
INCLUDE = Path(__file__).resolve().parent  # shared headers (cppn_vec.h)
_CPU_KEYS = ("model name", "flags", "Features", "CPU implementer", "CPU part")  # x86, then ARM
_lock = threading.Lock()
_loaded: dict[tuple, ctypes.CDLL] = {}
_failed: dict[tuple, str] = {}
_private: list[Path] = []  # this process's build folder when the cache folder is not safe to use


class KernelUnavailable(RuntimeError):
    """No C compiler, or the kernel failed to compile or load: callers fall back to a torch path."""


def kernel_cache_dir() -> Path:
    root = os.environ.get("CPPN_VIDEO_CACHE")
    return (Path(root) if root else cache_root()) / "kernels"


def cpu_tag(cpuinfo: str | None = None) -> str:
    """A hash of what `-march=native` depends on: the architecture and the first CPU's model and feature
    lines of /proc/cpuinfo (or of the `cpuinfo` text given)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as fh:
                cpuinfo = fh.read()
        except OSError:
            cpuinfo = platform.processor()
    found: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip() and found:
            break  # the first processor's block is enough
        key, _, value = line.partition(":")
        if key.strip() in _CPU_KEYS:
            found.setdefault(key.strip(), value.strip())
    text = "\n".join([platform.machine(), *(f"{k}:{v}" for k, v in sorted(found.items()))] or [cpuinfo])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The first CPU's feature flags from /proc/cpuinfo (empty when it cannot be read)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as fh:
                cpuinfo = fh.read()
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def isa(cpuinfo: str | None = None) -> str:
    """The instruction set kernels are built for: $CPPN_VIDEO_ISA, else "native".

    Raises KernelUnavailable for an unknown name, a non-x86 machine asked for an x86 level, or a level
    this CPU lacks (building it would die with SIGILL)."""
    name = os.environ.get(ISA_ENV, "").strip().lower() or "native"
    if name not in ISAS:
        raise KernelUnavailable(f"{ISA_ENV}={name!r} is not an instruction set this project builds for; "
                                f"choose one of {', '.join(ISAS)}")
    if name != "native":
        if platform.machine().lower() not in ("x86_64", "amd64"):
            raise KernelUnavailable(f"{ISA_ENV}={name} is an x86-64 level; this machine is {platform.machine()}")
        flags = _cpu_flags(cpuinfo)
        missing = [f for f in ISAS[name][1] if f not in flags]
        if flags and missing:
            raise KernelUnavailable(f"{ISA_ENV}={name} needs CPU features this CPU lacks ({', '.join(missing)})")
    return name


def effective_isa(cpuinfo: str | None = None) -> str:
    """What the kernels' vector code really targets: "avx512", "avx2", "x86-64" (or "native" off x86)."""
    name = isa(cpuinfo)
    if name != "native" or platform.machine().lower() not in ("x86_64", "amd64"):
        return name
    flags = _cpu_flags(cpuinfo)
    for level in ("avx512", "avx2"):
        if all(f in flags for f in ISAS[level][1]):
            return level
    return "x86-64"


def build_flags() -> list[str]:
    """The compiler flags of every kernel: optimisation, the chosen instruction set, shared library."""
    return [*FLAGS, ISAS[isa()][0]]


def compiler() -> list[str]:
    """The C compiler command: $CC split like a shell would ("gcc -m64" works), else cc, gcc or clang."""
    cc = os.environ.get("CC")
    if cc:
        return shlex.split(cc)
    found = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if found is None:
        raise KernelUnavailable("no C compiler found (install gcc or set CC)")
    return [found]


def compile_and_load(name: str, source: str, defines: dict[str, int] | None = None) -> ctypes.CDLL:
    """The shared library built from C `source` with `-D` defines; compiled once, then loaded from the cache.

    Raises KernelUnavailable (remembered per process and warned about once, so a missing compiler is
    tried once).
    """
    defs = [f"-D{k}={v}" for k, v in sorted((defines or {}).items())]
    memo = (name, source, tuple(defs), os.environ.get(ISA_ENV, ""))
    with _lock:
        if memo in _loaded:
            return _loaded[memo]
        if memo in _failed:
            raise KernelUnavailable(_failed[memo])
        try:
            lib = _build(name, source, defs)
        except KernelUnavailable as exc:
            _failed[memo] = str(exc)
            warnings.warn(f"the fast C kernel {name} is unavailable ({exc}); using the slower torch path",
                          RuntimeWarning, stacklevel=3)
            raise
        _loaded[memo] = lib
        return lib


def _safe_folder(folder: Path) -> bool:
    """Create `folder` (0700) if needed; True when it is ours and nobody else can write to it."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = folder.stat()
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o022


def _build_folder() -> Path:
    folder = kernel_cache_dir()
    if _safe_folder(folder):
        return folder
    if not _private:
        _private.append(Path(tempfile.mkdtemp(prefix="cppn-video-kernels-")))
        atexit.register(shutil.rmtree, _private[0], True)  # a loaded library may be unlinked on Linux
    return _private[0]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _verified(target: Path) -> bool:
    """The library exists and its bytes are those its build recorded."""
    record = target.with_name(target.name + ".sha256")
    try:
        return record.read_text().strip() == _digest(target)
    except OSError:
        return False


def _build(name: str, source: str, defs: list[str]) -> ctypes.CDLL:
    cc = compiler()
    headers = "".join(p.read_text() for p in sorted(INCLUDE.glob("*.h")))  # a header change rebuilds
    flags = build_flags()  # an unknown or unsupported $CPPN_VIDEO_ISA is refused here, before any build
    key = hashlib.sha256("\0".join([source, headers, *cc, sys.platform, *flags, *defs]).encode()).hexdigest()[:16]
    folder = _build_folder()
    target = folder / f"{name}_{key}-{cpu_tag()}.so"
    if not _verified(target):
        _compile(cc, flags, source, defs, name, target)
    try:
        return ctypes.CDLL(str(target))
    except OSError as exc:
        raise KernelUnavailable(f"loading the {name} kernel failed: {exc}") from exc


def _compile(cc: list[str], flags: list[str], source: str, defs: list[str], name: str, target: Path) -> None:
    """Compile into a temp file, record its hash, rename both into place (a concurrent process sees a whole
    library and record, or none; an older record for other bytes fails verification and rebuilds)."""
    fd, src = tempfile.mkstemp(suffix=".c", dir=target.parent)
    with os.fdopen(fd, "w") as fh:
        fh.write(source)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    record = target.with_name(target.name + ".sha256")
    fd, tmp_record = tempfile.mkstemp(suffix=".sha256", dir=target.parent)
    os.close(fd)
    try:
        cmd = [*cc, *flags, f"-I{INCLUDE}", *defs, "-o", tmp, src, "-lm"]
        try:
            result = subprocess.run(cmd, capture_output=True, text=True)
        except OSError as exc:
            raise KernelUnavailable(f"running the C compiler {shlex.join(cc)} failed: {exc.strerror or exc}") from exc
        if result.returncode != 0:
            raise KernelUnavailable(f"compiling the {name} kernel failed: {result.stderr.strip()[-500:]}")
        Path(tmp_record).write_text(_digest(Path(tmp)) + "\n")
        os.replace(tmp, target)
        os.replace(tmp_record, record)
    except OSError as exc:
        raise KernelUnavailable(f"writing the {name} kernel to {target.parent} failed: {exc}") from exc
    finally:
        for path in (src, tmp, tmp_record):
            if os.path.exists(path):
                os.unlink(path)
