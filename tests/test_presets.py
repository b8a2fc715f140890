"""The shipped presets validate and describe the article's jobs (quick.toml: the same pipeline, small)."""
from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.batch import load_preset, make_plan
from pipeline.batch.preset import PresetError

PRESETS = Path(__file__).resolve().parents[1] / "presets"


def _quick(tmp_path):
    """quick.toml as shipped; where the repo's neighbour data folder is absent, a copy with synthetic data."""
    path = PRESETS / "quick.toml"
    try:
        return load_preset(path, out_dir=tmp_path / "out")
    except PresetError as e:
        if not all("key data_dir" in p for p in e.problems):
            raise
    from idx_helpers import write_idx_dataset

    data = write_idx_dataset(tmp_path / "data", 0, 600)
    copy = tmp_path / "quick.toml"
    copy.write_text(path.read_text().replace('data_dir = "../../shared/data/mnist"', f'data_dir = "{data}"'))
    return load_preset(copy, out_dir=tmp_path / "out")


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
    assert any(j.workers > 1 for j in p.jobs.values())  # exercises the segmented render
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
