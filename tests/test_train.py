"""Training: the article's schedules learn, checkpoints carry provenance, resume is exact, NaN stops cleanly."""
from __future__ import annotations

import hashlib
import json
import statistics
import threading
from pathlib import Path

import pytest
import torch

from idx_helpers import write_idx_dataset
from pipeline.checkpoint import load_checkpoint, read_checkpoint_dict
from pipeline.errors import UserError
from pipeline.models import ResnetConfig
from pipeline.train import PrevSchedule, ResnetSchedule, TrainConfig, train
from pipeline.train import losses, schedules

REAL_MNIST = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mnist"


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    return write_idx_dataset(tmp_path_factory.mktemp("synthetic"), n_train=320, n_test=0, seed=0)


def rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def check_resnet_schedule(row: dict, s: ResnetSchedule = ResnetSchedule()) -> None:
    """The article's balancing rules, checked on one metrics row."""
    n = row["steps"]
    assert 1 <= n["g"] <= s.g_steps
    if n["g"] < s.g_steps:
        assert row["g_acc"] > s.g_stop_acc  # stopped early only once the generator was accurate
    train_d = row["eval_fake_acc"] < s.d_fake_below and row["g_acc"] > s.d_gen_above
    if train_d:
        assert n["d_real"] == 0 and 1 <= n["d"] <= s.d_steps
        assert n["d"] == s.d_steps or row["fake_acc"] > s.d_stop_fake_acc
    else:
        assert n["d"] == 0
        if row["eval_real_acc"] < s.d_real_below:
            assert 1 <= n["d_real"] <= s.d_real_steps
            assert n["d_real"] == s.d_real_steps or row["real_acc"] > s.d_real_stop_acc
        else:
            assert n["d_real"] == 0


def assert_learns(out: Path) -> None:
    """Classifier accuracy on real digits and generator accuracy rise clearly above chance."""
    rs = rows(out)
    half = rs[len(rs) // 2:]
    real = statistics.mean(r["eval_real_acc"] for r in half)  # first epoch: digits it has not trained on
    gen = statistics.mean(r["g_acc"] for r in half)
    assert real > 0.4 and real > rs[0]["eval_real_acc"] + 0.2, [r["eval_real_acc"] for r in rs]
    # chance is 1/11; 0.15 over 5 batches of 32 is > 3 standard errors above it
    assert gen > 0.15, [r["g_acc"] for r in rs]
    for r in rs:
        check_resnet_schedule(r)


def test_resnet_learns(synthetic, tmp_path):
    """Ten batches of the resnet lower the losses: on real MNIST digits where ../shared has them, else on the
    synthetic ones (one run either way: it is the same property, and each run costs seconds)."""
    real = (REAL_MNIST / "train-images-idx3-ubyte.gz").exists()
    cfg = TrainConfig(model="resnet", depth=2, epochs=1, batch_size=32, limit=320 if real else None,
                      seed=0 if real else 1, out_dir=str(tmp_path / "run"),
                      data_dir=str(REAL_MNIST if real else synthetic))
    result = train(cfg)
    assert not result.interrupted and result.epoch == 1 and result.batches == 10
    assert result.note == "" or not real  # synthetic data has no test split for the digit bank
    assert len(rows(tmp_path / "run")) == 10
    assert_learns(tmp_path / "run")


def test_article_architecture_trains_and_checkpoints(synthetic, tmp_path):
    """The default (article) resnet on two batches: outputs, metadata and a loadable training state."""
    out = tmp_path / "run"
    events = []
    result = train(TrainConfig(epochs=1, batch_size=16, limit=32, seed=5, out_dir=str(out),
                               data_dir=str(synthetic)), progress=events.append)
    assert result.epoch == 1 and result.batches == 2 and not result.interrupted
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "e1.pt", "metrics.jsonl", "state.pt"]
    assert [e["event"] for e in events] == ["start", "batch", "batch", "epoch"]
    assert events[0]["total"] == 2 and events[-1]["saved"] == [out / "e1.pt"]

    ck = load_checkpoint(out / "e1.pt")
    assert ck.kind == "render" and ck.generator_config == ResnetConfig()  # 24 blocks of width 6
    assert ck.class_latents.shape == (10, 32) and torch.isfinite(ck.class_latents).all()
    m = ck.meta
    assert m["family"] == "resnet" and m["epoch"] == 1 and m["batches"] == 2 and m["images_seen"] == 32
    assert m["seed"] == 5 and m["batch_size"] == 16 and m["limit"] == 32
    assert m["hyperparameters"]["train"]["schedule"] == vars(ResnetSchedule())
    assert m["hyperparameters"]["encoder"]["keep_prob"] == 0.65
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in synthetic.iterdir()}
    assert m["dataset"]["files"] == files and m["dataset"]["n_images"] == 32 and m["dataset"]["name"] == "mnist"
    assert m["command"][:4] == ["cppn-video", "train", "--model", "resnet"] and "--seed" in m["command"]
    assert sum(m["steps"].values()) == sum(sum(r["steps"].values()) for r in rows(out))
    for r in rows(out):
        check_resnet_schedule(r)

    state = load_checkpoint(out / "state.pt")  # a training state renders too
    assert state.kind == "train" and torch.equal(state.class_latents, ck.class_latents)
    a, b = state.generator.state_dict(), ck.generator.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["depth"] == 24 and config["config"]["width"] == 6 and config["config"]["batch_size"] == 16


