"""The Triton training kernels (backend "triton") against plain autograd, on the CPU through Triton's
interpreter (TRITON_INTERPRET=1): the forward's values and every parameter's and z's gradient.

The interpreter must be switched on before triton is imported, so the check runs in a subprocess.
"""
import json

import pytest

from proc_helpers import run_interpreted

pytest.importorskip("triton", reason="triton is not installed (pip install triton)")

SCRIPT = r"""
import copy, json, sys, torch
sys.path.insert(0, sys.argv[1])
from pipeline.coords import grid
from pipeline.models import ResnetConfig, ResnetGenerator
from pipeline.train import triton_train
from pipeline.train.fast_generator import generator_forward

torch.set_num_threads(1)
rows = []
# 2 images of 6x6 = 72 pixels: with 64-pixel backward tiles, two programs (the second masked past pixel 8),
# so the per-tile weight-gradient partials are summed and masked lanes must add nothing. Width 6 (the
# checkpoints') and 4 (the article's other width); few blocks, as the interpreter pays per operation.
for width, n_blocks, relu_layers in ((6, 1, 4), (4, 2, 2)):
    torch.manual_seed(3)  # a lively draw for both widths
    gen = ResnetGenerator(ResnetConfig(width=width, n_blocks=n_blocks, relu_layers=relu_layers))
    with torch.no_grad():  # livelier than the init's near-identity tanh layers: every branch matters
        for block in gen.blocks:
            block.tanh.weight.normal_(0.0, 0.5)
            block.tanh.bias.normal_(0.0, 0.5)
        for p in (*gen.input.parameters(), *gen.out.parameters()):
            p.normal_(0.0, 0.5)
    z0 = torch.randn(2, 32)
    coords = grid(6, 6)
    g_out = torch.randn(2, 36)
    triton_train.BACKWARD_BLOCK = 64
    res = {}
    # the oracle: the "autograd" backend in float64 on the same weights (float32 autograd is itself as far off
    # it as the kernels: 2e-6 and 9e-6 here, relative to the largest entry)
    for backend, model, dtype in (("autograd", copy.deepcopy(gen).double(), torch.float64),
                                  ("triton", gen, torch.float32)):
        z = z0.clone().to(dtype).requires_grad_()
        out = generator_forward(model, z, coords.to(dtype), backend)
        out.backward(g_out.to(dtype))
        res[backend] = [out.detach()] + [p.grad.clone() for p in model.parameters()] + [z.grad.clone()]
    names = ["out"] + [n for n, _ in gen.named_parameters()] + ["z"]
    errs = {n: float((a.double() - b).abs().max() / b.abs().max().clamp_min(1e-30))
            for n, a, b in zip(names, res["triton"], res["autograd"])}
    sizes = {n: float(b.abs().max()) for n, b in zip(names, res["autograd"])}
    rows.append(dict(width=width, n_blocks=n_blocks, relu_layers=relu_layers, errs=errs, sizes=sizes,
                     shape=list(res["triton"][0].shape), out_std=float(res["autograd"][0].std())))
print(json.dumps(rows))
"""


def test_triton_training_kernels_match_autograd_in_interpreter():
    rows = json.loads(run_interpreted(SCRIPT).strip().splitlines()[-1])
    assert [r["width"] for r in rows] == [6, 4]
    for r in rows:
        assert r["shape"] == [2, 36] and r["out_std"] > 0.02
        # the output, every parameter (input z and xyr, each block layer's weight and bias, the output layer) and
        # z, none of them zero; each within float32 rounding of float64 autograd, relative to its largest entry
        assert len(r["errs"]) == 1 + 3 + r["n_blocks"] * (r["relu_layers"] + 1) * 2 + 2 + 1, r
        assert all(v > 1e-3 for v in r["sizes"].values()), r
        bad = {n: e for n, e in r["errs"].items() if not e < 5e-5}
        assert not bad, (r["width"], bad)


def test_triton_backend_without_cuda_or_interpreter_says_so(monkeypatch):
    import torch

    from pipeline.coords import grid
    from pipeline.models import ResnetConfig, ResnetGenerator
    from pipeline.train.fast_generator import KernelUnavailable, generator_forward

    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    gen = ResnetGenerator(ResnetConfig(n_blocks=1))
    with pytest.raises(KernelUnavailable, match="float32 CUDA tensors"):
        generator_forward(gen, torch.zeros(1, 32), grid(2, 2), "triton")


