"""`cppn-video serve`'s API in-process (Starlette's TestClient): live frames over the WebSocket equal the
renderer's, walk previews follow walk_path, render jobs make the same video as `walk` with progress, cancel
leaves nothing, bad input gets a JSON error, and the token and --out fences hold."""
from __future__ import annotations

import ast
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("starlette", reason="the serve extra is not installed: pip install -e '.[serve-test]'")
pytest.importorskip("httpx", reason="Starlette's TestClient needs httpx: pip install -e '.[serve-test]'")

with warnings.catch_warnings():  # Starlette >= 1.0 would rather run its TestClient on httpx2
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient  # noqa: E402
from starlette.websockets import WebSocketDisconnect  # noqa: E402

from cli_helpers import run_main  # noqa: E402
from pipeline.checkpoint import load_checkpoint  # noqa: E402
from pipeline.latents import seed_latents, walk_path  # noqa: E402
from pipeline.render import Renderer  # noqa: E402
from pipeline.serve.app import FRAME_HEADER, KIND_PREVIEW, KIND_WALK, create_app  # noqa: E402
from video_helpers import read_video  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # TestClient on httpx (Starlette >= 1.x)


@pytest.fixture(scope="module")
def e24():
    return load_checkpoint("e24")


@pytest.fixture()
def client(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        app = create_app(out=tmp_path / "out")
        with TestClient(app) as c:
            c.out = tmp_path / "out"
            yield c


def _frame(data: bytes):
    rid, w, h, n, kind = FRAME_HEADER.unpack(data[:FRAME_HEADER.size])
    return rid, kind, np.frombuffer(data[FRAME_HEADER.size:], np.uint8).reshape(n, h, w)


def _job_events(ws, until=("done", "cancelled", "failed")):
    events = []
    while True:
        msg = ws.receive_json()
        if msg["type"] == "job":
            events.append(msg["job"])
            if msg["job"]["state"] in until:
                return events


def test_preview_over_websocket_is_the_renderers_frame(client, e24):
    z = seed_latents([3], e24.z_dim)
    with client.websocket_connect("/ws") as ws:
        assert ws.receive_json() == {"type": "job", "job": {"state": "idle"}}
        for rid, invert in ((7, False), (8, True)):
            ws.send_text(json.dumps({"type": "preview", "id": rid, "ckpt": "e24", "z": z[0].tolist(), "size": 96,
                                     "invert": invert}))
            got_id, kind, frames = _frame(ws.receive_bytes())
            assert (got_id, kind, frames.shape) == (rid, KIND_PREVIEW, (1, 96, 96))
            np.testing.assert_array_equal(frames, Renderer(e24.generator, 96, 96).render(z, invert=invert))


def test_preview_bad_message_gets_an_error_and_the_socket_stays_open(client, e24):
    with client.websocket_connect("/ws") as ws:
        ws.receive_json()
        for msg, words in (({"type": "preview", "id": 1, "z": [1.0, 2.0]}, "z must have shape [32]"),
                           ({"type": "preview", "id": 2, "z": [0.0] * 32, "size": 5000}, "more than the 1024"),
                           ({"type": "preview", "id": 3, "z": [0.0] * 32, "ckpt": "/etc/passwd"}, "unknown checkpoint"),
                           ({"type": "preview", "id": 4, "z": [float("nan")] * 32}, "NaN"),
                           ({"type": "jump", "id": 5}, "unknown message type")):
            ws.send_text(json.dumps(msg))
            reply = ws.receive_json()
            assert reply["type"] == "error" and reply["id"] == msg["id"] and words in reply["error"], reply
        ws.send_text("not json")
        assert "JSON" in ws.receive_json()["error"]
        ws.send_text(json.dumps({"type": "preview", "id": 9, "z": [0.0] * 32, "size": 32}))
        assert _frame(ws.receive_bytes())[0] == 9


def test_checkpoint_info_seeds_and_class_latents(client, e24):
    state = client.get("/api/state").json()
    assert {"e24", "e6", "prev"} <= {c["id"] for c in state["checkpoints"]} and state["default"] == "e24"
    info = client.get("/api/checkpoint/e24").json()
    np.testing.assert_allclose(info["class_latents"], e24.class_latents.numpy(), rtol=1e-6)
    dirs = np.asarray(info["directions"])
    assert dirs.shape == (3, 32)
    np.testing.assert_allclose(dirs @ dirs.T, np.eye(3), atol=1e-9)  # orthonormal slider directions
    assert all(s > 0 for s in info["spread"])
    thumbs = client.post("/api/thumbs", json={"ckpt": "e24", "seeds": "5-8", "size": 32}).json()["thumbs"]
    assert [t["seed"] for t in thumbs] == [5, 6, 7, 8]
    np.testing.assert_array_equal(np.asarray([t["z"] for t in thumbs], np.float32), seed_latents([5, 6, 7, 8], 32))
    assert all(t["png"].startswith("data:image/png;base64,") for t in thumbs)
    assert client.get("/api/checkpoint/nope").json()["error"].startswith("unknown checkpoint 'nope'")


def test_walk_preview_renders_the_walk_path(client, e24):
    keys = seed_latents([1, 2, 3], e24.z_dim)
    with client.websocket_connect("/ws") as ws:
        ws.receive_json()
        ws.send_text(json.dumps({"type": "walk", "id": 11, "ckpt": "e24", "keyframes": keys.tolist(), "frames": 9,
                                 "size": 32, "ease": "linear", "loop": True, "interp": "lerp", "pace": "none"}))
        rid, kind, frames = _frame(ws.receive_bytes())
        ws.send_text(json.dumps({"type": "walk", "id": 12, "ckpt": "e24", "keyframes": keys.tolist(), "frames": 9,
                                 "size": 32, "ease": "linear", "loop": True, "interp": "lerp", "hold": "2"}))
        _, _, paced = _frame(ws.receive_bytes())
    assert (rid, kind, frames.shape) == (11, KIND_WALK, (9, 32, 32))
    want = walk_path(keys, 9, loop=True, ease="linear", interp="lerp")
    np.testing.assert_array_equal(frames, Renderer(e24.generator, 32, 32).render(want))
    # the page's default pace and a hold: the same path a render of these settings takes
    from pipeline.jobs.render import pace_maps
    from pipeline.jobs.settings import WalkSettings

    s = WalkSettings(frames=9, ease="linear", loop=True, interp="lerp", hold="2", keyframes=3)
    want = walk_path(keys, 9, loop=True, ease="linear", interp="lerp", timeline=s.timeline(3),
                     pacing=pace_maps(s, keys, "lerp", [e24.generator]))
    np.testing.assert_array_equal(paced, Renderer(e24.generator, 32, 32).render(want))
    assert np.array_equal(paced[0], paced[1])  # held


def test_render_job_reports_progress_and_makes_the_walk(client, e24):
    keys = np.asarray(client.get("/api/checkpoint/e24").json()["class_latents"][:3], np.float32)
    with client.websocket_connect("/ws") as ws:
        ws.receive_json()
        r = client.post("/api/render", json={"ckpt": "e24", "keyframes": keys.tolist(), "size": 64, "frames": 12,
                                             "fps": 24, "ease": "linear", "loop": True})
        assert r.status_code == 202 and r.json()["state"] == "running", r.json()
        busy = client.post("/api/render", json={"keyframes": keys.tolist(), "size": 64, "frames": 12})
        if busy.status_code != 202:  # the first may already be done on a fast machine
            assert busy.status_code == 409 and "still running" in busy.json()["error"]
        events = _job_events(ws)
    job = events[-1]
    assert job["state"] == "done" and job["done"] == job["total"] == 12, job
    assert [e["done"] for e in events] == sorted(e["done"] for e in events)
    out = client.out
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(job["name"])) == sorted(job["files"].values())
    frames = read_video(out / job["files"]["video"])
    assert frames.shape == (12, 64, 64)
    np.testing.assert_array_equal(np.load(out / job["files"]["keyframes"]), keys)
    side = json.loads((out / job["files"]["sidecar"]).read_text())
    assert (side["frames"], side["fps"], side["settings"]["loop"], side["settings"]["ease"]) == (12, 24.0, True, "linear")
    np.testing.assert_allclose(side["keyframes"], keys, rtol=1e-6)
    assert "--keyframes-file" in job["command"] and "--loop" in job["command"] and 'kind = "walk"' in job["preset"]
    webm = client.post("/api/webm", json={"name": job["files"]["video"]}).json()["webm"]  # browsers without H.264
    assert webm == f"{job['name']}.webm" and read_video(out / webm).shape == (12, 64, 64)
    assert client.post("/api/webm", json={"name": "../x.mp4"}).status_code == 400
    got = client.get(f"/files/{job['files']['video']}?download=1")
    assert got.status_code == 200 and got.content == (out / job["files"]["video"]).read_bytes()
    assert "attachment" in got.headers["content-disposition"]
    assert client.get("/api/job").json()["state"] == "done"


