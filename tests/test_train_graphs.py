"""Training steps as CUDA graphs (train.graphs, issue 26), checked on the CPU with a stand-in for the capture.

The stand-in runs the step's device work when "capturing" (as a capture's warm-up does, with the same side effects
on batch-norm statistics and the dropout generator) and again at each replay, copying the results into the tensors
captured first and then spoiling the fresh ones: so a run through it matches the plain run only if the static
inputs, the restored state, the captured gradients and values are what the update uses. On CUDA (skipped here) the
same comparison runs with real graphs, within float32 tolerance.
"""
import functools
import warnings

import pytest
import torch

from cli_helpers import run_main
from pipeline.coords import grid
from pipeline.errors import UserError
from pipeline.train import TrainConfig, train
from pipeline.train.graphs import StepGraphs
from pipeline.train.schedules import SCHEDULE_FUNCTIONS
from pipeline.train.state import new_state


class Replaying:
    """Stands in for graphs.cuda_capture on the CPU (see the module docstring); counts captures and replays."""

    def __init__(self, spoil=None, fail=None):
        self.captures, self.replays, self.spoil, self.fail = 0, 0, spoil, fail

    def __call__(self, fn):
        if self.fail:
            raise RuntimeError(self.fail)
        self.captures += 1
        out = fn()

        def replay():
            self.replays += 1
            values, grads = fn()
            out[0].copy_(values if self.spoil is None else self.spoil(values))
            for static, fresh in zip(out[1], grads):
                static.copy_(fresh)
                fresh.fill_(float("nan"))  # the parameters' fresh .grad: only the captured ones may be used
            values.fill_(float("nan"))

        return replay, out


@functools.lru_cache(maxsize=None)
def _plain(family, precision="float32", batches=2):
    """_run without graphs (the reference), computed once per test session."""
    return _run(family, precision=precision, batches=batches)


def _run(family, graphs=None, batches=2, precision="float32", device="cpu"):
    """Metrics of `batches` batches of random crops and the weights and buffers after them."""
    cfg = TrainConfig(model=family, width=8 if family == "resnet" else 16, depth=2, batch_size=16, seed=1,
                      precision=precision).resolved()
    with torch.random.fork_rng(devices=[device] if device != "cpu" else []):
        st = new_state(cfg, device)
        st.graphs = graphs
        coords = grid(26, 26, 8.0).to(device)
        data = torch.Generator().manual_seed(0)
        rows = []
        for _ in range(batches):
            real = torch.rand(16, 26, 26, generator=data).to(device)
            labels = torch.randint(0, 10, (16,), generator=data).to(device)
            rows.append(SCHEDULE_FUNCTIONS[family](st, real, labels, coords))
    state = {f"{name}.{k}": v.detach().cpu().clone() for name, m in st.models().items()
             for k, v in m.state_dict().items()}
    return rows, state


@pytest.mark.parametrize("family,precision", [("resnet", "float32"), ("resnet", "bf16"), ("prev", "float32")])
def test_steps_through_captured_graphs_are_the_plain_steps(family, precision):
    want_rows, want_state = _plain(family, precision)
    capture = Replaying()
    graphs = StepGraphs(capture=capture)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no giving up
        rows, state = _run(family, graphs, precision=precision)
    assert rows == want_rows
    assert state.keys() == want_state.keys() and all(torch.equal(state[k], want_state[k]) for k in state)
    steps = sum(sum(r["steps"].values()) + 1 for r in rows)  # + each batch's evaluation
    kinds = {"g", "eval"} | ({"vae"} if family == "prev" else set())
    assert kinds <= set(graphs._graphs) and capture.captures == len(graphs._graphs)
    assert capture.replays == steps  # every step a replay (a kind's first one after its check)
    assert graphs.gave_up is None


@pytest.mark.parametrize("how,said", [
    ("spoil", "CUDA graphs given up at the g step: its values differ from the eager step's by"),
    ("fail", "CUDA graphs given up at the g step: capturing failed (RuntimeError: no capture here)"),
])
def test_a_graph_that_disagrees_or_fails_is_given_up_and_the_run_goes_on_plainly(how, said):
    want_rows, want_state = _plain("resnet")
    capture = Replaying(spoil=lambda v: v + 1) if how == "spoil" else Replaying(fail="no capture here")
    graphs = StepGraphs(capture=capture)
    with pytest.warns(UserWarning) as seen:
        rows, state = _run("resnet", graphs)
    assert [str(w.message) for w in seen if "CUDA graphs" in str(w.message)][0].startswith(said)
    assert len([w for w in seen if "CUDA graphs" in str(w.message)]) == 1  # once, not per step
    assert rows == want_rows and all(torch.equal(state[k], want_state[k]) for k in state)
    assert graphs.gave_up is not None and not graphs._graphs


def test_cuda_graphs_off_cuda_are_refused_in_one_line(tmp_path):
    with pytest.raises(UserError, match="CUDA graphs need a CUDA device, and this run trains on cpu"):
        train(TrainConfig(model="resnet", epochs=1, out_dir=str(tmp_path / "a")), cuda_graphs=True)
    r = run_main(["train", "--model", "resnet", "--epochs", "1", "--out", tmp_path / "run", "--device", "cpu",
                  "--cuda-graphs"])
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "CUDA graphs need a CUDA device" in r.stderr and "--device cuda" in r.stderr
    assert not (tmp_path / "run").exists() and not (tmp_path / "a").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("family", ["resnet", "prev"])
def test_cuda_graph_steps_follow_the_plain_steps(family):
    want_rows, want_state = _run(family, device="cuda", batches=3)
    graphs = StepGraphs()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rows, state = _run(family, graphs, device="cuda", batches=3)
    assert graphs.gave_up is None and {"g", "eval"} <= set(graphs._graphs)
    assert [r["steps"] for r in rows] == [r["steps"] for r in want_rows]
    for got, want in zip(rows, want_rows):
        for k, v in want.items():
            if isinstance(v, float):
                assert got[k] == pytest.approx(v, rel=1e-3, abs=1e-3), k
    for k in want_state:
        assert torch.allclose(state[k].float(), want_state[k].float(), rtol=1e-3, atol=1e-4), k


def test_bench_train_refuses_cuda_graphs_off_cuda():
    from pipeline.bench.train_bench import run_train_bench

    with pytest.raises(UserError, match="CUDA graphs need a CUDA device, and this run trains on cpu"):
        run_train_bench(batch_size=4, models=("resnet",), graphs=True)