def test_prev_schedule_step_counts(synthetic, tmp_path):
    """Part one's model at the article's size: 4 VAE steps, up to 4 G steps, at most 1 D step per batch."""
    s = PrevSchedule()
    train(TrainConfig(model="prev", epochs=1, batch_size=16, limit=32, out_dir=str(tmp_path / "run"),
                      data_dir=str(synthetic)))
    rs = rows(tmp_path / "run")
    assert len(rs) == 2
    for r in rs:
        n = r["steps"]
        assert n["vae"] == s.vae_steps and 1 <= n["g"] <= s.g_steps
        assert n["g"] == s.g_steps or r["g_loss"] < s.g_stop_loss
        assert n["d"] == int(r["eval_d_loss"] > s.d_above and r["g_loss"] < s.d_g_below)
        for k in ("vae_loss", "g_loss", "d_loss"):
            assert r[k] == r[k] and r[k] >= 0  # finite, not NaN
    ck = load_checkpoint(tmp_path / "run" / "e1.pt")
    assert ck.family == "prev" and ck.generator_config.width == 128


def state_dicts(path: Path) -> dict:
    data, _ = read_checkpoint_dict(path)
    return {k: data[k] for k in ("generator", "encoder", "classifier")} | {"optimizers": data["optimizers"]}


