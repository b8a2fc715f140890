"""Hostile input (issue 28): planted links and special files, a preset or checkpoint built to do harm, requests
from other sites, text that forges lines, sizes that exhaust memory, leftovers of killed runs, an encoder that
lies. Each test names the general rule, not only the reproduction; all run in this process and in milliseconds
to a second (docs/RELIABILITY.md section 10)."""
from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import pytest
import torch

from cli_helpers import run_main
from pipeline.errors import UserError


def _one_line_error(res, *words):
    assert res.returncode == 1, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    for w in words:
        assert w in lines[0], lines[0]
    assert "Traceback" not in res.stderr
    return lines[0]


# ---------------------------------------------------------------- 1. lock files are never followed


def _lock(folder: Path):
    from pipeline.lock import folder_lock

    with folder_lock(folder, "--out"):
        pass


def _job_log(folder: Path):
    from pipeline.batch.runner import JobLog

    JobLog(folder / "logs" / "w.log")("started")


def _metrics(folder: Path):
    from pipeline import atomic

    with atomic.open_append(folder / "metrics.jsonl") as fh:  # train's per-batch lines
        fh.write("{}\n")


WRITTEN_IN_PLACE = {".cppn-video.lock": _lock, "logs/w.log": _job_log, "metrics.jsonl": _metrics}


@pytest.mark.parametrize("name", WRITTEN_IN_PLACE)
@pytest.mark.parametrize("plant", ["symlink", "hardlink", "fifo", "dangling"])
def test_a_planted_link_at_a_file_written_in_place_is_refused_and_what_it_names_untouched(tmp_path, plant, name):
    """The files the package writes in place rather than by rename (batch's and train's folder lock, a job's
    log, train's metrics) are opened through atomic.open_own: a link, a second name or a FIFO planted there is
    refused in one line, and the file it points at keeps its bytes."""
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    out = tmp_path / "out"
    target = out / name
    target.parent.mkdir(parents=True)
    {"symlink": lambda: target.symlink_to(notes), "hardlink": lambda: os.link(notes, target),
     "fifo": lambda: os.mkfifo(target), "dangling": lambda: target.symlink_to(tmp_path / "new.txt")}[plant]()
    with pytest.raises(UserError, match="remove it"):
        WRITTEN_IN_PLACE[name](out)
    assert notes.read_text() == "my notes\n"
    assert not (tmp_path / "new.txt").exists()
    assert os.path.lexists(target)  # not ours to remove either


def test_files_written_in_place_still_work(tmp_path):
    for name, write in WRITTEN_IN_PLACE.items():
        write(tmp_path)
        write(tmp_path)  # reopened: appended to, or locked again
    assert (tmp_path / "metrics.jsonl").read_text() == "{}\n{}\n"
    assert (tmp_path / "logs" / "w.log").read_text().count("started") == 2


# ---------------------------------------------------------------- 2. only regular files are replaced


def _special(tmp_path, kind: str, name: str) -> Path:
    p = tmp_path / name
    if kind == "fifo":
        os.mkfifo(p)
    else:  # a link to a device: what `-o /dev/full` is, without needing root
        p.symlink_to("/dev/null")
    return p


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_no_job_replaces_a_device_or_fifo_at_its_target(tmp_path, kind):
    target = _special(tmp_path, kind, "x.mp4")
    res = run_main(["walk", "--seeds", "1,2", "--frames", "2", "--size", "32", "--pace", "none", "-o", target,
                    "--format", "mp4"])
    _one_line_error(res, "exists and is a " + ("FIFO" if kind == "fifo" else "device"))
    still = _special(tmp_path, kind, "s.png")
    _one_line_error(run_main(["still", "--size", "32", "-o", still]), "exists and is a")
    assert target.is_fifo() if kind == "fifo" else target.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.png", "x.mp4"]  # nothing beside them either


