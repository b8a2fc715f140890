"""Pinned host slots for a GPU renderer's batches (render.host_ring, issue 26): the ring's logic with a fake event on
the CPU (slots reused only after release, order kept, back-pressure, abort), the video writer piping leases and
giving them back, and on CUDA (skipped without) a walk's frames equal to the synchronous path's."""
import threading
import time

import numpy as np
import pytest
import torch

from pipeline.jobs.encoders import SplitWriter
from pipeline.render.host_ring import HostRing, RingAborted, ring_slots
from pipeline.video import open_writer
from video_helpers import read_video


class FakeEvent:
    """Stands in for a CUDA event: counts the waits on it."""

    made = []

    def __init__(self, device):
        self.device, self.waits = device, 0
        FakeEvent.made.append(self)

    def synchronize(self):
        self.waits += 1


def _batch(i, n=2, h=4, w=6):
    return torch.full((n, h, w), i, dtype=torch.uint8)


def test_slots_are_reused_only_after_release_and_keep_order():
    ring = HostRing(2, event=FakeEvent)
    a, b = ring.put(_batch(1)), ring.put(_batch(2, n=3))
    assert ring.free == 0 and {a.slot, b.slot} == {0, 1}
    assert a.array.shape == (2, 4, 6) and (a.array == 1).all() and len(b) == 3 and (b.array == 2).all()
    b.release()
    b.release()  # idempotent: the slot is not handed out twice
    assert ring.free == 1
    c = ring.put(_batch(3, n=1))  # the smaller batch reuses b's buffer, a's bytes untouched
    assert c.slot == b.slot and (a.array == 1).all() and c.array.shape == (1, 4, 6) and (c.array == 3).all()
    a.release()
    d = ring.put(_batch(4, n=4))  # larger than a's slot: that slot grows
    assert d.slot == a.slot and (d.array == 4).all() and (c.array == 3).all()
    d.wait()
    assert FakeEvent.made[-1].waits == 1 and FakeEvent.made[-1].device == torch.device("cpu")
    with pytest.raises(ValueError):
        HostRing(0)
    assert ring_slots(1) == 3 and ring_slots(8) == 10


def test_a_full_ring_holds_the_renderer_back_and_abort_frees_it():
    ring = HostRing(1, event=FakeEvent)
    first = ring.put(_batch(1))
    got = []
    t = threading.Thread(target=lambda: got.append(ring.put(_batch(2))))
    t.start()
    time.sleep(0.05)
    assert t.is_alive() and not got  # every slot busy: the put waits
    first.release()
    t.join(2)
    assert not t.is_alive() and (got[0].array == 2).all()

    errors = []

    def blocked():
        try:
            ring.put(_batch(3))
        except RingAborted as e:
            errors.append(e)

    t = threading.Thread(target=blocked)
    t.start()
    time.sleep(0.05)
    ring.abort()
    t.join(2)
    assert not t.is_alive() and len(errors) == 1 and ring.free == 1  # woken, and every slot given back
    with pytest.raises(RingAborted):
        ring.put(_batch(4))


def test_writer_waits_on_each_lease_pipes_it_and_gives_it_back(tmp_path):
    FakeEvent.made.clear()
    frames = np.random.default_rng(0).integers(0, 256, (7, 16, 16)).astype(np.uint8)
    ring = HostRing(2, event=FakeEvent)
    with open_writer(tmp_path / "a.mp4", (16, 16), lossless=True, threads=1) as w:
        for start in range(0, 7, 3):
            w.write(ring.put(torch.from_numpy(frames[start:start + 3])))  # each waits for a slot given back
    assert np.array_equal(read_video(tmp_path / "a.mp4"), frames)  # the order and bytes kept
    assert ring.free == 2 and [e.waits for e in FakeEvent.made] == [1, 1, 1]  # waited on before piping

    ring = HostRing(3, event=FakeEvent)
    with pytest.raises(RuntimeError):
        with open_writer(tmp_path / "b.mp4", (16, 16), threads=1) as w:
            w.write(ring.put(torch.from_numpy(frames[:3])))
            w.write(ring.put(torch.from_numpy(frames[3:])))
            raise RuntimeError("stop")
    assert ring.free == 3  # abort gave every queued slot back
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4"]
    with pytest.raises(RuntimeError):
        with SplitWriter(tmp_path / "c.mp4", (16, 16), 7, 2, threads=1) as w:
            w.write(ring.put(torch.from_numpy(frames[:5])))  # spans both ranges: its bytes taken, the slot freed
            assert ring.free == 3 and FakeEvent.made[-1].waits == 1
            raise RuntimeError("stop")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_walk_through_pinned_slots_equals_the_synchronous_frames(tmp_path):
    from pipeline.jobs.encoders import open_encoders, stream_split
    from pipeline.render import Renderer
    from render_helpers import lively_generator

    gen, _ = lively_generator("resnet")
    z = np.random.default_rng(1).standard_normal((13, gen.cfg.z_dim)).astype(np.float32)
    with Renderer(gen, 24, 32, device="cuda") as r:
        want = r.render(z)  # the synchronous .cpu() path
        for encoders in (1, 2):
            out = tmp_path / f"w{encoders}.mp4"
            with open_encoders(out, (32, 24), len(z), encoders, threads=1, lossless=True) as w:
                stream_split(r, z, w, 2, False)
            assert np.array_equal(read_video(out), want)


class _DeviceRenderer:
    """A CPU renderer that says it is on a GPU, so stream_split takes its pinned-slot path here (with FakeEvent)."""

    def __init__(self, renderer):
        self.inner, self.device, self.tensors = renderer, torch.device("cuda"), 0

    def render_tensor(self, z, invert=False, camera=None):
        self.tensors += 1
        return self.inner.render_tensor(z, invert=invert, camera=camera)


def test_stream_split_feeds_its_encoders_through_the_ring(tmp_path, monkeypatch):
    from pipeline.jobs.encoders import open_encoders, stream_split
    from pipeline.render import Renderer, host_ring
    from render_helpers import lively_generator

    made = []
    monkeypatch.setattr(host_ring, "cuda_event", lambda device: made.append(FakeEvent(device)) or made[-1])
    gen, _ = lively_generator("resnet")
    z = np.random.default_rng(1).standard_normal((9, gen.cfg.z_dim)).astype(np.float32)
    with Renderer(gen, 24, 32, path="torch", device="cpu") as r:
        want = r.render(z)
        fake = _DeviceRenderer(r)
        with open_encoders(tmp_path / "w.mp4", (32, 24), len(z), 2, threads=1, lossless=True) as w:
            stream_split(fake, z, w, 2, False)
    assert np.array_equal(read_video(tmp_path / "w.mp4"), want)  # round robin through the slots, order kept
    assert fake.tensors == len(made) == 5 and all(e.waits == 1 for e in made)
