"""`cppn-video serve`'s POST /api/project in-process: a drawing (data URL) or a picture's bytes -> its latent, a
preview that is the renderer's frame of that latent, what the classifier reads, warnings; bad input is one JSON
error and projects nothing."""
from __future__ import annotations

import base64
import io
import warnings

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette", reason="the serve extra is not installed: pip install -e '.[serve-test]'")
pytest.importorskip("httpx", reason="Starlette's TestClient needs httpx: pip install -e '.[serve-test]'")

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient  # noqa: E402

from test_project import typeset  # noqa: E402
from pipeline.checkpoint import load_checkpoint  # noqa: E402
from pipeline.render import Renderer  # noqa: E402
from pipeline.serve.app import create_app  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    import pipeline.serve.project as live

    saved, live.LIVE_STEPS = live.LIVE_STEPS, 2  # the suite's time; the live settings are measured in PERFORMANCE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with TestClient(create_app(out=tmp_path_factory.mktemp("out"))) as c:
            yield c
    live.LIVE_STEPS = saved


def _decode(url: str) -> np.ndarray:
    assert url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


def test_a_drawing_is_projected_and_previewed(client, tmp_path):
    warm = client.post("/api/project", json={"ckpt": "e24", "warm": True})  # the pen touched the canvas
    assert warm.status_code == 200 and warm.json()["warm"] is True
    png = typeset(tmp_path / "three.png", 3).read_bytes()
    url = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    r = client.post("/api/project", json={"ckpt": "e24", "png": url, "size": 48})
    assert r.status_code == 200, r.text
    got = r.json()
    ck = load_checkpoint("e24")
    z = np.asarray(got["z"], dtype=np.float32)[None]
    assert z.shape == (1, ck.z_dim) and np.isfinite(z).all()
    with Renderer(ck.generator, 48, 48, scale=8.0, path="reference") as ref:
        want = ref.render(z)[0]
    preview = _decode(got["png"])
    assert preview.shape == (48, 48) and np.abs(preview.astype(int) - want.astype(int)).max() <= 1
    assert 0 <= got["read"] <= 9 and 0 < got["confidence"] <= 1 and isinstance(got["warnings"], list)
    assert got["steps"] == 2 and got["starts"] == 1
    # the same picture as raw bytes (an upload) gives the same latent
    raw = client.post("/api/project?ckpt=e24&size=48", content=png, headers={"content-type": "image/png"})
    assert raw.status_code == 200 and np.allclose(raw.json()["z"], got["z"], atol=1e-5)


def test_a_blank_drawing_warns(client):
    buf = io.BytesIO()
    Image.new("L", (64, 64), 255).save(buf, format="PNG")
    r = client.post("/api/project", content=buf.getvalue(), headers={"content-type": "image/png"})
    assert r.status_code == 200 and any("blank" in w for w in r.json()["warnings"])


@pytest.mark.parametrize("content, kind, says", [
    (b"not an image", "image/png", "not"),
    (b"hello", "text/plain", "image/png"),
    (b"", "application/octet-stream", "empty"),
])
def test_bad_pictures_are_one_json_error(client, content, kind, says):
    r = client.post("/api/project", content=content, headers={"content-type": kind})
    assert r.status_code == 400 and says in r.json()["error"] and "\n" not in r.json()["error"]


def test_an_oversized_picture_is_refused_before_it_is_read(client):
    r = client.post("/api/project", content=b"\x89PNG" + b"0" * (4 * 1024 * 1024 + 1),
                    headers={"content-type": "image/png"})
    assert r.status_code == 400 and "MB" in r.json()["error"]
