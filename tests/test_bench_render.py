"""`cppn-video bench render`'s end-to-end row (issue 26's 85% goal): the ratios it reports and the lines it prints,
without rendering (the benchmark itself runs by hand; docs/PERFORMANCE.md)."""
from click.testing import CliRunner

from pipeline.bench import render_bench
from pipeline.cli.bench import bench


def test_end_to_end_ratios_are_of_the_same_run():
    r = render_bench.e2e_ratios(10, render_s=5.0, render_cpu_s=9.0, mp4_s=6.0, mp4_cpu_s=10.0, encoder_cpu_s=1.0)
    assert (r["render_fps"], r["mp4_fps"], r["mp4_vs_render"]) == (2.0, 1.667, 0.833)  # fps ratio, wall clock
    assert (r["render_cpu_ms_per_frame"], r["mp4_cpu_ms_per_frame"], r["encoder_cpu_ms_per_frame"]) == (900, 1000, 100)
    assert r["cpu_bound_mp4_vs_render"] == 0.9
    assert render_bench.e2e_ratios(1, 1.0, 1.0, 1.0, 0.0, 0.0)["cpu_bound_mp4_vs_render"] is None


def test_bench_render_prints_each_paths_ratio(monkeypatch):
    asked = {}

    def fake(**kw):
        asked.update(kw)
        rows = [{"what": "mp4", "family": "resnet", "path": p, "size": 64, "frames": 10,
                 **render_bench.e2e_ratios(10, 5.0, 9.0, 6.0 + i, 10.0, 1.0)} for i, p in enumerate(kw["paths"][:2])]
        return {"machine": {"cpu": "test cpu", "cpu_count": 2, "torch_threads": 2, "device": "cpu", "torch": "x",
                            "date": "today"}, "results": rows}

    monkeypatch.setattr(render_bench, "run_render_bench", fake)
    res = CliRunner().invoke(bench, ["render", "--path", "cpu-fused", "--path", "torch", "--no-scenes"])
    assert res.exit_code == 0, res.output
    assert asked["paths"] == ("cpu-fused", "torch", "reference") and asked["scenes"] is False
    lines = [ln for ln in res.output.splitlines() if "end-to-end / render-only" in ln]
    assert len(lines) == 2 and "(cpu-fused," in lines[0] and "0.833" in lines[0] and "(torch," in lines[1]
    assert "0.714" in lines[1] and res.output.count("CPU-bound ratio 0.900") == 2
