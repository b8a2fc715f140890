"""Training on a device other than the CPU: what can be checked without a GPU, and a round trip where one exists.

The "meta" device stands in for a GPU here: tensors there have shapes but no data, so a CPU-only
assumption (a CPU generator drawing straight onto the model's device, the C kernel picked for a
non-CPU tensor) fails on it the way it would on CUDA.
"""
from __future__ import annotations

import pytest
import torch

from cli_helpers import run_main
from idx_helpers import write_idx_dataset
from pipeline.models import ResnetConfig, ResnetGenerator, reparameterize
from pipeline.train import TrainConfig, fast_generator, train
from pipeline.train.state import new_state, payload


def test_a_cpu_noise_generator_serves_latents_on_another_device():
    mu, logvar = torch.zeros(3, 32, device="meta"), torch.zeros(3, 32, device="meta")
    z = reparameterize(mu, logvar, torch.Generator().manual_seed(0))
    assert z.device.type == "meta" and z.shape == (3, 32)
    # On the CPU the draw is the generator's stream, as before.
    a = reparameterize(torch.zeros(2, 4), torch.zeros(2, 4), torch.Generator().manual_seed(5))
    assert torch.equal(a, torch.randn(2, 4, generator=torch.Generator().manual_seed(5)))


def test_auto_backend_runs_the_models_own_forward_off_the_cpu(monkeypatch):
    def no(*args, **kwargs):
        raise AssertionError("the channels-first / C paths are slower than autograd on a GPU")

    monkeypatch.setattr(fast_generator, "_forward_torch", no)
    monkeypatch.setattr(fast_generator, "_forward_c", no)
    monkeypatch.setattr(fast_generator, "_forward_prev", no)
    gen = ResnetGenerator(ResnetConfig(width=4, n_blocks=2)).to("meta")
    out = fast_generator.generator_forward(gen, torch.zeros(2, 32, device="meta"),
                                           torch.zeros(9, 3, device="meta"), "auto")
    assert out.shape == (2, 9) and out.device.type == "meta"
    with pytest.raises(AssertionError):  # on the CPU, auto still takes a fast path
        fast_generator.generator_forward(gen.to_empty(device="cpu"), torch.zeros(2, 32), torch.zeros(9, 3), "auto")


def test_state_payload_holds_cpu_copies_only():
    cfg = TrainConfig(model="resnet", width=4, depth=2, batch_size=4).resolved()
    with torch.random.fork_rng(devices=[]):
        st = new_state(cfg, "cpu")
    # One optimiser step so Adam has moment tensors to save.
    loss = sum(p.sum() for p in st.generator.parameters())
    loss.backward()
    st.optimizers["g"].step()
    p = payload(st, torch.zeros(10, 32), {})
    tensors = []

    def walk(v):
        if isinstance(v, torch.Tensor):
            tensors.append(v)
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(x)

    walk(p)
    assert tensors and all(t.device.type == "cpu" for t in tensors)
    key = next(iter(st.optimizers["g"].state_dict()["state"]))  # a parameter the step updated
    live = st.optimizers["g"].state_dict()["state"][key]["exp_avg"]
    saved = p["optimizers"]["g"]["state"][key]["exp_avg"]
    assert torch.equal(live, saved) and saved.data_ptr() != live.data_ptr()  # a copy, not the live buffer
    assert "cuda" not in p["rng"]  # a CPU run has no CUDA generator to save


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_asking_for_cuda_without_it_is_a_one_line_error(tmp_path):
    r = run_main(["train", "--model", "resnet", "--epochs", "1", "--out", tmp_path / "run", "--device", "cuda"])
    assert r.returncode != 0
    assert "CUDA is not available here; use cpu" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_run_saved_on_cuda_resumes_on_the_cpu(tmp_path):
    data = write_idx_dataset(tmp_path / "data", n_train=40, n_test=0, seed=0)
    cfg = TrainConfig(model="resnet", width=4, depth=2, epochs=2, batch_size=20,
                      out_dir=str(tmp_path / "run"), data_dir=str(data))
    first = train(cfg, device="cuda", stop_flag=lambda: False)
    assert first.epoch == 2
    more = train(TrainConfig(**{**cfg.__dict__, "epochs": 3}), resume=True, device="cpu")
    assert more.epoch == 3 and (tmp_path / "run" / "e3.pt").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("family", ["resnet", "prev"])
def test_a_cuda_batch_waits_for_the_gpu_once_per_optimiser_step(family):
    """The host reads a step's values once (schedules._step); nothing else in a batch may wait for the GPU: a
    pageable copy of the z noise or the data would drain the queue mid-step (devices.to_device)."""
    import warnings

    from pipeline.coords import grid
    from pipeline.devices import to_device
    from pipeline.train.schedules import SCHEDULE_FUNCTIONS

    cfg = TrainConfig(model=family, width=4, depth=2, batch_size=20).resolved()
    cuda = torch.device("cuda")
    with torch.random.fork_rng(devices=[cuda]):
        st = new_state(cfg, cuda)
        coords = grid(26, 26, 8.0).to(cuda)
        batch = lambda: SCHEDULE_FUNCTIONS[family](  # noqa: E731
            st, to_device(torch.rand(20, 26, 26), cuda), to_device(torch.randint(0, 10, (20,)), cuda), coords)
        batch()  # the first batch carries one-time checks (the triton backend's agreement with autograd)
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as seen:
                warnings.simplefilter("always")
                m = batch()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = [(w.filename.rsplit("/", 1)[-1], w.lineno) for w in seen if "synchroniz" in str(w.message)]
    assert len(syncs) == sum(m["steps"].values()) + 1, syncs  # each step's read, and the classifier's evaluation