def test_a_special_file_at_a_sidecar_or_appearing_late_is_refused(tmp_path):
    """The sidecar's name is checked with the output's, and publish checks both again before its renames, as
    does every atomic write (checkpoints, manifests, keyframes)."""
    from pipeline import atomic
    from pipeline.provenance import publish
    from pipeline.video import check_writable

    os.mkfifo(tmp_path / "w.mp4.json")
    with pytest.raises(UserError, match=r"w\.mp4\.json exists and is a FIFO"):
        check_writable(tmp_path / "w.mp4", "mp4")
    tmp = atomic.temp_sibling(tmp_path / "v.mp4")
    tmp.write_bytes(b"video")
    os.mkfifo(tmp_path / "v.mp4")  # appeared after the job's checks
    with pytest.raises(UserError, match="FIFO"):
        publish(tmp, tmp_path / "v.mp4", {"kind": "walk"})
    assert not tmp.exists() and (tmp_path / "v.mp4").is_fifo()
    (tmp_path / "ck.pt").symlink_to("/dev/null")
    with pytest.raises(UserError, match="device"):
        atomic.write_bytes(tmp_path / "ck.pt", b"weights")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.pt", "v.mp4", "w.mp4.json"]
    atomic.write_bytes(tmp_path / "plain", b"1")  # a regular file, or nothing, is written as ever
    atomic.write_bytes(tmp_path / "plain", b"2")
    assert (tmp_path / "plain").read_bytes() == b"2"


# ---------------------------------------------------------------- 3. a preset is an input


@pytest.mark.parametrize("output", ["p.toml", "sub/../p.toml", "keys.npy"])
def test_no_preset_job_replaces_the_preset_or_an_input(tmp_path, output):
    import numpy as np

    from pipeline.batch import PresetError, load_preset

    np.save(tmp_path / "keys.npy", np.zeros((2, 32), np.float32))
    preset = tmp_path / "p.toml"
    preset.write_text(f'[settings]\nout_dir = "."\n[jobs.w]\nkind = "walk"\nckpt = "e24"\nsize = 32\nframes = 2\n'
                      f'keyframes_file = "keys.npy"\nfmt = "mp4"\noutput = "{output}"\n')
    before = preset.read_bytes()
    with pytest.raises(PresetError, match=r"job w, key output: the output .* is the input .*; writing it would "
                                          r"destroy the input"):
        load_preset(preset)
    res = run_main(["batch", preset])
    assert res.returncode == 2 and "would destroy the input" in res.stderr and "Traceback" not in res.stderr
    assert preset.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["keys.npy", "p.toml"]


def test_no_file_the_batch_writes_for_itself_replaces_the_preset(tmp_path):
    from pipeline.batch import load_preset, run_batch

    logs = tmp_path / "logs"
    logs.mkdir()
    preset = logs / "w.log"  # the log of its job w, with out_dir its parent
    preset.write_text('[settings]\nout_dir = ".."\n[jobs.w]\nkind = "still"\nckpt = "e24"\nsize = 32\n')
    before = preset.read_bytes()
    with pytest.raises(UserError, match="would destroy the input"):
        run_batch(load_preset(preset))
    assert preset.read_bytes() == before


# ---------------------------------------------------------------- 4. other sites change nothing


@pytest.fixture()
def client(tmp_path):
    import warnings

    from starlette.testclient import TestClient

    from pipeline.serve.app import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with TestClient(create_app(out=tmp_path / "out")) as c:
            c.out = tmp_path / "out"
            yield c


FOREIGN = [{"origin": "http://evil.example"}, {"origin": "null"}, {"sec-fetch-site": "cross-site"},
           {"origin": "http://127.0.0.1.evil.example"}]


@pytest.mark.parametrize("headers", FOREIGN, ids=["origin", "null", "sec-fetch-site", "lookalike"])
def test_every_state_changing_endpoint_refuses_other_sites(client, headers):
    """Whatever the body and Content-Type: every route that takes anything but GET (found from the app's
    routes, so a new one is covered too) answers 403 to another site's page; the page itself is served."""
    from starlette.routing import Route

    posts = [r.path for r in client.app.routes if isinstance(r, Route) and set(r.methods) - {"GET", "HEAD"}]
    assert "/api/job/cancel" in posts and "/api/render" in posts
    for path in posts:
        for ctype in ("text/plain", "application/json", "application/x-www-form-urlencoded"):
            r = client.post(path, content=b"{}", headers={**headers, "content-type": ctype})
            assert r.status_code == 403, (path, ctype, r.status_code, r.text)
            assert "another site" in r.json()["error"]
    assert client.get("/api/job", headers=headers).status_code == 200  # reading is no change
    same = client.post("/api/job/cancel", headers={"origin": "http://testserver", "content-type": "text/plain"})
    assert same.status_code != 403 and "another site" not in same.text
    assert client.post("/api/job/cancel").status_code != 403  # curl and scripts send no Origin
    assert list(client.out.iterdir()) == []