def assert_same_tensors(a, b, where="") -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same_tensors(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_tensors(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


@pytest.mark.parametrize("model", ["resnet", "prev"])
def test_interrupt_and_resume_equals_uninterrupted(synthetic, tmp_path, model):
    base = dict(model=model, depth=1, width=6 if model == "resnet" else 16, epochs=2, batch_size=32, limit=64,
                seed=7, data_dir=str(synthetic), save_at=(1,))
    train(TrainConfig(out_dir=str(tmp_path / "a"), **base))

    if model == "resnet":  # a callable that fires at the 4th batch boundary (before epoch 2's batch 2)
        calls = {"n": 0}

        def stop():
            calls["n"] += 1
            return calls["n"] == 4
    else:  # a threading.Event set from another place (here: the progress callback after batch 1)
        stop = threading.Event()

    def progress(event):
        if model == "prev" and event["event"] == "batch" and event["batch"] == 1 and event["epoch"] == 1:
            stop.set()

    first = train(TrainConfig(out_dir=str(tmp_path / "b"), **base), stop_flag=stop, progress=progress)
    assert first.interrupted
    position = read_checkpoint_dict(tmp_path / "b" / "state.pt")[0]["position"]
    assert position == ({"epoch": 1, "batch": 1} if model == "resnet" else {"epoch": 0, "batch": 1})
    second = train(TrainConfig(out_dir=str(tmp_path / "b"), **base), resume=True)
    assert not second.interrupted and second.epoch == 2 and second.batches == 4

    for name in ("state.pt",):
        assert_same_tensors(state_dicts(tmp_path / "a" / name), state_dicts(tmp_path / "b" / name))
    for name in ("e1.pt", "e2.pt"):
        a, b = load_checkpoint(tmp_path / "a" / name), load_checkpoint(tmp_path / "b" / name)
        assert_same_tensors(a.generator.state_dict(), b.generator.state_dict())
        assert torch.equal(a.class_latents, b.class_latents)
    strip = lambda rs: [{k: v for k, v in r.items() if k != "time"} for r in rs]  # noqa: E731
    assert strip(rows(tmp_path / "a")) == strip(rows(tmp_path / "b"))


def test_resume_checks_settings_and_fresh_runs_do_not_overwrite(synthetic, tmp_path):
    base = dict(model="prev", depth=1, width=8, epochs=1, batch_size=32, limit=64, data_dir=str(synthetic),
                out_dir=str(tmp_path / "run"))
    with pytest.raises(UserError, match="nothing to resume"):
        train(TrainConfig(**base), resume=True)
    train(TrainConfig(**base))
    with pytest.raises(UserError, match="already holds a training run"):
        train(TrainConfig(**base))
    with pytest.raises(UserError, match=r"seed: run has 0, asked 3"):
        train(TrainConfig(**{**base, "seed": 3}), resume=True)
    other = write_idx_dataset(tmp_path / "other", n_train=320, n_test=0, seed=1)  # same size, other images
    with pytest.raises(UserError, match="data differs"):
        train(TrainConfig(**{**base, "data_dir": str(other)}), resume=True)
    done = train(TrainConfig(**base), resume=True)  # already complete: nothing to do
    assert done.epoch == 1 and done.checkpoints == [] and len(rows(tmp_path / "run")) == 2


def test_nan_loss_stops_and_keeps_last_good_state(synthetic, tmp_path, monkeypatch):
    out = tmp_path / "run"
    poison = {"on": False}
    real_kl = losses.kl_loss

    def kl_or_nan(mu, logvar, n_pixels):
        value = real_kl(mu, logvar, n_pixels)
        return value * float("nan") if poison["on"] else value

    monkeypatch.setattr(losses, "kl_loss", kl_or_nan)

    def progress(event):
        if event["event"] == "epoch" and event["epoch"] == 1:
            poison["on"] = True  # the loss goes bad in the second epoch

    cfg = TrainConfig(model="resnet", depth=1, epochs=2, save_at=(1,), batch_size=32, limit=64,
                      data_dir=str(synthetic), out_dir=str(out))
    with pytest.raises(UserError) as err:
        train(cfg, progress=progress)
    msg = str(err.value)
    assert "KL became NaN or infinite at epoch 2 batch 1" in msg and "\n" not in msg
    assert f"last good checkpoint: {out / 'state.pt'} (after epoch 1, batch 0)" in msg
    assert not (out / "e2.pt").exists()
    state = load_checkpoint(out / "state.pt")
    e1 = load_checkpoint(out / "e1.pt")
    for k, v in state.generator.state_dict().items():
        assert torch.isfinite(v).all() and torch.equal(v, e1.generator.state_dict()[k])
    assert len(rows(out)) == 2  # the failed batch wrote no metrics line


def _toy_step(loss_of, clip=5.0):
    """(state, StepKind) of a one-weight step whose loss is loss_of(weight): schedules.take's machinery alone."""
    from types import SimpleNamespace

    lin = torch.nn.Linear(10, 1, bias=False)
    torch.nn.init.ones_(lin.weight)
    st = SimpleNamespace(cfg=SimpleNamespace(schedule=SimpleNamespace(grad_clip=clip)), graphs=None,
                         optimizers={"t": torch.optim.SGD(lin.parameters(), lr=1.0)})

    def compute(st, batch, eps):
        loss = loss_of(lin.weight)
        return loss, {"loss": loss}

    return st, lin, schedules.StepKind("t", compute, lambda st: (lin,), lambda st: (), {"loss": "L"}, "test",
                                       fakes=False)


def test_step_clips_to_global_norm_and_refuses_nan():
    st, lin, kind = _toy_step(lambda w: (1000.0 * w).sum())
    assert schedules.take(st, kind, None) == {"loss": 10_000.0}
    assert torch.allclose(lin.weight.grad.norm(), torch.tensor(5.0))  # 1000*sqrt(10) clipped to 5
    assert torch.allclose(lin.weight.detach(), torch.full((1, 10), 1 - 5 / 10 ** 0.5))  # the clipped step taken

    st, lin, kind = _toy_step(lambda w: (w * float("inf")).sum() - (w * float("inf")).sum())
    with pytest.raises(schedules.NonFinite, match="^L$"):  # the loss is named before the norm
        schedules.take(st, kind, None)
    assert (lin.weight.detach() == 1).all()  # no update
    st, lin, kind = _toy_step(lambda w: (w * torch.tensor([float("inf")] + [0.0] * 9)).sum() * 0.0)
    kind = schedules.StepKind(kind.name, kind.compute, kind.modules, kind.frozen, {}, "test", fakes=False)
    with pytest.raises(schedules.NonFinite, match="test gradient norm"):  # a finite loss, an infinite gradient
        schedules.take(st, kind, None)
    assert (lin.weight.detach() == 1).all()


_READS = ("item", "tolist", "__float__", "__int__", "__bool__", "numpy", "cpu")


@pytest.mark.parametrize("model", ["resnet", "prev"])
def test_each_optimiser_step_reads_the_device_once(synthetic, tmp_path, monkeypatch, model):
    """The schedules read every value of a step (losses, accuracies, the gradient norm) in one copy: on a GPU
    each read is a host sync that drains the queue of launched kernels. Counted here: every tensor-to-host
    read made from the package's code while a batch's schedule runs; one per optimiser step and one for the
    evaluation before the classifier's steps."""
    import sys

    reads, active, batches = [], [False], []

    def counting(name, original):
        def read(self, *args, **kwargs):
            if active[0] and "/pipeline/" in sys._getframe(1).f_code.co_filename.replace("\\", "/"):
                reads.append((name, sys._getframe(1).f_code.co_name))
            return original(self, *args, **kwargs)
        return read

    for name in _READS:
        monkeypatch.setattr(torch.Tensor, name, counting(name, getattr(torch.Tensor, name)))
    schedule = schedules.SCHEDULE_FUNCTIONS[model]

    def counted(*args, **kwargs):
        reads.clear()
        active[0] = True
        try:
            m = schedule(*args, **kwargs)
        finally:
            active[0] = False
        batches.append((sum(m["steps"].values()), list(reads)))
        return m

    monkeypatch.setitem(schedules.SCHEDULE_FUNCTIONS, model, counted)
    train(TrainConfig(model=model, depth=1, width=16, epochs=1, batch_size=32, limit=64, seed=2,
                      out_dir=str(tmp_path / "run"), data_dir=str(synthetic)))
    assert len(batches) == 2
    for steps, batch_reads in batches:
        assert steps >= 2 and len(batch_reads) == steps + 1, (steps, batch_reads)


def test_losses_match_the_article():
    mu, logvar = torch.zeros(4, 32), torch.zeros(4, 32)
    assert losses.kl_loss(mu, logvar, 676).item() == 0.0
    mu = torch.full((2, 32), 2.0)  # KL per image = 0.5 * sum(mu^2) = 64
    assert losses.kl_loss(mu, torch.zeros(2, 32), 676).item() == pytest.approx(64.0 / 676)
    real, fake = torch.randn(6, 11), torch.randn(6, 11)
    labels = torch.tensor([0, 1, 2, 3, 4, 9])
    out = losses.classifier_losses(real, fake, labels)
    ce = torch.nn.functional.cross_entropy
    assert out["d_fake"].item() == pytest.approx(ce(fake, torch.full((6,), 10)).item())
    assert out["d_loss"].item() == pytest.approx((10 * ce(real, labels).item() + out["d_fake"].item()) / 11)


def test_config_validation(synthetic, tmp_path):
    with pytest.raises(UserError, match=r"save_at epochs must be within 1\.\.2"):
        TrainConfig(epochs=2, save_at=(3,)).resolved()
    with pytest.raises(UserError, match="unknown model"):
        TrainConfig(model="vae").resolved()
    resolved = TrainConfig(model="prev").resolved()
    assert (resolved.width, resolved.depth, resolved.batch_size) == (128, 3, 500)
    assert resolved.schedule == PrevSchedule()
    assert TrainConfig.from_dict(resolved.to_dict()) == resolved
    with pytest.raises(UserError, match="batch size 2000 is larger than the 64 training images"):
        train(TrainConfig(epochs=1, limit=64, data_dir=str(synthetic), out_dir=str(tmp_path / "x")))
