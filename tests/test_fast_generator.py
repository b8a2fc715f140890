"""The fast training forward/backward equals plain autograd: values, parameter and z gradients."""
import pytest
import torch
import torch.nn.functional as F

from pipeline.coords import grid
from pipeline.models import PrevConfig, PrevGenerator, ResnetConfig, ResnetGenerator
from pipeline.train import fast_generator as fg
from pipeline.train.fast_generator import KernelUnavailable, generator_forward

CONFIGS = {
    "article": ResnetConfig(),  # width 6, 24 blocks of 4 ReLU + 1 tanh
    "width4": ResnetConfig(width=4),
    "3blocks-2relu": ResnetConfig(n_blocks=3, relu_layers=2),
}


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny tensors gain nothing from threads, and on cores shared with other processes torch's thread
    barriers made this file 20x slower (57 s instead of 3 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def kernel_or_skip(width: int) -> None:
    try:
        fg.load_kernel(width)
    except KernelUnavailable as exc:
        pytest.skip(f"C kernel unavailable: {exc}")


def backend_or_skip(backend: str, width: int) -> None:
    if backend == "c":
        kernel_or_skip(width)


def make(cfg, seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    gen = ResnetGenerator(cfg).to(dtype)
    # Odd counts: 3 images of 7x5 pixels = 105 pixels, not a multiple of the 16-lane vectors or tiles.
    z = torch.randn(3, cfg.z_dim, dtype=dtype)
    coords = grid(5, 7, dtype=dtype)  # [35, 3]
    return gen, z, coords


def run(gen, z, coords, backend, g_out):
    """Output and gradients [each parameter..., z] for a backward of g_out."""
    gen.zero_grad(set_to_none=True)
    z = z.detach().clone().requires_grad_()
    out = generator_forward(gen, z, coords, backend)
    out.backward(g_out)
    return out.detach(), [p.grad.detach().clone() for p in gen.parameters()] + [z.grad.detach().clone()]


def rel_err(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30)).item()


@pytest.mark.parametrize("backend", ["c", "torch"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_values_and_gradients_match_autograd(name, backend):
    cfg = CONFIGS[name]
    backend_or_skip(backend, cfg.width)
    gen, z, coords = make(cfg)
    g_out = torch.randn(z.shape[0], coords.shape[0], generator=torch.Generator().manual_seed(1))
    out, grads = run(gen, z, coords, backend, g_out)
    out32, grads32 = run(gen, z, coords, "autograd", g_out)
    gen64 = ResnetGenerator(cfg).double()
    gen64.load_state_dict(gen.state_dict())
    out64, grads64 = run(gen64, z.double(), coords.double(), "autograd", g_out.double())

    assert out.shape == (3, 35)
    assert (out - out32).abs().max().item() < 1e-5
    names = [n for n, _ in gen.named_parameters()] + ["z"]
    for n, g, g32, g64 in zip(names, grads, grads32, grads64):
        # Against float64: as close as plain float32 autograd is, or 1e-4 relative. A few parameters
        # (e.g. a last tanh layer with mostly dead ReLUs at width 4) are ill-conditioned sums where
        # float32 autograd itself is off by percents; they get a multiple of autograd's own error.
        assert rel_err(g, g64) <= max(1e-4, 4 * rel_err(g32, g64)), n
    # and directly against float32 autograd, for the well-conditioned majority
    close = sum(rel_err(g, g32) < 1e-4 for g, g32 in zip(grads, grads32))
    assert close >= 0.95 * len(grads)
    assert rel_err(grads[-1], grads32[-1]) < 1e-4  # z's gradient (trains the encoder)


def test_torch_backend_is_exact_algebra_in_float64():
    gen, z, coords = make(CONFIGS["3blocks-2relu"], dtype=torch.float64)
    g_out = torch.randn(3, 35, dtype=torch.float64)
    out, grads = run(gen, z, coords, "torch", g_out)
    ref, ref_grads = run(gen, z, coords, "autograd", g_out)
    assert torch.allclose(out, ref, rtol=0, atol=1e-12)
    for g, r in zip(grads, ref_grads):
        assert rel_err(g, r) < 1e-10


def test_training_like_loss_gives_the_same_parameter_gradients():
    cfg = CONFIGS["article"]
    kernel_or_skip(cfg.width)
    gen, z, coords = make(cfg, seed=3)
    torch.manual_seed(4)
    head = torch.randn(coords.shape[0], 11) * 0.3  # stands in for the classifier: [P] -> 11 logits
    labels = torch.tensor([2, 7, 10])

    def grads_for(backend):
        gen.zero_grad(set_to_none=True)
        zz = z.clone().requires_grad_()
        loss = F.cross_entropy(generator_forward(gen, zz, coords, backend) @ head, labels)
        loss.backward()
        return loss.item(), [p.grad.clone() for p in gen.parameters()] + [zz.grad.clone()]

    loss_c, grads_c = grads_for("c")
    loss_a, grads_a = grads_for("autograd")
    assert loss_c == pytest.approx(loss_a, rel=1e-6)
    assert rel_err(torch.cat([g.flatten() for g in grads_c]), torch.cat([g.flatten() for g in grads_a])) < 1e-4


def test_no_grad_forward_matches_and_builds_no_graph():
    cfg = CONFIGS["article"]
    kernel_or_skip(cfg.width)
    gen, z, coords = make(cfg)
    with torch.no_grad():
        out = generator_forward(gen, z, coords, "c")
        ref = gen(z, coords)
    assert out.grad_fn is None and not out.requires_grad
    assert (out - ref).abs().max().item() < 1e-5


def test_gradients_do_not_depend_on_chunking_or_thread_count(monkeypatch):
    cfg = CONFIGS["3blocks-2relu"]
    kernel_or_skip(cfg.width)
    gen, z, coords = make(cfg)
    z = torch.randn(40, cfg.z_dim)  # 40 x 35 = 1400 pixels
    g_out = torch.randn(40, 35)
    threads = torch.get_num_threads()
    monkeypatch.setattr(fg, "_CHUNK", 256)  # several kernel calls, boundaries inside images and tiles
    try:
        torch.set_num_threads(1)
        out1, grads1 = run(gen, z, coords, "c", g_out)
        torch.set_num_threads(2)
        out2, grads2 = run(gen, z, coords, "c", g_out)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(out1, out2)
    names = [n for n, _ in gen.named_parameters()] + ["z"]
    for n, a, b in zip(names, grads1, grads2):
        if n.startswith("input.") or n == "z":
            # these go on through torch's own matrix products, whose sums may split by thread
            assert rel_err(a, b) < 1e-6, n
        else:
            assert torch.equal(a, b), n  # the kernel's sums run in a fixed order
    # and the split into chunks gives the autograd answer
    _, ref = run(gen, z, coords, "autograd", g_out)
    assert rel_err(torch.cat([g.flatten() for g in grads1]), torch.cat([g.flatten() for g in ref])) < 1e-4


@pytest.mark.parametrize("backend", ["auto", "torch", "c"])
def test_prev_fast_tanh_matches_autograd(backend):
    """prev's sigmoid-based tanh layers against the model's own forward: article config, random weights
    (its N(0, 0.1) init is saturating tanh units, the hardest case for 2 sigmoid(2u) - 1), random z."""
    torch.manual_seed(0)
    gen = PrevGenerator(PrevConfig())
    z, coords = torch.randn(3, 32), grid(13, 11)
    g_out = torch.randn(3, 13 * 11)
    out, grads = run(gen, z, coords, backend, g_out)
    ref, ref_grads = run(gen, z, coords, "autograd", g_out)
    assert (out - ref).abs().max().item() < 1e-6
    assert not torch.equal(out, ref)  # it really is the other path
    for name, a, b in zip([n for n, _ in gen.named_parameters()] + ["z"], grads, ref_grads):
        assert rel_err(a, b) < 1e-5, name


def test_prev_tanh_layer_error_is_a_few_ulps_of_one():
    u = torch.linspace(-12, 12, 200_001).view(-1, 1)
    t = fg._TanhLinear.apply(u, torch.ones(1, 1), torch.zeros(1))
    err = (t.double() - torch.tanh(u.double())).abs()
    assert err.max().item() < 3e-7 and t.abs().max().item() <= 1.0


def test_auto_falls_back_for_float64_and_c_refuses_it():
    gen, z, coords = make(CONFIGS["3blocks-2relu"], dtype=torch.float64)
    with pytest.raises(KernelUnavailable, match="float32"):
        generator_forward(gen, z, coords, "c")
    with torch.no_grad():
        assert torch.allclose(generator_forward(gen, z, coords, "auto"), gen(z, coords), atol=1e-12)


def test_bad_arguments_are_errors():
    gen, z, coords = make(CONFIGS["3blocks-2relu"])
    with pytest.raises(ValueError, match="unknown backend"):
        generator_forward(gen, z, coords, "cuda-magic")
    with pytest.raises(ValueError, match="z must be"):
        generator_forward(gen, z[:, :5], coords)
    with pytest.raises(ValueError, match="coords must be"):
        generator_forward(gen, z, coords[:, :2])