def test_a_length_in_seconds_is_frames_at_the_fps(client):
    body = {"keyframes": seed_latents([1, 2], 32).tolist(), "size": 32, "seconds": 0.5, "fps": 24}
    r = client.post("/api/render", json=body)
    assert r.status_code == 202 and r.json()["total"] == 12, r.json()
    job = client.app.state.jobs.wait(60)
    assert job["state"] == "done" and read_video(client.out / job["files"]["video"]).shape == (12, 32, 32)
    bad = client.post("/api/render", json={**body, "seconds": -1.0})
    assert bad.status_code == 400 and "seconds" in bad.json()["error"], bad.json()


def test_camera_in_the_preview_the_walk_and_the_job(client, e24):
    """The page's zoom/pan/rotate: the preview shows the camera's first frame, the walk preview every frame's, and
    the job renders it and exports it into its command and preset; a bad schedule is an error naming it."""
    from pipeline.jobs import WalkSettings
    from pipeline.jobs.render import walk_camera

    z = seed_latents([3, 4], e24.z_dim)
    cam = {"zoom": "0=2, 3=8", "pan": "0.5,-1", "rotate": "0:90"}
    with client.websocket_connect("/ws") as ws:
        ws.receive_json()
        ws.send_text(json.dumps({"type": "preview", "id": 1, "ckpt": "e24", "z": z[0].tolist(), "size": 32, **cam}))
        _, _, frame = _frame(ws.receive_bytes())
        first = walk_camera(WalkSettings(frames=1, **cam))
        np.testing.assert_array_equal(frame, Renderer(e24.generator, 32, 32).render(z[:1], camera=first))
        ws.send_text(json.dumps({"type": "walk", "id": 2, "ckpt": "e24", "keyframes": z.tolist(), "frames": 4,
                                 "size": 16, "pace": "none", **cam}))
        _, _, frames = _frame(ws.receive_bytes())
        s = WalkSettings(frames=4, keyframes=2, pace="none", **cam)
        path = walk_path(z, 4, ease=s.ease, interp=s.interp)
        np.testing.assert_array_equal(frames, Renderer(e24.generator, 16, 16).render(path, camera=walk_camera(s)))
    bad = client.post("/api/render", json={"keyframes": z.tolist(), "size": 16, "frames": 4, "zoom": "0s=1, 2x=3"})
    assert bad.status_code == 400 and "--zoom" in bad.json()["error"], bad.json()
    r = client.post("/api/render", json={"keyframes": z.tolist(), "size": 16, "frames": 4, "pace": "none", **cam})
    assert r.status_code == 202, r.json()
    job = client.app.state.jobs.wait(60)
    assert job["state"] == "done" and "--zoom '0=2, 3=8'" in job["command"] and 'rotate = "0:90"' in job["preset"]
    assert json.loads((client.out / job["files"]["sidecar"]).read_text())["settings"]["pan"] == "0.5,-1"


