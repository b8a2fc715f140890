"""The independent judge of the quick-start benchmark (benchmarks/judge.py, judge_cnn.pt) and how
benchmarks/first_contact.py reads the README's walk."""
from __future__ import annotations

import io
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import first_contact  # noqa: E402
import judge  # noqa: E402
from pipeline.errors import UserError  # noqa: E402
from pipeline.jobs.settings import WalkSettings  # noqa: E402

MNIST = ROOT.parent / "shared" / "data" / "mnist"


def test_judge_is_data_and_not_the_projects_architecture(tmp_path):
    j = judge.load_judge()
    assert j.test_accuracy >= 0.98 and "train_judge.py" in j.train_command
    assert judge.JUDGE_PATH.stat().st_size < 200_000
    ours = torch.load(ROOT / "pipeline" / "evaluate" / "digit_cnn.pt", weights_only=True)["state_dict"]
    mine = j.model.state_dict()
    def kernels(state):  # the shapes of every weight matrix or kernel
        return {tuple(v.shape) for v in state.values() if v.dim() > 1}
    assert kernels(mine).isdisjoint(kernels(ours))  # no layer of the project's classifier
    assert any(k.startswith("bn") for k in mine) and not any(k.startswith("bn") for k in ours)
    p = j.probabilities(torch.rand(5, 26, 26))
    assert p.shape == (5, 10) and torch.allclose(p.sum(1), torch.ones(5))
    # a file that holds code is refused by the safe loader, before anything is built
    class Evil:
        def __reduce__(self):
            return (print, ("ran",))
    bad = tmp_path / "judge.pt"
    buf = io.BytesIO()
    torch.save({"format": judge.FORMAT, "x": Evil()}, buf)
    bad.write_bytes(buf.getvalue())
    with pytest.raises(UserError, match="Python objects"):
        judge.load_judge(bad)


@pytest.mark.skipif(not (MNIST / "t10k-images-idx3-ubyte.gz").exists(), reason="needs ../shared/data/mnist")
def test_judge_reads_mnist_test_digits():
    from pipeline.data import center_crops, load_dataset

    test = load_dataset(data_dir=MNIST, split="test", download=False, limit=500)
    p = judge.load_judge().probabilities(center_crops(test.images))
    assert float((p.argmax(1) == test.labels).float().mean()) >= 0.97


def test_first_contact_reads_the_quick_start_as_the_cli_builds_it():
    ckpt, s = first_contact.walk_settings(first_contact.QUICK_START, 3)
    assert ckpt == "e24"  # the CLI's default checkpoint
    # the rest as the library defaults, but the scale: the CLI frames the keyframes (jobs.framing)
    assert s == replace(WalkSettings(), frames=120, seed=3, fps="30", scale=None)
