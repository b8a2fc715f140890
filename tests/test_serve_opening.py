"""serve says which checkpoint the page opens on and why, and when that one is collapsed (draws nothing)."""
import pytest
import torch

from pipeline.checkpoint import list_bundled, resolve_checkpoint, save_render_checkpoint
from pipeline.models.generators import ResnetConfig, ResnetGenerator
from pipeline.serve.workspace import Workspace


@pytest.mark.skipif("e24" not in list_bundled(), reason="the bundled e24 checkpoint is not here")
def test_serve_names_what_it_opened(tmp_path):
    assert Workspace(out=tmp_path / "o").opening() == "opened e24: the default"
    lively = resolve_checkpoint("e24")  # a file given by path
    assert Workspace([str(lively)], out=tmp_path / "o").opening() == f"opened {lively.stem}: given with --ckpt"
    gen = ResnetGenerator(ResnetConfig()).eval()
    with torch.no_grad():  # a run gone all black: the output layer saturates to 0 whatever the input
        gen.out.weight.zero_()
        gen.out.bias.fill_(-20.0)
    dead = save_render_checkpoint(tmp_path / "dead.pt", gen, torch.randn(10, gen.cfg.z_dim), {"epoch": 5})
    text = Workspace([str(dead), "e6"], out=tmp_path / "o").opening()
    assert text.startswith("opened dead: given with --ckpt (the first); it is collapsed (100% of its class means "
                           "render blank") and "pick another" in text