def test_auto_falls_back_to_autograd_with_one_warning_when_the_kernels_do_not_compile(monkeypatch):
    """A GPU whose triton cannot build the kernels: "auto" warns once and trains with the model's own forward;
    "triton" named says why. Stood in for by the CPU without the interpreter (a launch there fails: no driver)."""
    import warnings

    import torch

    from pipeline.coords import grid
    from pipeline.models import ResnetConfig, ResnetGenerator
    from pipeline.train import fast_generator, triton_train
    from pipeline.train.fast_generator import KernelUnavailable, generator_forward

    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setattr(triton_train, "applies", lambda tensors: True)  # as if these were CUDA tensors
    monkeypatch.setattr(triton_train, "_ready", {})
    monkeypatch.setattr(fast_generator, "_warned", set())
    gen = ResnetGenerator(ResnetConfig(n_blocks=1))
    z, coords = torch.randn(2, 32), grid(3, 3)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        reason = triton_train.compile_error(1, 6, 4, z.device)
        out = fast_generator._triton_usable(gen, z, coords), fast_generator._triton_usable(gen, z, coords)
    assert reason and out == (False, False)
    msgs = [str(w.message) for w in seen if issubclass(w.category, RuntimeWarning)]
    assert msgs == [f"the triton training kernels do not compile here, training runs plain autograd: {reason}"]
    with pytest.raises(KernelUnavailable, match="the triton training kernels do not compile here"):
        generator_forward(gen, z, coords, "triton")


def test_bench_train_takes_the_backend_and_refuses_triton_off_cuda(monkeypatch):
    from click.testing import CliRunner

    from pipeline.bench.train_bench import run_train_bench
    from pipeline.cli import cli
    from pipeline.errors import UserError

    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(UserError, match="unknown generator backend 'nope'; choose from auto, c, torch, triton"):
        run_train_bench(backend="nope")
    r = CliRunner().invoke(cli, ["bench", "train", "--backend", "triton", "--device", "cpu"])
    assert isinstance(r.exception, UserError), r.output  # run_cli prints it as one `error:` line
    assert str(r.exception) == "the triton backend runs on CUDA, not cpu; pass --device cuda or another --backend"


def test_auto_checks_the_kernels_against_autograd_before_training_with_them(monkeypatch):
    """The kernels compile, but give a wrong gradient (as a miscompiled GPU kernel could): "auto" finds it on a
    slice of the first step, warns once naming the tensor, and trains with autograd. Stood in for on the CPU:
    a triton forward that is autograd's plus a term whose gradient reaches out.bias wrongly."""
    import warnings

    import torch

    from pipeline.coords import grid
    from pipeline.models import ResnetConfig, ResnetGenerator
    from pipeline.train import fast_generator, triton_train

    monkeypatch.setattr(triton_train, "applies", lambda tensors: True)
    monkeypatch.setattr(triton_train, "compile_error", lambda *a: None)
    monkeypatch.setattr(fast_generator, "_warned", set())
    monkeypatch.setattr(fast_generator, "_agreed", {})
    gen = ResnetGenerator(ResnetConfig(n_blocks=1))
    z, coords = torch.randn(3, 32), grid(9, 9)
    right = fast_generator._forward_torch
    monkeypatch.setattr(fast_generator, "_forward_triton", right)
    assert fast_generator._triton_usable(gen, z, coords)  # agreeing kernels are used
    monkeypatch.setattr(fast_generator, "_agreed", {})
    monkeypatch.setattr(fast_generator, "_forward_triton",
                        lambda g, zz, cc: right(g, zz, cc) + 0.5 * (g.out.bias - g.out.bias.detach()))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        out = fast_generator._triton_usable(gen, z, coords), fast_generator._triton_usable(gen, z, coords)
    assert out == (False, False)
    msgs = [str(w.message) for w in seen if issubclass(w.category, RuntimeWarning)]
    assert len(msgs) == 1 and "disagree with autograd" in msgs[0] and "out.bias differs by" in msgs[0], msgs