# ---------------------------------------------------------------- 5. a checkpoint's config is bounded first


def _tampered(tmp_path, name="bad.pt", **config) -> Path:
    data = torch.load("pipeline/assets/e24.pt" if Path("pipeline/assets/e24.pt").exists() else
                      Path(__file__).resolve().parents[1] / "pipeline/assets/e24.pt", weights_only=True)
    data["generator_config"] = {**data["generator_config"], **config}
    path = tmp_path / name
    torch.save(data, path)
    return path


@pytest.mark.parametrize("config, words", [
    ({"width": 4096}, "activations"),                           # the red team's: 7.5 GB before
    ({"width": 600, "n_blocks": 100}, "parameters"),            # 180 M parameters, activations within bounds
    ({"n_blocks": 1024, "relu_layers": 64}, "layers"),          # 66,562 modules to build
    ({"width": 8}, "generator weights do not match its config (input.z.weight is [6, 32], the config says [8, 32])"),
    ({"n_blocks": 25}, "missing blocks.24.relu.0.weight"),
    ({"n_blocks": 23}, "unexpected blocks.23.relu.0.weight"),
])
def test_a_config_that_does_not_fit_its_weights_or_the_bounds_is_refused_before_building(tmp_path, config, words):
    path = _tampered(tmp_path, **config)
    t0 = time.perf_counter()
    line = _one_line_error(run_main(["info", path]), words)
    assert time.perf_counter() - t0 < 2.0, line
    assert "the file is corrupt" in line


def test_parameter_shapes_are_the_modules_state_dicts():
    from pipeline.models import build_generator, generator_config
    from pipeline.models.generators import parameter_shapes

    for family, values in [("resnet", dict(width=5, n_blocks=3, relu_layers=2, z_dim=7)),
                           ("resnet", dict(relu_layers=0)), ("prev", dict(width=9, tanh_layers=2, z_dim=3))]:
        cfg = generator_config(family, **values)
        built = {k: tuple(v.shape) for k, v in build_generator(cfg).state_dict().items()}
        assert built == parameter_shapes(cfg)


# ---------------------------------------------------------------- 6. memory: refused early, or one line


def test_keyframes_are_bounded_like_seeds(tmp_path):
    line = _one_line_error(run_main(["walk", "--keyframes", "100000000", "--frames", "4", "--size", "32",
                                     "-o", tmp_path / "w.mp4"]), "100,000,000 keyframes", "100,000")
    assert list(tmp_path.iterdir()) == [], line


def test_an_address_space_limit_is_part_of_the_memory_preflight(tmp_path, monkeypatch):
    """`still --size 16384` under `ulimit -v 6000000` is refused before rendering, naming the size."""
    import resource

    real = resource.getrlimit
    monkeypatch.setattr(resource, "getrlimit", lambda which: (6 * 2**30, resource.RLIM_INFINITY)
                        if which == resource.RLIMIT_AS else real(which))
    line = _one_line_error(run_main(["still", "--size", "16384", "-o", tmp_path / "s.png"]),
                           "--size 16384x16384 needs about", "give a smaller size")
    assert list(tmp_path.iterdir()) == [], line


@pytest.mark.parametrize("exc", [MemoryError("Unable to allocate 23.8 GiB for an array with shape (100000000, 32)"),
                                 RuntimeError("[enforce fail at alloc_cpu.cpp:83] DefaultCPUAllocator: can't "
                                              "allocate memory: you tried to allocate 25769803776 bytes.")])
def test_an_allocation_failure_anywhere_is_one_line_naming_what_to_lower(tmp_path, monkeypatch, exc):
    from pipeline.jobs import settings

    def fail(self):
        raise exc

    monkeypatch.setattr(settings.WalkSettings, "validate", fail)
    line = _one_line_error(run_main(["walk", "--frames", "2", "--size", "32", "-o", tmp_path / "w.mp4"]),
                           "out of memory", "--size")
    assert str(exc).split(":")[0][:20] in line


# ---------------------------------------------------------------- 10. nothing printed from a file forges a line


