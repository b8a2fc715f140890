"""`bench train`: per-step timings of both paths and the projection onto the article's runs."""
from __future__ import annotations

import json

import pytest
import torch

from pipeline.bench.train_bench import (ARTICLE_RUNS, STEP_KINDS, mix_from_metrics, run_train_bench,
                                        schedule_maximum)
from pipeline.errors import UserError


def test_reports_every_step_kind_for_both_paths_and_projects_them(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("\n".join(json.dumps({"batch": i, "steps": {"g": g, "d": d, "d_real": 0}})
                                 for i, (g, d) in enumerate([(16, 0), (10, 2)])) + "\n")
    seen = []
    report = run_train_bench(batch_size=2, repeats=1, warmup=0, models=("resnet", "prev"), progress=seen.append,
                             metrics={"resnet": metrics})
    assert report["machine"]["cpu_count"] >= 1 and report["machine"]["torch"] == torch.__version__
    rows = {(r["model"], r["step"], r["path"]): r for r in report["results"]}
    for model in ("resnet", "prev"):
        for kind in STEP_KINDS[model]:
            assert rows[(model, kind, "autograd")]["s_per_step"] > 0
            assert rows[(model, kind, "fast")]["speedup"] > 0
    assert len(seen) == len(STEP_KINDS["resnet"]) + len(STEP_KINDS["prev"])
    proj = {p["model"]: p for p in report["projections"]}
    # resnet: the given run's averages (13 G steps, 1 D step per batch); the article's batch count
    r = proj["resnet"]
    assert r["steps_per_batch"] == {"g": 13.0, "eval": 1.0, "d": 1.0, "d_real": 0.0}
    assert r["batches"] == (70_000 // 2) * 24 and "metrics" in r["mix_source"]
    expected = sum(rows[("resnet", k, "fast")]["s_per_step"] * n for k, n in r["steps_per_batch"].items())
    assert r["fast_s_per_batch"] == pytest.approx(expected, rel=1e-2, abs=1e-3)
    assert r["fast_hours"] == pytest.approx(r["fast_s_per_batch"] * r["batches"] / 3600, rel=1e-2, abs=1e-3)
    # prev: no metrics given -> the schedule's maximum, one epoch of 60,000
    p = proj["prev"]
    assert p["steps_per_batch"] == {k: float(v) for k, v in schedule_maximum("prev").items()}
    assert p["batches"] == 60_000 // 2 and "upper bound" in p["mix_source"]


def test_schedule_maximum_and_article_runs():
    assert schedule_maximum("resnet") == {"g": 16, "eval": 1, "d": 8, "d_real": 0}
    assert schedule_maximum("prev") == {"vae": 4, "g": 4, "eval": 1, "d": 1}
    assert ARTICLE_RUNS["resnet"] == (70_000, 2000, 24)


def test_mix_from_metrics_errors(tmp_path):
    bad = tmp_path / "m.jsonl"
    bad.write_text("not json\n")
    with pytest.raises(UserError, match="cannot read"):
        mix_from_metrics(bad, "resnet")
    bad.write_text(json.dumps({"steps": {"vae": 4, "g": 1, "d": 0}}) + "\n")
    with pytest.raises(UserError, match="another model"):
        mix_from_metrics(bad, "resnet")
    bad.write_text(json.dumps({"event": "x"}) + "\n")
    with pytest.raises(UserError, match="no batch rows"):
        mix_from_metrics(bad, "prev")


def test_rejects_bad_arguments():
    with pytest.raises(UserError, match="batch size"):
        run_train_bench(batch_size=0)
    with pytest.raises(UserError, match="unknown model"):
        run_train_bench(models=("gan",))
