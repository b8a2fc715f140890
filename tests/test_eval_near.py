"""eval's near-class measure (class latent + 0.3 N(0, I) read as its class) and its detail column's digits."""
import pytest
import torch

from pipeline.checkpoint import list_bundled, load_checkpoint
from pipeline.cli.eval import significant
from pipeline.digit_classifier import classify
from pipeline.evaluate.metrics import EVAL_SCALE, EVAL_SIZE, load_digit_cnn, near_class
from pipeline.render import Renderer


def test_detail_keeps_two_significant_digits():
    assert [significant(v) for v in (0.00035, 0.0023, 0.011, 0.000090, 8.8e-6, 0.0)] == \
        ["0.00035", "0.0023", "0.011", "9.0e-05", "8.8e-06", "0"]


@pytest.mark.skipif("e24" not in list_bundled(), reason="the bundled e24 checkpoint is not here")
def test_near_class_is_the_class_digits_at_radius_zero_and_falls_far_out():
    ck, cnn = load_checkpoint("e24"), load_digit_cnn()
    with Renderer(ck.generator, EVAL_SIZE, EVAL_SIZE, scale=EVAL_SCALE) as small:
        right = classify(cnn.model, small.render_float(ck.class_latents)).argmax(1) == torch.arange(10)
        share, per = near_class(small, cnn, ck.class_latents, seed=0, radius=0.0, per_class=2)
        assert share == float(right.float().mean()) and per == [float(r) for r in right]
        near, _ = near_class(small, cnn, ck.class_latents, seed=0, per_class=20)
        far, _ = near_class(small, cnn, ck.class_latents, seed=0, radius=3.0, per_class=20)
    assert near > 0.8 and far < near