def test_cancel_stops_the_render_and_leaves_nothing(client):
    keys = seed_latents([1, 2], 32)
    client.app.state.jobs.every_s = 0.0
    with client.websocket_connect("/ws") as ws:
        ws.receive_json()
        r = client.post("/api/render", json={"keyframes": keys.tolist(), "size": 32, "frames": 200_000})
        assert r.status_code == 202, r.json()
        while True:  # wait for frames to be rendering, then cancel
            msg = ws.receive_json()
            if msg["type"] == "job" and msg["job"]["done"] > 0:
                break
        job = client.post("/api/job/cancel").json()
    assert job["state"] == "cancelled" and job["done"] < 200_000
    assert list(client.out.iterdir()) == []  # no video, sidecar, keyframes or temp file
    assert "nothing to cancel" in client.post("/api/job/cancel").json()["error"]


@pytest.mark.parametrize("change, words", [
    ({"size": 63}, "must be even"),
    ({"size": 20000}, "outside 1..16384"),
    ({"size": "9000x4000"}, "larger than H.264"),
    ({"pace": "wobbly"}, "unknown --pace"),
    ({"palette": "nope"}, "unknown --palette"),
    ({"hold": "forever"}, "--hold must be"),
    ({"frames": 0}, "--frames must be at least 1"),
    ({"frames": 1}, "needs at least 2 frames"),
    ({"seconds": 2.0}, "give one"),
    ({"ease": "bouncy"}, "unknown easing 'bouncy'"),
    ({"interp": "spline"}, "unknown interpolation"),
    ({"fps": 0}, "fps must be between"),
    ({"keyframes": [[0.0] * 31]}, "keyframes must have shape [K, 32]"),
    ({"keyframes": []}, "keyframes must have shape"),
    ({"ckpt": "../e24.pt"}, "unknown checkpoint"),
    ({"name": "../evil"}, "bad file name"),
    ({"name": "/tmp/evil"}, "bad file name"),
    ({"size": "64 px"}, "pixels such as"),
])
def test_bad_render_requests_get_a_json_error(client, change, words):
    body = {"keyframes": seed_latents([1, 2], 32).tolist(), "size": 64, "frames": 12, **change}
    r = client.post("/api/render", json=body)
    assert r.status_code == 400 and words in r.json()["error"], r.json()
    assert list(client.out.iterdir()) == []


