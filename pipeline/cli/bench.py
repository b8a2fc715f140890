"""`cppn-video bench render|train|compare|serve|audio|project`: benchmarks whose output goes into docs/PERFORMANCE.md."""
from __future__ import annotations

import click

from pipeline.cli.common import echo_json
from pipeline.render.paths import PATHS


@click.group()
def bench() -> None:
    """Measure render and training speed on this machine (baselines measured in the same run)."""


def _echo_machine(m: dict) -> None:
    click.echo(f"machine: {m['cpu']} ({m['cpu_count']} cpus, {m['torch_threads']} torch threads), "
               f"{m.get('gpu', m['device'])}, torch {m['torch']}, {m['date']}")


def _status(quiet: bool):
    if quiet:
        return None
    return lambda msg: click.echo(f"  measuring {msg} ...", err=True)


@bench.command("render")
@click.option("--size", "sizes", type=click.IntRange(16, 16384), multiple=True, default=(1080, 3240),
              show_default=True, help="Frame sizes to measure (repeat the option for several).")
@click.option("--frames", type=click.IntRange(min=1), default=8, show_default=True,
              help="Frames timed per fast path (the reference is timed on --reference-frames).")
@click.option("--reference-frames", type=click.IntRange(min=0), default=1, show_default=True,
              help="Frames timed for the reference (slow: ~2 s per 1080x1080 frame on 2 cores).")
@click.option("--mp4-frames", type=click.IntRange(min=0), default=150, show_default=True,
              help="Frames rendered into an MP4 for the end-to-end measurement (0: skip).")
@click.option("--family", "families", type=click.Choice(["resnet", "prev"]), multiple=True,
              default=("resnet", "prev"), show_default=True, help="Generator families to measure.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda[:N].")
@click.option("--path", "paths", type=click.Choice(PATHS[1:]), multiple=True, default=None,
              help="Only these render paths (repeat the option); end to end is then measured for each fast one.  "
                   "[default: every available path, end to end the fastest]")