def test_info_escapes_every_control_character_from_the_file(tmp_path):
    data = torch.load(Path(__file__).resolve().parents[1] / "pipeline/assets/e24.pt", weights_only=True)
    data["meta"] = {**data["meta"], "note": "ok\r\nsha256: 0000forged", "k\ney": "\x1b[2J\u202ered",
                    "list": ["a\rb", 1]}
    path = tmp_path / "forged.pt"
    torch.save(data, path)
    res = run_main(["info", path])
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert [ln for ln in lines if ln.lstrip().startswith("sha256:")] == [ln for ln in lines if ln.startswith("sha256:")]
    assert len([ln for ln in lines if "sha256:" in ln]) == 2  # the real line, and the note on its own line
    assert r"ok\x0d\x0asha256: 0000forged" in res.stdout and r"k\x0aey: \x1b[2J\u202ered" in res.stdout
    assert not any(c in res.stdout for c in "\r\x1b\u202e")
    js = run_main(["info", path, "--json"])
    assert json.loads(js.stdout)["meta"]["note"] == "ok\r\nsha256: 0000forged"  # JSON keeps the value, escaped


def test_error_lines_escape_control_characters_but_keep_their_own_line_breaks():
    from pipeline.text import printable

    assert printable("a\r\nb\tc\x7f\x85\u2028") == r"a\x0d\x0ab\x09c\x7f\x85\u2028"
    assert printable("line one\nline\x1btwo", keep_newlines=True) == "line one\nline\\x1btwo"
    assert printable("plain ünïcode, digits 0-9") == "plain ünïcode, digits 0-9"


# ---------------------------------------------------------------- 7. a killed run's partials go, a live run's stay

_WRITER = """
import sys, time
from pipeline import atomic
tmp = atomic.temp_sibling(sys.argv[1])
tmp.write_bytes(b"half a video")
print(tmp.name, flush=True)
time.sleep(60)
"""


def _start_writer(target: Path):
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(target)], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    return proc, proc.stdout.readline().strip()


def test_a_later_run_removes_a_killed_runs_partials_of_its_target_and_only_those(tmp_path):
    import signal

    out = tmp_path / "out"
    out.mkdir()
    proc, name = _start_writer(out / "w.mp4")
    assert name.startswith(".w.mp4.") and name.endswith(".partial.mp4")
    proc.send_signal(signal.SIGKILL)  # as SIGKILL or a power cut leaves it
    proc.wait()
    for other in (".w.mp4.json.0badc0de.partial.json", ".x.mp4.1a2b3c4d.partial.mp4", "w.mp4.notes"):
        (out / other).write_text("kept?")
    res = run_main(["walk", "--seeds", "1,2", "--frames", "2", "--size", "32", "--pace", "none",
                    "--preset", "ultrafast", "-o", out / "w.mp4"])
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in out.iterdir()) == [".x.mp4.1a2b3c4d.partial.mp4", "w.mp4", "w.mp4.json",
                                                    "w.mp4.notes"]


def test_a_live_runs_partial_is_never_removed(tmp_path):
    from pipeline import atomic

    proc, name = _start_writer(tmp_path / "w.mp4")  # a concurrent run, still writing
    try:
        (tmp_path / ".w.mp4.0badc0de.partial.mp4").write_text("looks stale")
        assert atomic.clear_stale(tmp_path / "w.mp4") == []  # someone is writing here: nothing goes
        assert (tmp_path / name).read_bytes() == b"half a video"
    finally:
        proc.kill()
        proc.wait()
    assert (tmp_path / ".w.mp4.0badc0de.partial.mp4").exists()  # this process already works here: kept ...
    fresh = tmp_path / "again"
    fresh.mkdir()
    (fresh / ".w.mp4.0badc0de.partial.mp4").write_text("stale")
    assert atomic.clear_stale(fresh / "w.mp4") == [".w.mp4.0badc0de.partial.mp4"]  # ... and removed when alone


# ---------------------------------------------------------------- 9. sidecars and requests: types, ranges, depth


