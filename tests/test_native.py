"""The compiled-kernel cache: keyed by CPU features, verified before loading, rebuilt when damaged, in a
folder only the user can write, honouring CC with arguments and XDG_CACHE_HOME; a fallback warns once."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from pipeline import native

pytestmark = pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                                reason="needs a C compiler")

SOURCE = "int answer(void) { return ANSWER; }\n"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CPPN_VIDEO_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("CC", raising=False)
    return tmp_path / "cache" / "kernels"


def answer(defines: list[str], cache_root=None) -> int:
    """Build (or load from the cache) the test kernel in a fresh process and call it: a process that has
    loaded a library keeps it mapped, so each load is tried where nothing is loaded yet, as in a new run."""
    env = dict(os.environ)
    if cache_root is not None:
        env["CPPN_VIDEO_CACHE"] = str(cache_root)
    code = ("import ctypes, sys; from pipeline import native; "
            "lib = native._build('t', sys.argv[1], sys.argv[2:]); lib.answer.restype = ctypes.c_int; "
            "print(lib.answer())")
    proc = subprocess.run([sys.executable, "-c", code, SOURCE, *defines], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout)


def built(cache) -> list:
    return sorted(cache.glob("*.so"))


def test_the_cpu_tag_covers_the_feature_flags_not_just_the_model_name():
    generic = "processor\t: 0\nmodel name\t: QEMU Virtual CPU\nflags\t\t: fpu sse2 avx2{}\n\nprocessor\t: 1\n"
    avx512, plain = generic.format(" avx512f"), generic.format("")
    assert native.cpu_tag(avx512) != native.cpu_tag(plain)
    assert native.cpu_tag(plain) == native.cpu_tag(plain + "model name\t: other\n")  # only the first CPU counts
    assert native.cpu_tag("CPU implementer\t: 0x41\nCPU part\t: 0xd0c\nFeatures\t: fp asimd\n") != \
        native.cpu_tag("CPU implementer\t: 0x41\nCPU part\t: 0xd0c\nFeatures\t: fp asimd sve\n")


def test_a_corrupted_cached_library_is_rebuilt(cache):
    assert answer(["-DANSWER=42"]) == 42
    (so,) = built(cache)
    so.write_bytes(so.read_bytes()[:200])  # truncated, as by a full disk or a crash
    assert answer(["-DANSWER=42"]) == 42
    assert so.stat().st_size > 200


def test_a_planted_library_is_never_loaded(cache):
    answer(["-DANSWER=42"])
    (so,) = built(cache)
    answer(["-DANSWER=666"], cache_root=cache.parent / "other")
    (evil,) = built(cache.parent / "other" / "kernels")
    shutil.copy(evil, so)  # a library with the right name and other code, without its record
    assert answer(["-DANSWER=42"]) == 42
    shutil.copy(evil, so)
    so.with_name(so.name + ".sha256").write_text("0" * 64 + "\n")  # or with a record of other bytes
    assert answer(["-DANSWER=42"]) == 42


def test_a_cache_folder_others_can_write_is_not_used(cache):
    cache.mkdir(parents=True)
    cache.chmod(0o777)
    assert answer(["-DANSWER=7"]) == 7
    assert built(cache) == []  # built in a private folder instead


def test_the_cache_folder_is_private_and_follows_xdg(tmp_path, monkeypatch):
    monkeypatch.delenv("CPPN_VIDEO_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert native.kernel_cache_dir() == tmp_path / "xdg" / "cppn-video" / "kernels"
    assert answer(["-DANSWER=1"]) == 1
    assert (native.kernel_cache_dir().stat().st_mode & 0o777) == 0o700
    assert len(built(native.kernel_cache_dir())) == 1


def test_cc_with_arguments_is_used(cache, monkeypatch):
    cc = shutil.which("cc") or shutil.which("gcc")
    monkeypatch.setenv("CC", f"{cc} -DANSWER=5")
    assert native.compiler() == [cc, "-DANSWER=5"]
    assert answer([]) == 5


def test_a_fallback_warns_once_with_the_reason(tmp_path):
    """No compiler: the CLI renders on the torch path and says why, once, on one line."""
    from render_helpers import make_checkpoint

    ck = make_checkpoint(tmp_path / "a.pt")
    env = {**os.environ, "CC": str(tmp_path / "no-such-cc"), "CPPN_VIDEO_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-m", "pipeline", "walk", "--ckpt", str(ck), "--frames", "2",
                           "--size", "16", "--quiet", "-o", str(tmp_path / "w.mp4")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if "unavailable" in ln]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("warning: the fast C kernel render_w") and "no-such-cc" in lines[0]
    assert "torch path" in lines[0]


def test_the_instruction_set_is_chosen_checked_and_part_of_the_key(cache, monkeypatch):
    """CPPN_VIDEO_ISA builds for a lower level (an AVX-512 box can run what an AVX2-only one would); a level the
    CPU lacks or an unknown name is refused, never built; each level is its own cached library."""
    zen2 = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx avx2 fma f16c bmi1 bmi2 movbe\n"
    monkeypatch.setenv(native.ISA_ENV, "avx512")
    with pytest.raises(native.KernelUnavailable, match="lacks .*avx512f"):
        native.isa(zen2)
    monkeypatch.setenv(native.ISA_ENV, "avx2")
    assert native.isa(zen2) == "avx2" and native.effective_isa(zen2) == "avx2"
    monkeypatch.setenv(native.ISA_ENV, "pentium")
    with pytest.raises(native.KernelUnavailable, match="choose one of native, avx512, avx2, x86-64"):
        native.isa(zen2)
    monkeypatch.delenv(native.ISA_ENV)
    assert native.effective_isa(zen2) == "avx2" and "-march=native" in native.build_flags()
    if native.effective_isa() == "x86-64":
        pytest.skip("this CPU has no AVX2")
    for level in ("native", "avx2", "x86-64"):
        monkeypatch.setenv(native.ISA_ENV, level)
        assert answer(["-DANSWER=7"]) == 7
    assert len(built(cache)) == 3  # one library per instruction set, none reused for another
