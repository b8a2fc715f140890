"""The shipped presets validate and describe the article's jobs (quick.toml: the same pipeline, small)."""
from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.batch import load_preset, make_plan
from pipeline.batch.preset import PresetError

PRESETS = Path(__file__).resolve().parents[1] / "presets"


def _quick(tmp_path, data_dir=None):
    """quick.toml as shipped: it names no data folder, so it validates on any fresh clone."""
    return load_preset(PRESETS / "quick.toml", out_dir=tmp_path / "out", data_dir=data_dir)


def test_quick_preset_uses_the_data_cache_unless_batch_gets_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    trains = [j for j in _quick(tmp_path).jobs.values() if j.kind == "train"]
    assert trains and all(j.settings.data_dir is None for j in trains)  # the cache, which downloads MNIST
    (tmp_path / "digits").mkdir()
    trains = [j for j in _quick(tmp_path, data_dir="digits").jobs.values() if j.kind == "train"]
    assert all(j.settings.data_dir == str(tmp_path / "digits") for j in trains)  # batch --data DIR
    assert all(any(r.key == "data_dir" for r in j.inputs) for j in trains)  # hashed like any input


def test_article_preset_validates_and_has_the_articles_jobs(tmp_path):
    p = load_preset(PRESETS / "article.toml", out_dir=tmp_path / "out")
    jobs = p.jobs
    trains = {n: j.settings for n, j in jobs.items() if j.kind == "train"}
    assert trains["train_prev"].model == "prev" and trains["train_prev"].batch_size == 500
    assert trains["train_resnet"].model == "resnet" and trains["train_resnet"].batch_size == 2000  # config.pkl
    assert trains["train_prev"].resolved().split == "train" and trains["train_resnet"].resolved().split == "all"
    assert all(s.precision == "bf16" for s in trains.values())
    assert [o.name for o in jobs["train_resnet"].outputs] == ["e6.pt", "e24.pt"]
    assert trains["train_resnet_w4"].width == 4
    assert all(s.data_dir is None for s in trains.values())  # the data cache / verified download

    walks = {n: j for n, j in jobs.items() if j.kind == "walk"}
    assert all(j.settings.size == 1080 for j in walks.values())
    by_ckpt = {}
    for j in walks.values():
        if j.settings.classes is None:
            by_ckpt.setdefault(j.inputs[0].path.name + str(j.inputs[0].job), set()).add(j.settings.invert)
    assert len(by_ckpt) == 3 and all(v == {True, False} for v in by_ckpt.values())  # prev, e6, e24 both ways
    assert any(j.settings.classes and j.inputs[0].text == "@train_resnet/e24.pt" for j in walks.values())
    stills = [j for j in jobs.values() if j.kind == "still"]
    assert stills and all(j.settings.size == 3240 for j in stills)

    (compare,) = [j for j in jobs.values() if j.kind == "compare"]
    assert [r.text for r in compare.inputs] == ["@train_prev/e24.pt", "@train_resnet/e6.pt", "@train_resnet/e24.pt"]
    assert compare.settings.labels == ("previous", "6 epochs", "24 epochs") and compare.settings.panel_size == 1080
    assert set(compare.deps) == {"train_prev", "train_resnet"}

    steps = make_plan(p)
    order = [s.name for s in steps]
    for s in steps:
        assert all(order.index(d) < order.index(s.name) for d in s.deps)
    assert all(s.action == "run" for s in steps)


def test_quick_preset_validates_and_mirrors_the_article_small(tmp_path):
    p = _quick(tmp_path)
    kinds = {j.kind for j in p.jobs.values()}
    assert kinds == {"train", "walk", "still", "compare"}
    for j in p.jobs.values():
        if j.kind == "train":
            assert j.settings.limit <= 500 and j.settings.epochs <= 2
        elif j.kind == "walk":
            assert j.settings.size <= 128 and j.settings.frames <= 30
        elif j.kind == "compare":
            assert j.settings.panel_size <= 128 and len(j.inputs) == 3
    # the segmented render warns that --workers N is slower with fewer than 4 CPU cores a worker (jobs.segments);
    # the quick preset is for any small box, so it never asks for it (tests/test_segments.py covers segments)
    from pipeline.jobs.segments import MIN_CPU_THREADS

    assert MIN_CPU_THREADS > 1 and all(j.workers == 1 for j in p.jobs.values())
    order = [s.name for s in make_plan(p)]
    assert order.index("train_resnet") < order.index("compare") and order.index("train_prev") < order.index("compare")


@pytest.mark.parametrize("output", ["../../escaped.mp4", "/abs/x.mp4", "../victim", ".", "a/../../b.mp4"])
def test_preset_outputs_stay_inside_out_dir(tmp_path, output):
    preset = tmp_path / "p.toml"
    kind = "train" if "victim" in output else "still"
    body = ('kind = "train"\nmodel = "prev"\nepochs = 1\n' if kind == "train" else 'kind = "still"\nckpt = "e24"\n')
    preset.write_text(f'[settings]\nout_dir = "out"\n\n[jobs.j]\n{body}output = "{output}"\n')
    with pytest.raises(PresetError) as err:
        load_preset(preset)
    msg = str(err.value)
    assert "key output" in msg and "not inside the output folder" in msg