@pytest.fixture(scope="module")
def walk_sidecar(tmp_path_factory):
    import numpy as np

    from pipeline.latents import seed_latents

    d = tmp_path_factory.mktemp("sidecar")
    np.save(d / "keys.npy", seed_latents([1, 2], 32))
    res = run_main(["walk", "--keyframes-file", d / "keys.npy", "--frames", "3", "--size", "32", "--pace", "none",
                    "--preset", "ultrafast", "-o", d / "w.mp4"])
    assert res.returncode == 0, res.stderr
    return json.loads((d / "w.mp4.json").read_text())


DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("change, words", [
    (lambda i: i.update(keyframes="abc"), "keyframes: expected rows of numbers"),
    (lambda i: i.update(keyframes=[[0.0] * 32, [1.0] * 31]), "keyframes: expected rows of numbers"),
    (lambda i: i["settings"].update(frames="32"), "settings: frames: expected a whole number, got a string '32'"),
    (lambda i: i["settings"].update(size=[64]), "settings: size: expected a whole number or a string"),
    (lambda i: i["settings"].update(loop="yes"), "settings: loop: expected true or false"),
    (lambda i: i["settings"].update(frames=-5), "--frames must be at least 1"),        # a range: validate's
    (lambda i: i["settings"].update(size=100_000), "outside 1..16384"),
    (lambda i: i.update(settings="walk"), "settings: expected a table of settings"),
    (lambda i: i.update(kind=7), "kind: expected a string"),
    (lambda i: i.update(checkpoint="e24"), "checkpoint: expected a table"),
    (lambda i: i.update(checkpoint={"path": 3, "sha256": None}), "is not found"),
    ("deep", "nested too deep"),
])
def test_a_tampered_sidecar_is_one_line_and_writes_nothing(tmp_path, walk_sidecar, change, words):
    import copy

    path = tmp_path / "t.mp4.json"
    if change == "deep":
        path.write_text(DEEP)
    else:
        info = copy.deepcopy(walk_sidecar)
        change(info)
        path.write_text(json.dumps(info))
    _one_line_error(run_main(["replay", path, "-o", tmp_path / "r.mp4"]), words)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.mp4.json"]


def test_a_request_is_checked_as_a_preset_is_and_depth_is_no_500(client):
    from pipeline.latents import seed_latents

    keys = seed_latents([1, 2], 32).tolist()
    r = client.post("/api/render", content=DEEP.encode(), headers={"content-type": "application/json"})
    assert r.status_code == 400 and "nested too deep" in r.json()["error"]
    r = client.post("/api/render", json={"keyframes": keys, "size": 32, "frames": "32"})
    assert r.status_code == 400 and r.json()["error"] == "frames must be a whole number, got a string '32'"
    r = client.post("/api/render", json={"keyframes": [[[[0.0]]]] * 2, "size": 32, "frames": 4})
    assert r.status_code == 400 and "keyframes must have shape" in r.json()["error"]
    with client.websocket_connect("/ws") as ws:
        assert ws.receive_json()["type"] == "job"
        ws.send_text(DEEP)
        assert ws.receive_json() == {"type": "error", "id": None, "error": "messages must be JSON objects"}
    assert list(client.out.iterdir()) == []


# ---------------------------------------------------------------- 8. what ffmpeg wrote is read back first


def _fake_ffmpeg(tmp_path, body: str) -> str:
    """An `ffmpeg` (a bash script: no interpreter to start) that exits 0 after `body`; the output is the last
    argument in every command the package runs."""
    import imageio_ffmpeg

    exe = tmp_path / "ffmpeg"
    exe.write_text("#!/bin/bash\n" + body.replace("REAL", imageio_ffmpeg.get_ffmpeg_exe()) + "\n")
    exe.chmod(0o755)
    return str(exe)


JUNK = 'cat > /dev/null; printf "junk%.0s" {1..500} > "${@: -1}"'
SHORT = 'exec REAL "${@:1:$#-1}" -frames:v 2 "${@: -1}"'  # a real encode, but only 2 of the frames