def test_a_body_that_is_not_json_gets_a_json_error(client):
    r = client.post("/api/render", content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
    assert client.get("/api/nothing").json() == {"error": "Not Found"}


@pytest.mark.parametrize("name", ["..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "%2E%2E", ".hidden", "outside.txt",
                                  ".x.mp4.0123abcd.partial.mp4"])
def test_no_request_reaches_a_file_outside_out(client, tmp_path, name):
    (tmp_path / "outside.txt").write_text("secret")
    (client.out / "outside.txt").symlink_to(tmp_path / "outside.txt")  # a link out of --out counts as outside
    (client.out / ".x.mp4.0123abcd.partial.mp4").write_bytes(b"half")  # a render's temp file is not an output
    r = client.get(f"/files/{name}")
    assert r.status_code in (400, 404) and "secret" not in r.text and "half" not in r.text
    assert "error" in r.json()


def test_a_token_guards_every_request_and_the_socket(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c = TestClient(create_app(out=tmp_path, token="s3cret"))
    for bad in ("/api/state", "/api/state?token=wrong", "/", "/files/x.mp4"):
        r = c.get(bad)
        assert r.status_code == 403 and "token" in r.json()["error"], bad
    with pytest.raises(WebSocketDisconnect) as e:
        with c.websocket_connect("/ws") as ws:
            ws.receive_json()
    assert e.value.code == 1008
    assert c.get("/?token=s3cret").status_code == 200  # as printed; sets the cookie the page then uses
    assert c.get("/api/state").status_code == 200
    with c.websocket_connect("/ws") as ws:
        assert ws.receive_json()["type"] == "job"
    fresh = TestClient(c.app)
    assert fresh.get("/api/state", headers={"Authorization": "token s3cret"}).status_code == 200


def test_cli_serve_needs_the_token_off_localhost(tmp_path, monkeypatch):
    import pipeline.serve.app as app_module

    ran = {}
    monkeypatch.setattr(app_module, "run", lambda app, host, port: ran.update(app=app, host=host, port=port))
    res = run_main(["serve", "--host", "0.0.0.0", "--port", "8765", "--out", tmp_path / "o"])
    assert res.returncode == 0, res.stderr
    url = res.stdout.split()[2]
    assert url.startswith("http://127.0.0.1:8765/?token=") and ran["host"] == "0.0.0.0"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c = TestClient(ran["app"])
    assert c.get("/api/state").status_code == 403
    assert c.get("/api/state?token=" + url.split("token=")[1]).status_code == 200

    res = run_main(["serve", "--out", tmp_path / "o"])  # localhost: no token, and only local Host names
    assert res.returncode == 0 and "?token=" not in res.stdout
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c = TestClient(ran["app"], base_url="http://127.0.0.1:8000")
    assert c.get("/api/state").status_code == 200
    r = c.get("/api/state", headers={"host": "evil.example:8000"})  # DNS rebinding: another name for 127.0.0.1
    assert r.status_code == 400 and "not this server's" in r.json()["error"]
    assert c.get("/api/state", headers={"host": "localhost:8000"}).status_code == 200


def test_cli_serve_without_the_extra_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pipeline.serve.app", None)  # as if starlette were missing
    res = run_main(["serve", "--out", tmp_path])
    assert res.returncode == 1
    assert res.stderr.count("\n") == 1 and 'pip install "cppn-video[serve]"' in res.stderr, res.stderr


def test_cli_serve_bad_checkpoint_is_one_line(tmp_path):
    res = run_main(["serve", "--ckpt", tmp_path / "missing.pt", "--out", tmp_path])
    assert res.returncode == 1 and res.stderr.startswith("error: checkpoint") and res.stderr.count("\n") == 1


def test_only_the_serve_package_imports_the_web_stack():
    root = Path(__file__).resolve().parents[1] / "pipeline"
    web = {"starlette", "fastapi", "uvicorn", "websockets", "selenium", "httpx"}
    bad = []
    for path in root.rglob("*.py"):
        if path.is_relative_to(root / "serve"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            bad += [f"{path.relative_to(root)} imports {n}" for n in names if n.split(".")[0] in web]
    assert not bad, bad


def test_stopping_the_server_mid_render_leaves_nothing(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        app = create_app(out=tmp_path)
        with TestClient(app) as c:
            r = c.post("/api/render", json={"keyframes": seed_latents([1, 2], 32).tolist(), "size": 32,
                                            "frames": 200_000})
            assert r.status_code == 202
        # leaving the block ran the app's shutdown
    assert app.state.jobs.status()["state"] == "cancelled" and list(tmp_path.iterdir()) == []


def test_a_checkpoint_given_by_path_is_offered_by_id_only(tmp_path):
    from render_helpers import make_checkpoint

    path = make_checkpoint(tmp_path / "mine.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c = TestClient(create_app([str(path)], out=tmp_path / "out"))
    state = c.get("/api/state").json()
    assert state["default"] == "mine" and state["checkpoints"][0]["id"] == "mine"
    z = seed_latents([0], 32)
    with c.websocket_connect("/ws") as ws:
        ws.receive_json()
        ws.send_text(json.dumps({"type": "preview", "id": 1, "ckpt": "mine", "z": z[0].tolist(), "size": 24}))
        frames = _frame(ws.receive_bytes())[2]
        np.testing.assert_array_equal(frames, Renderer(load_checkpoint(path).generator, 24, 24).render(z))
        ws.send_text(json.dumps({"type": "preview", "id": 2, "ckpt": str(path), "z": z[0].tolist()}))
        assert "unknown checkpoint" in ws.receive_json()["error"]  # a path is never a name
    job = c.post("/api/render", json={"ckpt": "mine", "keyframes": z.tolist() * 2, "size": 32, "frames": 2}).json()
    assert f"--ckpt {path.resolve()}" in job["command"]
    assert c.app.state.jobs.wait(60)["state"] == "done"


def test_bench_serve_times_frames_through_a_real_server():
    from pipeline.bench.serve_bench import run_serve_bench

    report = run_serve_bench(sizes=(32,), frames=3, warmup=1)
    (r,) = report["results"]
    assert r["size"] == 32 and r["frames"] == 3 and 0 < r["median_ms"] <= r["p95_ms"] < 10_000


def test_other_sites_cannot_drive_a_local_server(client):
    r = client.post("/api/render", content=json.dumps({"keyframes": [[0.0] * 32], "size": 32, "frames": 2}),
                    headers={"content-type": "text/plain"})  # a form or fetch from another page needs no preflight
    assert r.status_code == 400 and "application/json" in r.json()["error"]
    with pytest.raises(WebSocketDisconnect) as e:
        with client.websocket_connect("/ws", headers={"origin": "http://evil.example"}) as ws:
            ws.receive_json()
    assert e.value.code == 1008
    with client.websocket_connect("/ws", headers={"origin": "http://testserver"}) as ws:  # the page itself
        assert ws.receive_json()["type"] == "job"
    assert list(client.out.iterdir()) == []


def test_a_scene_from_the_page_renders_and_exports_the_same_job(client, tmp_path):
    """Canvas shape, hold, pace and palette from the page: the render has them, and the exported preset job and
    CLI command say the same (the preset loads to the same settings)."""
    from pipeline.batch import load_preset
    from video_helpers import read_video_rgb

    body = {"keyframes": seed_latents([1, 2], 32).tolist(), "size": "64x32", "frames": 16, "fps": 24,
            "hold": "0.25s", "pace": "none", "palette": "magma"}
    r = client.post("/api/render", json=body)
    assert r.status_code == 202, r.json()
    job = client.app.state.jobs.wait(60)
    assert job["state"] == "done", job
    frames = read_video_rgb(client.out / job["files"]["video"], 64, 32)
    assert frames.shape == (16, 32, 64, 3) and np.abs(frames[..., 0].astype(int) - frames[..., 2]).mean() > 5
    side = json.loads((client.out / job["files"]["sidecar"]).read_text())
    assert side["scene"]["timeline"]["hold"] == [6, 6] and side["scene"]["pace"] == "none"
    for words in ("--size 64x32", "--hold 0.25s", "--pace none", "--palette magma"):
        assert words in job["command"], job["command"]
    preset = tmp_path / "p.toml"
    preset.write_text(job["preset"].replace(f'"{job["files"]["keyframes"]}"',
                                            f'"{client.out / job["files"]["keyframes"]}"'))
    s = next(iter(load_preset(preset).jobs.values())).settings
    assert (s.size, s.hold, s.pace, s.palette, s.frames, s.fps) == ("64x32", "0.25s", "none", "magma", 16, 24.0)
