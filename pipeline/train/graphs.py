"""Training steps replayed as CUDA graphs (`cppn-video train --cuda-graphs`, issue 26).

A step issues a few hundred small kernels (encoder, generator, classifier, losses, backward, clipping); launched
one by one from Python, the host's launch time can exceed the GPU's work at small batches. Each kind of step
(schedules.StepKind) has fixed shapes, so its device work (schedules.step_values: forward, backward, clip, the
values stacked; no host sync) is captured once as a CUDA graph on static inputs and replayed for every later step
of that kind. The host still reads each step's values once, checks them and runs the optimiser's update, as
eagerly (finish_step): the schedule's decisions and the NaN guard are unchanged.

What a capture must not change, and how:
* Inputs: the batch is copied into static tensors once per batch, the z noise (still drawn on the CPU noise
  generator, in the same order) into a static tensor before each replay.
* Gradients: each graph owns its gradient tensors; before the update they are made the parameters' .grad.
* Side effects of capturing (warm-up runs update batch-norm statistics and advance the dropout generator):
  every buffer of the models and the device's generator state are restored after the capture, so the first
  replay is the run's step.
* Correctness: the first capture of each kind is checked against the same step run eagerly from the same state
  (values and every gradient within 1e-3 of the largest); on a disagreement or any error in capturing, a
  one-time warning names the kind and the reason and the run continues eagerly.

`capture` is injectable: on CUDA it is cuda_capture; the tests pass a stand-in that re-runs the function and
copies its results into the captured tensors, which checks the bookkeeping on the CPU.
"""
from __future__ import annotations

import warnings

import torch

from pipeline.errors import UserError
from pipeline.train.schedules import Batch, StepKind, draw_eps, finish_step, step_values

WARMUP = 2        # eager runs on a side stream before a capture (cuDNN's choice, the allocator, one-time checks)
AGREE = 1e-3      # a graph's values and gradients against the eager step's, relative to their largest


def require_cuda(device) -> None:
    """The refusal of CUDA graphs anywhere but on CUDA (train, bench train), before any work starts."""
    if torch.device(device).type != "cuda":
        raise UserError(f"CUDA graphs need a CUDA device, and this run trains on {device}; drop --cuda-graphs or "
                        f"pass --device cuda")


def cuda_capture(fn):
    """fn's kernels captured as a CUDA graph -> (replay(), fn's outputs: tensors that each replay rewrites)."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(WARMUP):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn()

    def replay():
        graph.replay()

    replay.graph = graph  # keeps the graph (and its memory pool) alive as long as the replay
    return replay, out


class _Captured:
    def __init__(self, replay, names: list, values: torch.Tensor, grads: list):
        self.replay, self.names, self.values, self.grads = replay, names, values, grads


class StepGraphs:
    """A run's captured steps, one graph per StepKind (taken through schedules.take)."""

    def __init__(self, capture=None):
        self._capture = capture if capture is not None else cuda_capture
        self._graphs: dict[str, _Captured] = {}
        self._static: Batch | None = None
        self._eps: torch.Tensor | None = None
        self._batch = None  # the batch the static inputs hold
        self.gave_up: str | None = None  # why steps run eagerly now (warned once)

    def take(self, st, kind: StepKind, batch: Batch) -> dict:
        eps = draw_eps(st, batch) if kind.fakes else None
        if self.gave_up is not None:
            return finish_step(st, kind, *step_values(st, kind, batch, eps))
        self._load(batch, eps)
        captured = self._graphs.get(kind.name)
        if captured is None:
            captured = self._first(st, kind)
            if captured is None:
                return finish_step(st, kind, *step_values(st, kind, batch, eps))
        else:
            captured.replay()
        for p, g in zip(kind.params(st), captured.grads):
            p.grad = g
        return finish_step(st, kind, captured.names, captured.values)

    def _load(self, batch: Batch, eps: torch.Tensor | None) -> None:
        """The batch (when it is a new one) and this step's noise into the static inputs."""
        if self._static is None:
            self._static = Batch(*(t.clone() for t in batch))
        elif batch is not self._batch:
            for static, t in zip(self._static, batch):
                static.copy_(t)
        self._batch = batch
        if eps is not None:
            if self._eps is None:
                self._eps = torch.zeros_like(eps)
            self._eps.copy_(eps)

    def _first(self, st, kind: StepKind) -> _Captured | None:
        """Capture `kind`, check it against the eager step, and leave its first replay as this step -> the
        captured graph, or None after giving up (the state restored: the caller runs the step eagerly)."""
        inputs = (self._static, self._eps)
        names: list = []

        def device_work():
            got_names, values = step_values(st, kind, *inputs)
            names[:] = got_names
            return values, ([p.grad for p in kind.params(st)] if kind.trains else [])

        before = _snapshot(st)
        try:
            replay, (values, grads) = self._capture(device_work)
            _restore(st, before)
            want_names, want = step_values(st, kind, *inputs)
            want_grads = [p.grad.detach().clone() for p in kind.params(st)] if kind.trains else []
            _restore(st, before)
            replay()
            problem = _disagreement(names, values, grads, want_names, want, want_grads)
        except Exception as e:  # noqa: BLE001 - any failure to capture means: run eagerly
            problem = f"capturing failed ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
        if problem is not None:
            _restore(st, before)
            self.gave_up = f"the {kind.name} step: {problem}"
            warnings.warn(f"CUDA graphs given up at {self.gave_up}; training goes on without them", stacklevel=3)
            return None
        captured = _Captured(replay, list(names), values, grads)
        self._graphs[kind.name] = captured
        return captured


def _disagreement(names, values, grads, want_names, want, want_grads) -> str | None:
    if names != want_names or len(grads) != len(want_grads):
        return "its values differ in kind from the eager step's"
    pairs = [("values", values, want)] + [(f"gradient {i}", g, w) for i, (g, w) in enumerate(zip(grads, want_grads))]
    for what, got, ref in pairs:
        if got is None or got.shape != ref.shape:
            return f"its {what} has another shape than the eager step's"
        scale = float(ref.detach().abs().max().clamp_min(1e-12))
        err = float((got.detach() - ref).abs().max()) / scale
        if not err <= AGREE:  # also NaN
            return f"its {what} differ from the eager step's by {err:.2g} of their largest"
    return None


def _snapshot(st) -> dict:
    """What running a step's device work changes besides its outputs: the models' buffers (batch-norm statistics)
    and the device's random generator (dropout)."""
    buffers = {f"{name}.{b}": t.detach().clone() for name, m in st.models().items() for b, t in m.named_buffers()}
    rng = torch.cuda.get_rng_state(st.device) if st.device.type == "cuda" else torch.get_rng_state()
    return {"buffers": buffers, "rng": rng}


def _restore(st, snap: dict) -> None:
    with torch.no_grad():
        for name, m in st.models().items():
            for b, t in m.named_buffers():
                t.copy_(snap["buffers"][f"{name}.{b}"])
    if st.device.type == "cuda":
        torch.cuda.set_rng_state(snap["rng"], st.device)
    else:
        torch.set_rng_state(snap["rng"])