def test_an_ffmpeg_that_exits_0_after_writing_junk_publishes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", _fake_ffmpeg(tmp_path, JUNK))
    out = tmp_path / "o"
    out.mkdir()
    for name in ("w.mp4", "w.gif"):
        line = _one_line_error(run_main(["walk", "--seeds", "1,2", "--frames", "3", "--size", "32", "--pace",
                                         "none", "-o", out / name]), "does not read back", "not a valid")
        assert "nothing was published" in line
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("fmt", ["mp4", "gif"])
def test_a_video_with_fewer_frames_than_written_is_not_published(tmp_path, monkeypatch, fmt):
    import numpy as np

    from pipeline.video import VideoError, open_writer

    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", _fake_ffmpeg(tmp_path, SHORT))  # valid files, 2 frames of 5
    target = tmp_path / f"v.{fmt}"
    with pytest.raises(VideoError, match="it holds 2 frames, 5 were written; nothing was published"):
        with open_writer(target, (32, 16), fmt=fmt, preset="ultrafast") as w:
            w.write(np.zeros((5, 16, 32), np.uint8))
            w.close(sidecar={"kind": "walk"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ffmpeg"]


def test_read_back_refuses_truncated_and_foreign_containers(tmp_path):
    import numpy as np

    from pipeline.container import output_problem
    from pipeline.video import open_writer

    good = {}
    for fmt in ("mp4", "gif"):
        good[fmt] = tmp_path / f"g.{fmt}"
        with open_writer(good[fmt], (32, 16), fmt=fmt, preset="ultrafast") as w:
            w.write(np.full((4, 16, 32), 99, np.uint8))
            w.close()
    for fmt, other in (("mp4", "gif"), ("gif", "mp4")):
        data = good[fmt].read_bytes()
        assert output_problem(good[fmt], fmt, 32, 16, 4) == ""
        assert "frames are 32x16, 16x32" in output_problem(good[fmt], fmt, 16, 32, 4)
        cut = tmp_path / f"cut.{fmt}"
        for n in (0, 10, len(data) // 2, len(data) - 1):  # truncated anywhere
            cut.write_bytes(data[:n])
            assert output_problem(cut, fmt, 32, 16, 4), (fmt, n)
        assert "not a valid" in output_problem(good[other], fmt, 32, 16, 4)  # the other container


def test_a_presets_keys_and_paths_are_printed_escaped(tmp_path):
    preset = tmp_path / "p.toml"
    preset.write_text('[jobs.w]\nkind = "walk"\nckpt = "e24"\nsize = 32\nframes = 2\n"bad\\r\\nerror: forged" = 1\n'
                      '[jobs.v]\nkind = "still"\nckpt = "e24"\nsize = 32\noutput = "a\\rb.png"\n')
    res = run_main(["batch", preset])
    assert res.returncode == 2 and r"key bad\x0d\x0aerror: forged" in res.stderr and "\r" not in res.stderr
    preset.write_text('[jobs.v]\nkind = "still"\nckpt = "e24"\nsize = 32\noutput = "a\\rb.png"\n')
    res = run_main(["batch", preset, "--dry-run"])
    assert res.returncode == 0 and r"a\x0db.png" in res.stdout and "\r" not in res.stdout, res.stdout


def test_a_fifo_among_a_contact_sheets_stills_or_a_runs_files_is_refused_before_work(tmp_path):
    os.mkfifo(tmp_path / "seed0002.png")
    line = _one_line_error(run_main(["still", "--seeds", "1-3", "--size", "32", "--outdir", tmp_path]), "FIFO")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seed0002.png"], line


def test_input_nested_too_deep_is_one_line_wherever_it_is_read(tmp_path, monkeypatch):
    from pipeline.batch import PresetError, load_preset
    from pipeline.cli import info

    (tmp_path / "deep.toml").write_text("a = " + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(PresetError, match="nested too deep"):
        load_preset(tmp_path / "deep.toml")

    def deep(*args):  # any code walking a structure deeper than the interpreter's stack (info's report, ...)
        return deep(*args)

    monkeypatch.setattr(info, "checkpoint_summary", deep)
    _one_line_error(run_main(["info", "e24"]), "nested too deep", "nothing was written")


def test_replay_never_replaces_the_sidecar_it_reads(tmp_path, walk_sidecar):
    path = tmp_path / "t.mp4.json"
    path.write_text(json.dumps(walk_sidecar))
    for out in (path, tmp_path / "t.mp4"):  # the sidecar itself, or an output whose sidecar it is
        _one_line_error(run_main(["replay", path, "-o", out]), "would destroy the input")
    assert json.loads(path.read_text()) == walk_sidecar and sorted(p.name for p in tmp_path.iterdir()) == ["t.mp4.json"]
