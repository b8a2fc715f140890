"""Render-box check (issue 26): GPU tests, render fps, pinned host slots against .cpu(), end-to-end MP4 fps of a
1080 walk at two presets and 1/4/8 encoders, the compare video (composed on the GPU), the Triton training kernels
(gradients against float64 autograd, their time against autograd's, a few tile shapes), and training s/batch
(autograd vs the triton backend, then with CUDA graphs) with a batch-size scaling row and a profiler table.

Run through `bash benchmarks/renderbox_check.sh` (it installs the carried imageio-ffmpeg wheel first). Every
step runs under its own guard and appends JSON lines to OUT/renderbox.jsonl the moment it finishes, so a
timeout or a failing step keeps everything measured before it. RENDERBOX_DRY_RUN=1: every step at toy size on
the CPU (tests/test_renderbox.py runs that), so the script itself is known to work before GPU time is spent.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GPU_TESTS = ["tests/test_triton.py", "tests/test_render_engine.py", "tests/test_train_device.py",
             "tests/test_fast_generator.py", "tests/test_encoders.py", "tests/test_host_ring.py", "tests/test_mosaic.py",
             "tests/test_train_graphs.py"]


def plan(dry: bool) -> dict:
    """Sizes of every step: the real ones for an H100 + 16 cores in a 15-minute window, or toys for the CPU."""
    if dry:
        return {"device": "cpu", "tests": ["tests/test_encoders.py", "-k", "parses"], "render_size": 32,
                "render_frames": 8, "walk_size": 32, "walk_frames": 6, "presets": ["medium", "veryfast"],
                "encoders": [1, 2], "compare_panel": 32, "compare_frames": 2, "train_batch": 4,
                "train_scaling": [4], "train_repeats": 1, "profile_steps": 1, "train_backend": "auto",
                "grad_backend": "c", "grad_batch": 2, "kernel_batch": 4, "kernel_tiles": []}
    return {"device": "cuda", "tests": GPU_TESTS, "render_size": 1080, "render_frames": 240, "walk_size": 1080,
            "walk_frames": 600, "presets": ["medium", "veryfast"], "encoders": [1, 4, 8],
            "compare_panel": 1080, "compare_frames": 150, "train_batch": None, "train_scaling": [500, 1000, 4000],
            "train_repeats": 3, "profile_steps": 3, "train_backend": "triton", "grad_backend": "triton",
            "grad_batch": 4, "kernel_batch": 2000,
            # backward (pixels per program, warps): the default (2 pixels a thread in one warp), 1 pixel a thread,
            # and 4 warps, whose reductions cross warps (benchmarks/train_compile_report.py compiled all three)
            "kernel_tiles": [(64, 1), (32, 1), (128, 4)]}


class Recorder:
    """Appends each row to OUT/renderbox.jsonl as it comes; a failing step becomes one row with its error."""

    def __init__(self, out: Path):
        out.mkdir(parents=True, exist_ok=True)
        self.path = out / "renderbox.jsonl"
        self.failed = 0

    def add(self, row: dict) -> None:
        with open(self.path, "a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)

    def step(self, name: str, fn) -> None:
        t0 = time.perf_counter()
        try:
            for row in fn():
                self.add({"step": name, **row})
            self.add({"step": name, "ok": True, "seconds": round(time.perf_counter() - t0, 2)})
        except Exception as exc:  # noqa: BLE001 - one failure must not lose the other steps
            self.failed += 1
            self.add({"step": name, "ok": False, "seconds": round(time.perf_counter() - t0, 2),
                      "error": f"{type(exc).__name__}: {exc}"[:2000], "traceback": traceback.format_exc()[-3000:]})


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def step_machine(p: dict):
    from pipeline.bench.machine import machine_info
    from pipeline.render import resolve_device

    yield {"machine": machine_info(resolve_device(p["device"])), "cores": len(os.sched_getaffinity(0)),
           "dry_run": p["device"] == "cpu"}


def step_tests(p: dict):
    env = {**os.environ}
    if p["device"] == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", *p["tests"]],
                         cwd=ROOT, capture_output=True, text=True, env=env)
    tail = (res.stdout + res.stderr).strip().splitlines()[-15:]
    yield {"pytest_rc": res.returncode, "summary": tail[-1] if tail else "", "tail": tail}
    if res.returncode != 0:
        raise RuntimeError(f"GPU tests failed: {tail[-1] if tail else res.returncode}")


def step_render(p: dict):
    """Render-only fps of a resnet (e24) 1080 frame batch stream (the renderer's own batch size)."""
    from pipeline.checkpoint import load_checkpoint
    from pipeline.render import Renderer, default_batch
    import numpy as np

    ck = load_checkpoint("e24")
    size, n = p["render_size"], p["render_frames"]
    z = np.random.default_rng(0).standard_normal((n, ck.z_dim)).astype(np.float32)
    with Renderer(ck.generator, size, size, device=p["device"]) as r:
        batch = default_batch(size, size, r.device)
        r.render(z[:batch])  # warm-up: compile, caches
        _sync(p["device"])
        t0 = time.perf_counter()
        for i in range(0, n, batch):
            r.render(z[i:i + batch])
        _sync(p["device"])
        s = time.perf_counter() - t0
        yield {"path": r.path, "device": str(r.device), "size": size, "frames": n, "batch": batch,
               "render_fps": round(n / s, 1)}


class _NoEvent:
    """The dry run's stand-in for a CUDA event (a CPU batch is copied by the time put() returns)."""

    def __init__(self, device):
        pass

    def synchronize(self):
        pass


def step_host_ring(p: dict):
    """The renderer's batches through pinned host slots (render.host_ring) against the synchronous .cpu() path:
    the same bytes, and frames per second of render + device-to-host copy each way, a consumer thread waiting on
    and releasing each slot as the video writer does (no encoder: the copy's own cost)."""
    import queue
    import threading

    import numpy as np
    from pipeline.checkpoint import load_checkpoint
    from pipeline.render import Renderer, default_batch
    from pipeline.render.host_ring import HostRing, ring_slots

    ck = load_checkpoint("e24")
    size, n = p["render_size"], p["render_frames"]
    z = np.random.default_rng(0).standard_normal((n, ck.z_dim)).astype(np.float32)
    with Renderer(ck.generator, size, size, device=p["device"]) as r:
        batch = default_batch(size, size, r.device)
        cuda = r.device.type == "cuda"
        ring = HostRing(ring_slots(1), event=None if cuda else _NoEvent)

        def through_ring(keep: bool) -> tuple[float, list]:
            done: queue.Queue = queue.Queue()
            kept = []

            def consumer():
                while (lease := done.get()) is not None:
                    lease.wait()
                    if keep:
                        kept.append(np.array(lease.array))
                    lease.release()

            t = threading.Thread(target=consumer)
            t.start()
            t0 = time.perf_counter()
            try:
                for i in range(0, n, batch):
                    done.put(ring.put(r.render_tensor(z[i:i + batch])))
            finally:
                done.put(None)
                t.join()
            return time.perf_counter() - t0, kept

        want = r.render(z[:batch])  # warm-up: compile, caches
        _, got = through_ring(True)
        equal = bool(np.array_equal(np.concatenate(got)[:batch], want))
        _sync(p["device"])
        t0 = time.perf_counter()
        for i in range(0, n, batch):
            r.render(z[i:i + batch])
        sync_s = time.perf_counter() - t0
        ring_s, _ = through_ring(False)
        yield {"path": r.path, "device": str(r.device), "size": size, "frames": n, "batch": batch,
               "slots": ring.slots, "pinned": cuda, "equal_to_sync": equal,
               "sync_fps": round(n / sync_s, 1), "ring_fps": round(n / ring_s, 1),
               "ring_vs_sync": round(sync_s / ring_s, 3)}
        if not equal:
            raise RuntimeError("frames through the host ring differ from the synchronous path's")


def step_walks(p: dict, render_fps: dict):
    """End-to-end wall time of a walk to MP4 (render + encoders + join + read-back) per preset and encoder count;
    e2e/render against the render-only fps of step_render."""
    from pipeline.jobs.render import WalkSettings, render_walk

    with tempfile.TemporaryDirectory(prefix="renderbox-") as tmp:
        for preset in p["presets"]:
            for n in p["encoders"]:
                # seeded random keyframes, scale 8, no re-pacing: render + encode + join alone (the default
                # stored-digit keyframes cost a classifier pass, ~3 s on a loaded Zen 2, before frame 0)
                s = WalkSettings(frames=p["walk_frames"], size=p["walk_size"], scale=8.0, pace="none",
                                 random_keyframes=True, preset=preset, encoders=n, device=p["device"])
                out = Path(tmp) / f"walk-{preset}-{n}.mp4"
                t0 = time.perf_counter()
                render_walk("e24", out, s)
                wall = time.perf_counter() - t0
                fps = p["walk_frames"] / wall
                row = {"preset": preset, "encoders": n, "frames": p["walk_frames"], "size": p["walk_size"],
                       "wall_s": round(wall, 2), "mp4_fps": round(fps, 1), "mb": round(out.stat().st_size / 2**20, 2)}
                if render_fps.get("fps"):
                    row["e2e_vs_render"] = round(fps / render_fps["fps"], 3)
                out.unlink()
                yield row


def step_compare(p: dict):
    from pipeline.bench.compare_bench import run_compare_bench

    # Whole batches, as a user's compare renders them on a GPU (composed there, one pinned copy per batch).
    r = run_compare_bench(frames=p["compare_frames"], panel_size=p["compare_panel"], device=p["device"])
    yield {k: r[k] for k in ("panel_size", "frames", "seconds", "seconds_per_frame", "frames_per_second")} | {
        "steady_frames_per_s": round(1 / r["seconds_per_frame"], 1) if r["seconds_per_frame"] else None}


def step_train_kernels(p: dict):
    """The fast generator backend (triton on the GPU; the C kernel in a dry run) on the article's generator:
    every parameter's and z's gradient against float64 autograd, then forward + backward seconds against float32
    autograd at the article batch, and for triton the kernels alone at a few backward tile shapes."""
    import copy
    import statistics

    import torch
    from pipeline.coords import grid
    from pipeline.models import ResnetConfig, ResnetGenerator
    from pipeline.train.fast_generator import generator_forward

    dev, backend = torch.device(p["device"]), p["grad_backend"]
    torch.manual_seed(0)
    gen = ResnetGenerator(ResnetConfig()).to(dev)
    coords = grid(26, 26, 8.0).to(dev)

    def run(model, name, dtype, z0, g_out):
        model.zero_grad(set_to_none=True)
        z = z0.to(dtype).clone().requires_grad_()
        out = generator_forward(model, z, coords.to(dtype), name)
        out.backward(g_out.to(dtype))
        return [out.detach()] + [q.grad for q in model.parameters()] + [z.grad]

    z0, g0 = torch.randn(p["grad_batch"], 32, device=dev), torch.randn(p["grad_batch"], 26 * 26, device=dev)
    ref = run(copy.deepcopy(gen).double(), "autograd", torch.float64, z0, g0)
    names = ["out"] + [n for n, _ in gen.named_parameters()] + ["z"]
    for name in (backend, "autograd"):
        errs = {n: float((a.double() - b).abs().max() / b.abs().max().clamp_min(1e-30))
                for n, a, b in zip(names, run(gen, name, torch.float32, z0, g0), ref)}
        worst = max(errs, key=errs.get)
        yield {"check": "against float64 autograd", "backend": name, "batch": p["grad_batch"],
               "max_rel_err": errs[worst], "worst": worst, "out_rel_err": errs["out"]}

    B = p["kernel_batch"]
    zb, gb = torch.randn(B, 32, device=dev), torch.randn(B, 26 * 26, device=dev)

    def timed(fn, repeats=3):
        fn()  # warm-up: compile, caches
        times = []
        for _ in range(repeats):
            _sync(p["device"])
            t0 = time.perf_counter()
            fn()
            _sync(p["device"])
            times.append(time.perf_counter() - t0)
        return round(statistics.median(times), 5)

    for name in ("autograd", backend):
        yield {"backend": name, "batch": B, "s_forward_backward": timed(lambda: run(gen, name, torch.float32, zb, gb))}
    if backend != "triton":
        return
    from pipeline.train import triton_train

    inp, cfg = gen.input, gen.cfg
    with torch.no_grad():
        zp = inp.z(zb * inp.z_scale).contiguous()
        cp = inp.xyr(coords).t().contiguous()
        params = gen.kernel_parameters().contiguous()
    shape = (cfg.n_blocks, cfg.width, cfg.relu_layers)
    yield {"kernel": "forward", "block": triton_train.FORWARD_BLOCK, "warps": 4, "batch": B,
           "s": timed(lambda: triton_train.forward(zp, cp, params, *shape))}
    for block, warps in p["kernel_tiles"]:
        yield {"kernel": "backward", "block": block, "warps": warps, "batch": B,
               "s": timed(lambda: triton_train.backward(zp, cp, params, gb, *shape, block=block, num_warps=warps))}


def step_train(p: dict):
    """s/batch (autograd vs fast, article batch), a batch-size scaling row, the fast steps as CUDA graphs (on a
    GPU), and a profiler table of one run."""
    import torch
    from pipeline.bench.train_bench import run_train_bench

    dev = p["device"]
    r = run_train_bench(batch_size=p["train_batch"], repeats=p["train_repeats"], models=("resnet",), device=dev,
                        backend=p["train_backend"])
    yield {"projections": r["projections"], "results": r["results"]}
    scaling = {}
    for bs in p["train_scaling"]:
        q = run_train_bench(batch_size=bs, repeats=1, models=("resnet",), device=dev,
                            backend=p["train_backend"])["projections"][0]
        scaling[bs] = {"fast_s_per_batch": q["fast_s_per_batch"], "autograd_s_per_batch": q["autograd_s_per_batch"]}
    yield {"batch_scaling": scaling}
    if dev == "cuda":  # the same steps replayed as CUDA graphs (train --cuda-graphs), against the plain ones
        g = run_train_bench(batch_size=p["train_batch"], repeats=p["train_repeats"], models=("resnet",), device=dev,
                            backend=p["train_backend"], graphs=True)
        yield {"cuda_graphs": g["projections"], "results": [r for r in g["results"] if r["path"] == "fast"]}
    acts = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if dev == "cuda" else [])
    with torch.profiler.profile(activities=acts) as prof:
        run_train_bench(batch_size=p["train_batch"], repeats=p["profile_steps"], warmup=0, models=("resnet",),
                        device=dev, backend=p["train_backend"])
    key = "self_cuda_time_total" if dev == "cuda" else "self_cpu_time_total"
    table = prof.key_averages().table(sort_by=key, row_limit=25)
    yield {"profile_sort": key, "profile_table": table.splitlines()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "renderbox_out")))
    ap.add_argument("--steps", default="machine,tests,train_kernels,render,host_ring,walks,compare,train")
    args = ap.parse_args(argv)
    dry = os.environ.get("RENDERBOX_DRY_RUN") == "1"
    p = plan(dry)
    rec = Recorder(args.out)
    rec.add({"step": "plan", "dry_run": dry, **p})
    render_fps: dict = {}

    def render():
        for row in step_render(p):
            render_fps["fps"] = row["render_fps"]
            yield row

    steps = {"machine": lambda: step_machine(p), "tests": lambda: step_tests(p), "render": render,
             "host_ring": lambda: step_host_ring(p), "walks": lambda: step_walks(p, render_fps), "compare": lambda: step_compare(p),
             "train_kernels": lambda: step_train_kernels(p), "train": lambda: step_train(p)}
    for name in args.steps.split(","):
        rec.step(name, steps[name])
    rec.add({"step": "done", "failed_steps": rec.failed})
    return 1 if rec.failed else 0


if __name__ == "__main__":
    sys.exit(main())