@click.option("--scenes/--no-scenes", default=True, show_default=True,
              help="Also time the paced, held, coloured and moving scenes end to end (the first path only).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def bench_render(sizes, frames, reference_frames, mp4_frames, families, device, paths, scenes, as_json):
    """ms per frame of the reference and each available render path; end-to-end MP4 fps against render-only
    (wall clock and CPU time, same run); peak memory."""
    from pipeline.bench.render_bench import run_render_bench

    report = run_render_bench(sizes=sizes, frames=frames, families=families, device=device,
                              paths=(tuple(paths) + ("reference",)) if paths else None, mp4_frames=mp4_frames,
                              reference_frames=reference_frames, progress=_status(as_json), scenes=scenes)
    if as_json:
        echo_json(report)
        return
    _echo_machine(report["machine"])
    click.echo(f"{'family':7} {'path':10} {'size':>5} {'frames':>6} {'ms/frame':>10} {'GFLOP/s':>8} "
               f"{'vs ref':>7} {'peak MB':>8}")
    for r in report["results"]:
        if r["what"] == "render":
            sp = f"{r['speedup_vs_reference']:.1f}x" if r["speedup_vs_reference"] else "-"
            click.echo(f"{r['family']:7} {r['path']:10} {r['size']:>5} {r['frames']:>6} {r['ms_per_frame']:>10.1f} "
                       f"{r['gflops']:>8.1f} {sp:>7} {r['peak_rss_mb'] or 0:>8.0f}")
    for r in report["results"]:
        if r["what"] == "mp4":
            click.echo(f"end to end ({r['path']}, {r['size']}x{r['size']}, {r['frames']} frames): render only "
                       f"{r['render_fps']:.2f} fps, to MP4 {r['mp4_fps']:.2f} fps: end-to-end / render-only "
                       f"{r['mp4_vs_render']:.3f} (wall clock, same run; the goal is >= 0.85)")
            if r.get("cpu_bound_mp4_vs_render") is not None:
                click.echo(f"  CPU time a frame: render only {r['render_cpu_ms_per_frame']:.0f} ms, to MP4 "
                           f"{r['mp4_cpu_ms_per_frame']:.0f} ms (ffmpeg {r['encoder_cpu_ms_per_frame']:.0f} ms): "
                           f"CPU-bound ratio {r['cpu_bound_mp4_vs_render']:.3f} (what the cores give kept busy; "
                           f"other work's load moves it far less than the wall-clock ratio)")
            scenes = [f"{k[:-len('_time_vs_static')]} {v:.3f}x" for k, v in r.items()
                      if k.endswith("_time_vs_static") and k != "moving_render_time_vs_static"]
            if scenes:
                click.echo("  time against the static scene (equal steps, grey), same run: " + ", ".join(scenes))
            if "moving_render_time_vs_static" in r:
                click.echo(f"  moving camera (zoom 1:64, rotate 0:90, pan), render only, against static batch by "
                           f"batch: {r['moving_render_time_vs_static']:.3f}x")


@bench.command("train")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Images per batch (26x26) [default: the article's, 2000 for resnet and 500 for prev].")
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True,
              help="Timed repeats per measurement (median reported).")
@click.option("--model", "models", type=click.Choice(["resnet", "prev"]), multiple=True,
              default=("resnet", "prev"), show_default=True, help="Models to measure.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="torch threads for the run [default: torch's own setting].")
@click.option("--precision", type=click.Choice(["float32", "bf16"]), default="bf16", show_default=True,
              help="The fast path's classifier precision (the autograd baseline is always float32).")
@click.option("--metrics", "metrics", type=(click.Choice(["resnet", "prev"]), click.Path(exists=True, dir_okay=False)),
              multiple=True, metavar="MODEL FILE",
              help="Project with the step mix of a real run's metrics.jsonl, e.g. --metrics resnet "
                   "runs/resnet/metrics.jsonl [default: the schedule's maximum, an upper bound].")
@click.option("--system-malloc", is_flag=True,
              help="Measure with the C library's default allocator settings instead of keeping freed memory "
                   "as `train` does (shows what that setting is worth).")
@click.option("--device", default="cpu", show_default=True,
              help="Where the steps run: cpu, auto, cuda or cuda:N (both paths on it).")
@click.option("--backend", default="auto", show_default=True,
              help="The fast path's generator forward/backward: auto (what `train` runs), c, torch, triton (the "
                   "fused Triton kernels, CUDA) or autograd.")
@click.option("--cuda-graphs", "cuda_graphs", is_flag=True,
              help="The fast path replays its steps as CUDA graphs, as `train --cuda-graphs` (CUDA only).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def bench_train(batch_size, repeats, models, threads, precision, metrics, system_malloc, device, backend, cuda_graphs,
                as_json):
    """Seconds per training step of each kind, plain autograd vs the fast path in one run, and the
    projected wall time of the article's runs."""
    from pipeline.bench.train_bench import run_train_bench
    from pipeline.devices import resolve_device

    report = run_train_bench(batch_size=batch_size, repeats=repeats, models=tuple(models), threads=threads,
                             precision=precision, metrics=dict(metrics), progress=_status(as_json),
                             keep_heap=not system_malloc, device=resolve_device(device), backend=backend,
                             graphs=cuda_graphs)
    if as_json:
        echo_json(report)
        return
    m = report.get("machine", {})
    click.echo("machine: " + ", ".join(f"{k}={v}" for k, v in m.items()))
    click.echo(f"{'model':7} {'step':7} {'path':9} {'batch':>6} {'s/step':>8} {'speedup':>8}")
    for r in report["results"]:
        sp = f"{r['speedup']:.2f}x" if r.get("speedup") else "-"
        click.echo(f"{r['model']:7} {r['step']:7} {r['path']:9} {r['batch_size']:>6} {r['s_per_step']:>8.3f} {sp:>8}")
    for p in report["projections"]:
        mix = ", ".join(f"{k} {v:g}" for k, v in p["steps_per_batch"].items())
        click.echo(f"{p['model']}: {p['batches']} batches of {p['batch_size']} ({p['epochs']} epoch(s)); steps per "
                   f"batch {mix} ({p['mix_source']}): autograd {p['autograd_s_per_batch']:.1f} s/batch = "
                   f"{p['autograd_hours']:.2f} h, fast {p['fast_s_per_batch']:.1f} s/batch = {p['fast_hours']:.2f} h "
                   f"({p['speedup']:.2f}x)")


@bench.command("compare")
@click.argument("checkpoints", nargs=-1)
@click.option("--frames", type=click.IntRange(min=2), default=6, show_default=True,
              help="Frames measured (the first pays start-up and is left out of the rate).")
@click.option("--panel-size", type=click.IntRange(min=2, max=16384), default=1080, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda[:N].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def bench_compare(checkpoints, frames, panel_size, device, as_json):
    """Seconds per frame of `cppn-video compare CHECKPOINTS` (default: prev e6 e24) at its defaults, and the
    projected time of its default 300-frame video."""
    from pipeline.bench.compare_bench import DEFAULT_CHECKPOINTS, run_compare_bench

    report = run_compare_bench(checkpoints or DEFAULT_CHECKPOINTS, frames=frames, panel_size=panel_size,
                               device=device)
    if as_json:
        echo_json(report)
        return
    _echo_machine(report["machine"])
    click.echo(f"compare {' '.join(report['checkpoints'])} at {panel_size} px: {report['seconds_per_frame']:.2f} s "
               f"per frame ({frames} frames in {report['seconds']:.1f} s); the default {report['projected_frames']} "
               f"frames: about {report['projected_seconds'] / 60:.1f} min")


@bench.command("serve")
@click.option("--size", "sizes", type=click.IntRange(16, 1024), multiple=True, default=(256, 384),
              show_default=True, help="Preview sizes to measure (repeat the option for several).")
@click.option("--frames", type=click.IntRange(min=1), default=100, show_default=True,
              help="Preview frames timed per size (after 5 untimed).")
@click.option("--ckpt", default="e24", show_default=True, help="Checkpoint to preview.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def bench_serve(sizes, frames, ckpt, as_json):
    """Live-preview latency of `cppn-video serve`: a WebSocket message out to its frame back, through a real
    server on this machine (needs the serve extra)."""
    try:
        from pipeline.bench.serve_bench import run_serve_bench

        report = run_serve_bench(sizes=sizes, frames=frames, ckpt=ckpt, progress=_status(as_json))
    except ImportError as e:
        raise click.ClickException(f'bench serve needs the web extra ({e}); pip install "cppn-video[serve]"')
    if as_json:
        echo_json(report)
        return
    m = report["machine"]
    _echo_machine({**m, "device": "cpu"})
    click.echo(f"load average (1 min): {m.get('load_average_1min', '-')}")
    click.echo(f"{'size':>5} {'frames':>6} {'path':10} {'median ms':>9} {'p95 ms':>7} {'mean ms':>7} {'render ms':>9}")
    for r in report["results"]:
        click.echo(f"{r['size']:>5} {r['frames']:>6} {r['path']:10} {r['median_ms']:>9.1f} {r['p95_ms']:>7.1f} "
                   f"{r['mean_ms']:>7.1f} {r['render_only_median_ms']:>9.1f}")


@bench.command("audio")
@click.option("--track-seconds", type=click.FloatRange(1, 3600), default=180.0, show_default=True,
              help="Length of the synthesised track whose beats are found.")
@click.option("--size", type=click.IntRange(16, 8192), default=540, show_default=True,
              help="Frame size of the walk the mux is compared with.")
@click.option("--video-seconds", type=click.FloatRange(0.1, 600), default=10.0, show_default=True,
              help="Length of that walk.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def bench_audio(track_seconds, size, video_seconds, as_json):
    """Beat analysis time of a synthesised track, and what muxing its sound adds to a walk render."""
    from pipeline.bench.audio_bench import run_audio_bench

    r = run_audio_bench(track_seconds=track_seconds, size=size, video_seconds=video_seconds,
                        progress=_status(as_json))
    if as_json:
        echo_json(r)
        return
    _echo_machine(r["machine"])
    click.echo(f"analysis of a {r['track_seconds']:.0f} s track: decode {r['decode_s']:.2f} s + beats "
               f"{r['analysis_s']:.2f} s (tempo {r['tempo_bpm']} BPM found, {r['true_bpm']} synthesised, "
               f"{r['beats']} beats)")
    click.echo(f"mux: {r['mux_s']:.2f} s on a {r['video_seconds']:g} s {r['render_size']}x{r['render_size']} walk "
               f"that rendered in {r['render_s']:.2f} s: +{100 * r['mux_vs_render']:.1f}%")


@bench.command("project")
@click.option("--ckpt", default="e24", show_default=True, help="Checkpoint to project into.")
@click.option("--batch", type=click.IntRange(min=1), default=100, show_default=True,
              help="Images projected together in one batch.")
@click.option("--steps", type=click.IntRange(min=0), default=None,
              help="Adam steps (default: the projection's own, what its quality was measured with).")
@click.option("--starts", type=click.IntRange(min=1), default=None, help="Starts per image (default: the projection's).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def bench_project(ckpt, batch, steps, starts, as_json):
    """Seconds to project your own digits (`cppn-video project`, walk --images): one image, and --batch images
    in one batch, from PNG files to latents, on the default threads."""
    from pipeline.bench.project_bench import run_project_bench

    r = run_project_bench(ckpt=ckpt, batch=batch, steps=steps, starts=starts, progress=_status(as_json))
    if as_json:
        echo_json(r)
        return
    _echo_machine(r["machine"])
    click.echo(f"load average (1 min): {r['machine'].get('load_average_1min', '-')}")
    click.echo(f"project into {r['ckpt']} ({r['steps']} steps, {r['starts']} starts): one image "
               f"{r['one_image_seconds']:.2f} s (first {r['first_image_seconds']:.2f} s, networks loaded in "
               f"{r['load_seconds']:.2f} s); {r['batch']} images batched {r['batch_seconds']:.2f} s "
               f"({r['seconds_per_image_batched']:.3f} s each)")


def register(cli: click.Group) -> None:
    cli.add_command(bench)
