"""cppn-video batch: validation messages, the dry-run plan, resumable runs, failures, --only/--force, devices."""
from __future__ import annotations

import json
import time
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from idx_helpers import write_idx_dataset
from pipeline.batch import PresetError, load_preset, make_plan, run_batch
from pipeline.cli import cli
from render_helpers import make_checkpoint

REPO = Path(__file__).resolve().parents[1]

# Render-only jobs (random checkpoints): 32 px, 4 frames, the fastest x264 preset.
RENDERS = """
[settings]
out_dir = "out"

[defaults.walk]
size = 32
frames = 4
keyframes = 2
preset = "ultrafast"

[jobs.walk_a]
kind = "walk"
ckpt = "A.pt"

[jobs.still_a]
kind = "still"
ckpt = "A.pt"
size = 32
after = ["walk_a"]

[jobs.compare_ab]
kind = "compare"
ckpts = ["A.pt", "B.pt"]
panel_size = 32
frames = 4
keyframes = 2
labels = ["a", "b"]
preset = "ultrafast"
"""

# A tiny training run (prev width 8, one tanh layer, 40 synthetic digits) and renders that need it.
# Listed dependents first, so the plan's order must come from the dependencies, not the file.
TRAINED = """
[settings]
out_dir = "out"
data_dir = "data"

[defaults.walk]
size = 32
frames = 4
keyframes = 2
preset = "ultrafast"

[jobs.walk_e1]
kind = "walk"
ckpt = "@train_p/e1.pt"

[jobs.still_last]
kind = "still"
ckpt = "@train_p"
size = 32

[jobs.train_p]
kind = "train"
model = "prev"
width = 8
depth = 1
limit = 40
batch_size = 20
epochs = 2
save_at = [1]

[jobs.walk_other]
kind = "walk"
ckpt = "A.pt"
"""


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    d = tmp_path_factory.mktemp("assets")
    make_checkpoint(d / "A.pt")
    make_checkpoint(d / "B.pt", epoch=2)
    write_idx_dataset(d / "data", 40, 0)
    return d


def write_preset(tmp_path: Path, assets: Path, text: str, name: str = "p.toml") -> Path:
    """The preset beside links to the shared checkpoints and data (relative paths resolve to the preset)."""
    for entry in ("A.pt", "B.pt", "data"):
        link = tmp_path / entry
        if not link.exists():
            link.symlink_to(assets / entry)
    path = tmp_path / name
    path.write_text(text)
    return path


def run(path, **kw):
    return run_batch(load_preset(path), devices=kw.pop("devices", ["cpu"]), **kw)


def mtimes(out: Path) -> dict:
    return {p.relative_to(out).as_posix(): p.stat().st_mtime_ns for p in out.rglob("*")
            if p.is_file() and "logs" not in p.parts and p.name not in ("manifest.json", "preset.resolved.json")}


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


# ----------------------------------------------------------------------------- validation

def problems(tmp_path, assets, text) -> list[str]:
    with pytest.raises(PresetError) as exc:
        load_preset(write_preset(tmp_path, assets, text))
    return exc.value.problems


WALK = '[jobs.walk_a]\nkind = "walk"\nckpt = "A.pt"\n'
TRAIN = '[jobs.train]\nkind = "train"\nmodel = "prev"\nepochs = 2\nsave_at = [1]\n'


@pytest.mark.parametrize("text, where, words", [
    (WALK + "frams = 4\n", "job walk_a, key frams", ["unknown key", "did you mean 'frames'"]),
    (WALK + 'size = 32.5\n', "job walk_a, key size", ["expected a whole number or a string", "a number 32.5"]),
    (WALK + 'size = "32 by 32"\n', "job walk_a, key size", ["pixels such as 1080 or 1920x1080"]),
    (WALK + "invert = 1\n", "job walk_a, key invert", ["expected true or false"]),
    (WALK + "frames = 0\n", "job walk_a, key frames", ["must be at least 1"]),
    ('[jobs.w]\nkind = "wlak"\n', "job w, key kind", ["unknown kind 'wlak'", "did you mean 'walk'"]),
    ('[jobs.s]\nkind = "still"\nckpt = "@trian/e1.pt"\n' + TRAIN, "job s, key ckpt",
     ["unknown job 'trian'", "did you mean 'train'"]),
    ('[jobs.s]\nkind = "still"\nckpt = "@train/e7.pt"\n' + TRAIN, "job s, key ckpt",
     ["not written by job train", "it writes e1.pt, e2.pt"]),
    ('[jobs.s]\nkind = "still"\nckpt = "nope.pt"\n', "job s, key ckpt", ["'nope.pt' not found"]),
    ('[jobs.c]\nkind = "compare"\nckpts = ["A.pt", "missing.pt"]\n', "job c, key ckpts", ["'missing.pt' not found"]),
    (TRAIN + 'data_dir = "no/such/dir"\n', "job train, key data_dir", ["does not exist"]),
    (WALK + 'after = ["walk_b"]\n[jobs.walk_b]\nkind = "walk"\nckpt = "A.pt"\nafter = ["walk_a"]\n',
     "job walk_a, key after", ["dependency cycle walk_a -> walk_b -> walk_a"]),
    (WALK + '[jobs.walk_b]\nkind = "walk"\nckpt = "A.pt"\noutput = "walk_a.mp4"\n', "job walk_b, key output",
     ["also the output of job walk_a"]),
    (WALK + "device = \"cpu\"\n", "job walk_a, key device", ["--devices"]),
    (TRAIN + "[jobs.train.schedule]\nlr_gg = 0.1\n", "job train, key schedule.lr_gg", ["did you mean 'lr_g'"]),
    ('[jobs.c]\nkind = "compare"\nckpts = ["A.pt", "B.pt"]\nlabels = ["x"]\n', "job c, key labels",
     ["1 labels were given for 2 checkpoints"]),
    ('[defaults.walk]\nsizee = 3\n' + WALK, "defaults.walk, key sizee", ["did you mean 'size'"]),
])
def test_each_bad_preset_gives_one_line_naming_job_and_key(tmp_path, assets, text, where, words):
    found = problems(tmp_path, assets, text)
    assert len(found) == 1, found
    line = found[0]
    assert "\n" not in line and line.startswith(f"p.toml: {where}: "), line
    for w in words:
        assert w in line, line


def test_bundled_checkpoint_names_resolve(tmp_path, assets, monkeypatch):
    import pipeline.checkpoint as ckpt_mod

    bundle = tmp_path / "assets"
    bundle.mkdir()
    (bundle / "e24.pt").symlink_to(assets / "A.pt")
    monkeypatch.setattr(ckpt_mod, "ASSETS_DIR", bundle)
    p = load_preset(write_preset(tmp_path, assets, '[jobs.s]\nkind = "still"\nckpt = "e24"\n'))
    assert p.jobs["s"].inputs[0].path == (assets / "A.pt").resolve()
    (line,) = problems(tmp_path, assets, '[jobs.s]\nkind = "still"\nckpt = "e7"\n')
    assert "job s, key ckpt" in line and "bundled: e24" in line


def test_cycle_through_references_names_the_cycle_and_keys(tmp_path, assets):
    text = ('[jobs.a]\nkind = "still"\nckpt = "A.pt"\nafter = ["b"]\n'
            '[jobs.b]\nkind = "still"\nckpt = "A.pt"\nafter = ["c"]\n'
            '[jobs.c]\nkind = "still"\nckpt = "A.pt"\nafter = ["a"]\n')
    (line,) = problems(tmp_path, assets, text)
    assert "a -> b -> c -> a" in line and "c.after needs a" in line


def test_every_problem_is_reported_and_the_cli_exits_2_running_nothing(tmp_path, assets):
    text = (WALK + "frams = 4\n" + '[jobs.w]\nkind = "wlak"\n' + '[jobs.s]\nkind = "still"\nckpt = "@nobody"\n')
    path = write_preset(tmp_path, assets, text)
    res = CliRunner().invoke(cli, ["batch", str(path)])
    assert res.exit_code == 2
    errors = [ln for ln in res.output.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 3
    assert any("key frams" in e for e in errors) and any("key kind" in e for e in errors)
    assert any("unknown job 'nobody'" in e for e in errors)
    assert not (tmp_path / "out").exists()


def test_toml_syntax_error_is_one_line(tmp_path, assets):
    path = write_preset(tmp_path, assets, "[jobs.a\nkind = 'walk'\n")
    res = CliRunner().invoke(cli, ["batch", str(path)])
    assert res.exit_code == 2, res.output
    errors = [ln for ln in res.output.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and "not valid TOML" in errors[0] and "line 1" in errors[0]


# ----------------------------------------------------------------------------- dry run

def test_dry_run_prints_plan_in_dependency_order_and_runs_nothing(tmp_path, assets):
    path = write_preset(tmp_path, assets, TRAINED)
    res = CliRunner().invoke(cli, ["batch", str(path), "--dry-run"])
    assert res.exit_code == 0, res.output
    rows = [ln.split() for ln in res.output.splitlines() if ln[:4].strip().rstrip(".").isdigit()]
    names = [r[1] for r in rows]
    assert names.index("train_p") < names.index("walk_e1") and names.index("train_p") < names.index("still_last")
    assert sorted(names) == ["still_last", "train_p", "walk_e1", "walk_other"]
    assert {r[1]: r[2] for r in rows} == {"train_p": "train", "walk_e1": "walk", "still_last": "still",
                                          "walk_other": "walk"}
    assert all(r[3] == "run" for r in rows)
    assert "ckpt=@train_p/e1.pt" in res.output and "train_p/e1.pt, train_p/e2.pt" in res.output
    assert "needs train_p, which will run first" in res.output
    assert not (tmp_path / "out").exists()  # nothing written, not even the manifest


def test_dry_run_json_after_a_run_says_skip(tmp_path, assets):
    path = write_preset(tmp_path, assets, RENDERS)
    run(path)
    res = CliRunner().invoke(cli, ["batch", str(path), "--dry-run", "--json"])
    plan = json.loads(res.output)
    assert [j["action"] for j in plan["jobs"]] == ["skip", "skip", "skip"]
    assert all(j["reason"].startswith("up to date") for j in plan["jobs"])


def test_a_bare_ray_flag_before_the_preset_is_read_as_the_preset(tmp_path, assets):
    """`batch --ray p.toml`: click would take p.toml as the address; it is the preset, on a local cluster."""
    path = write_preset(tmp_path, assets, RENDERS)
    res = CliRunner().invoke(cli, ["batch", "--ray", str(path), "--dry-run", "--json"])  # dry runs need no Ray
    assert res.exit_code == 0, res.output
    assert [j["name"] for j in json.loads(res.output)["jobs"]] == ["walk_a", "still_a", "compare_ab"]
    res = CliRunner().invoke(cli, ["batch", "--ray", str(tmp_path / "missing.toml"), "--dry-run"])
    assert res.exit_code == 2 and "missing.toml" in res.output and "does not exist" in res.output
    res = CliRunner().invoke(cli, ["batch", "--dry-run"])
    assert res.exit_code == 2 and "missing the PRESET argument" in res.output


# ----------------------------------------------------------------------------- runs, skips, reruns

def test_run_then_rerun_skips_then_truncation_and_setting_changes_rerun_only_that_job(tmp_path, assets):
    path = write_preset(tmp_path, assets, RENDERS)
    out = tmp_path / "out"
    first = run(path)
    assert first.statuses == {"walk_a": "done", "still_a": "done", "compare_ab": "done"} and first.exit_code == 0
    m = manifest(out)
    for name, rel_out in (("walk_a", "walk_a.mp4"), ("still_a", "still_a.png"), ("compare_ab", "compare_ab.mp4")):
        entry = m["jobs"][name]
        assert entry["status"] == "done" and entry["version"] and entry["seconds"] >= 0
        digest = entry["outputs"][rel_out]
        import hashlib

        assert digest == hashlib.sha256((out / rel_out).read_bytes()).hexdigest()
        assert (out / (rel_out + ".json")).is_file()  # the render's sidecar with its resolved settings
        assert (out / "logs" / f"{name}.log").is_file()
    assert len(m["jobs"]["compare_ab"]["inputs"]["ckpts"]) == 2
    assert m["jobs"]["walk_a"]["settings"]["frames"] == 4
    resolved = json.loads((out / "preset.resolved.json").read_text())
    assert resolved["jobs"]["walk_a"]["settings"]["size"] == 32 and resolved["jobs"]["still_a"]["deps"] == ["walk_a"]
    assert not [p for p in out.rglob(".*")]  # no temp files left

    before = mtimes(out)
    second = run(path)
    assert set(second.statuses.values()) == {"skipped"}
    assert mtimes(out) == before

    # A truncated output: its hash differs, so exactly that job reruns (the others' inputs are unchanged).
    video = out / "walk_a.mp4"
    video.write_bytes(video.read_bytes()[:100])
    third = run(path)
    assert third.statuses == {"walk_a": "done", "still_a": "skipped", "compare_ab": "skipped"}
    assert video.stat().st_size > 100 and third.outcome("walk_a").reason.startswith("output walk_a.mp4 changed")
    after = mtimes(out)
    assert after["still_a.png"] == before["still_a.png"] and after["compare_ab.mp4"] == before["compare_ab.mp4"]

    # A changed setting reruns that job only.
    path.write_text(RENDERS.replace('labels = ["a", "b"]', 'labels = ["first", "second"]'))
    fourth = run(path)
    assert fourth.statuses == {"walk_a": "skipped", "still_a": "skipped", "compare_ab": "done"}
    assert "labels" in fourth.outcome("compare_ab").reason
    assert manifest(out)["jobs"]["compare_ab"]["settings"]["labels"] == ["first", "second"]

    # A missing output reruns too; a runtime-only change (render path) does not.
    (out / "still_a.png").unlink()
    path.write_text(RENDERS.replace('labels = ["a", "b"]', 'labels = ["first", "second"]')
                    .replace('size = 32\nafter', 'size = 32\npath = "torch"\nafter'))
    fifth = run(path)
    assert fifth.statuses == {"walk_a": "skipped", "still_a": "done", "compare_ab": "skipped"}


def test_truncated_checkpoint_reruns_training_and_its_dependents_only(tmp_path, assets):
    path = write_preset(tmp_path, assets, TRAINED)
    out = tmp_path / "out"
    first = run(path)
    assert set(first.statuses.values()) == {"done"}, first.to_dict()
    assert sorted(p.name for p in (out / "train_p").glob("e*.pt")) == ["e1.pt", "e2.pt"]
    assert "e1.pt" in manifest(out)["jobs"]["walk_e1"]["inputs"]["ckpt"][0]["path"]

    ck = out / "train_p" / "e1.pt"
    ck.write_bytes(ck.read_bytes()[:500])
    kept = {p.name: p.read_bytes() for p in (out / "train_p").iterdir()}
    second = run(path)
    # A damaged checkpoint is never trusted, but the run it belongs to is not deleted behind the user's
    # back either: the job fails saying how to replace it, its dependents are blocked, the rest is skipped.
    assert second.statuses == {"train_p": "failed", "walk_e1": "blocked", "still_last": "blocked",
                               "walk_other": "skipped"}
    reason = second.outcome("train_p").reason
    assert "holds an earlier training run" in reason and "--force --only train_p" in reason
    assert {p.name: p.read_bytes() for p in (out / "train_p").iterdir()} == kept
    plan = make_plan(load_preset(path))
    assert "WILL FAIL" in next(s for s in plan if s.name == "train_p").reason  # the dry run says so too

    # --force replaces it: training starts over, so every checkpoint is new and both renders that read
    # one rerun on their changed input hashes; the independent walk is untouched. The retrained weights are
    # the same (same seed); what makes the files new is their metadata ("created", to the second, and
    # train_seconds, to the ms), so a fast box could retrain within the first run's second and, by chance,
    # the same ms: byte-identical files, rightly skipped (seen twice in .ci/run). Wait for the next second.
    while int(time.time()) <= int((out / "train_p" / "e2.pt").stat().st_mtime):
        time.sleep(0.05)
    third = run(path, only=["train_p"], force=True)
    assert third.statuses == {"train_p": "done"} and not third.outcome("train_p").resumed
    log = (out / "logs" / "train_p.log").read_text()
    assert "starting over" in log and "removed the earlier run's" in log
    fourth = run(path)
    assert fourth.statuses == {"train_p": "skipped", "walk_e1": "done", "still_last": "done", "walk_other": "skipped"}
    assert "input ckpt changed" in fourth.outcome("walk_e1").reason


def test_a_changed_train_job_never_deletes_the_earlier_run(tmp_path, assets):
    """Settings changed in the preset: the earlier run (hours of training) stays until --force replaces it."""
    path = write_preset(tmp_path, assets, TRAINED)
    out = tmp_path / "out"
    assert set(run(path).statuses.values()) == {"done"}
    kept = {p.name: p.read_bytes() for p in (out / "train_p").iterdir()}
    path.write_text(TRAINED.replace("width = 8", "width = 10"))
    second = run(path, only=["train_p"])
    assert second.statuses == {"train_p": "failed"}
    assert "other settings (width: run has 8, asked 10)" in second.outcome("train_p").reason
    assert {p.name: p.read_bytes() for p in (out / "train_p").iterdir()} == kept


def test_a_second_batch_on_the_same_folder_refuses(tmp_path, assets):
    from pipeline.errors import UserError
    from pipeline.lock import folder_lock

    path = write_preset(tmp_path, assets, RENDERS)
    with folder_lock(tmp_path / "out", "--out"):  # as a running batch holds it
        with pytest.raises(UserError, match=r"out is in use by another cppn-video run \(pid \d+: .*\); wait"):
            run(path)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []  # nothing was written
    assert set(run(path).statuses.values()) == {"done"}  # released: the next run goes ahead


def test_an_edited_sidecar_makes_its_job_rerun(tmp_path, assets):
    path = write_preset(tmp_path, assets, RENDERS)
    out = tmp_path / "out"
    run(path)
    (out / "walk_a.mp4.json").write_text("{}")
    again = run(path)
    assert again.statuses == {"walk_a": "done", "still_a": "skipped", "compare_ab": "skipped"}
    assert again.outcome("walk_a").reason.startswith("output walk_a.mp4.json changed")
    assert json.loads((out / "walk_a.mp4.json").read_text())["frames"] == 4


def test_leftovers_of_a_killed_run_are_removed_and_only_they(tmp_path, assets):
    path = write_preset(tmp_path, assets, TRAINED)
    out = tmp_path / "out"
    run_dir = out / "train_p"
    run_dir.mkdir(parents=True)
    planted = [run_dir / ".state.pt.0123abcd.partial.pt", out / ".walk_other.mp4.89abcdef.partial.mp4",
               out / ".walk_other.mp4.json.00ff00ff.partial.json"]
    for p in planted:
        p.write_bytes(b"x" * 1000)
    (out / ".walk_other.mp4.1234abcd.segments").mkdir()
    mine = [out / ".hidden-notes.txt", run_dir / "notes.txt"]
    for p in mine:
        p.write_text("the user's")
    assert set(run(path).statuses.values()) == {"done"}
    assert not any(p.exists() for p in planted) and not (out / ".walk_other.mp4.1234abcd.segments").exists()
    assert all(p.read_text() == "the user's" for p in mine)


def test_interrupted_training_resumes_and_interrupted_render_leaves_no_output(tmp_path, assets):
    path = write_preset(tmp_path, assets, TRAINED)
    out = tmp_path / "out"
    stop = threading.Event()
    seen = []

    def progress(event):  # stop after the first training batch
        seen.append(event)
        if event["event"] == "job_advance" and event["job"] == "train_p":
            stop.set()

    first = run_batch(load_preset(path), devices=["cpu"], progress=progress, stop_flag=stop)
    assert first.statuses["train_p"] == "interrupted" and first.exit_code == 130
    assert first.statuses["walk_e1"] == "cancelled" and first.statuses["still_last"] == "cancelled"
    assert (out / "train_p" / "state.pt").is_file() and not (out / "train_p" / "e2.pt").exists()
    assert manifest(out)["jobs"]["train_p"]["status"] == "interrupted"  # the manifest is whole and says so

    second = run(path)
    assert second.statuses["train_p"] == "done" and second.outcome("train_p").resumed
    assert "resuming the run in state.pt at epoch 1 batch 2" in (out / "logs" / "train_p.log").read_text()
    assert second.exit_code == 0

    # Stop a render at its first frame batch: no output, no temp file, recorded as interrupted.
    path.write_text(TRAINED.replace('ckpt = "A.pt"', 'ckpt = "A.pt"\nbatch = 1\nframes = 6'))
    stop = threading.Event()

    def stop_render(event):
        if event["event"] == "job_advance" and event["job"] == "walk_other":
            stop.set()

    old_video = (out / "walk_other.mp4").read_bytes()
    third = run_batch(load_preset(path), devices=["cpu"], progress=stop_render, stop_flag=stop)
    assert third.statuses["walk_other"] == "interrupted"
    assert (out / "walk_other.mp4").read_bytes() == old_video  # the earlier output was not touched
    assert manifest(out)["jobs"]["walk_other"]["status"] == "interrupted"
    assert not [p for p in out.glob(".walk_other*")]  # no temp file left behind
    fourth = run(path)
    assert fourth.statuses["walk_other"] == "done" and fourth.statuses["train_p"] == "skipped"
    from video_helpers import read_video

    assert read_video(out / "walk_other.mp4").shape == (6, 32, 32)


def test_failing_job_does_not_stop_independent_jobs_and_exit_code_is_1(tmp_path, assets):
    (tmp_path / "broken.pt").write_bytes(b"PK\x03\x04 not really a checkpoint")
    text = RENDERS.replace('[jobs.walk_a]\nkind = "walk"\nckpt = "A.pt"', '[jobs.walk_a]\nkind = "walk"\nckpt = "broken.pt"')
    path = write_preset(tmp_path, assets, text)
    res = CliRunner().invoke(cli, ["batch", str(path), "--devices", "cpu"])
    assert res.exit_code == 1, res.output
    fail = [ln for ln in res.output.splitlines() if ln.startswith("FAIL walk_a")]
    assert len(fail) == 1 and "truncated or corrupt" in fail[0] and "logs/walk_a.log" in fail[0]
    assert "skip still_a: dependency walk_a failed" in res.output
    assert "done compare_ab" in res.output
    m = manifest(tmp_path / "out")
    assert m["jobs"]["walk_a"]["status"] == "failed" and "still_a" not in m["jobs"]
    assert m["jobs"]["compare_ab"]["status"] == "done"
    assert "truncated or corrupt" in (tmp_path / "out" / "logs" / "walk_a.log").read_text()


def test_only_runs_named_jobs_and_their_needs_and_force_reruns_only_them(tmp_path, assets):
    path = write_preset(tmp_path, assets, RENDERS)
    res = run(path, only=["still_a"])
    assert res.statuses == {"walk_a": "done", "still_a": "done"}  # compare_ab is not selected
    assert not (tmp_path / "out" / "compare_ab.mp4").exists()
    res = run(path, only=["still_a"], force=True)
    assert res.statuses == {"walk_a": "skipped", "still_a": "done"}
    res = run(path, force=True)
    assert res.statuses == {"walk_a": "done", "still_a": "done", "compare_ab": "done"}
    cli_res = CliRunner().invoke(cli, ["batch", str(path), "--only", "stil_a"])
    assert cli_res.exit_code == 2 and "did you mean 'still_a'" in cli_res.output


def test_parallel_devices_start_independent_jobs_together_and_respect_dependencies(tmp_path, assets):
    path = write_preset(tmp_path, assets, RENDERS)
    events = []
    lock = threading.Lock()

    def progress(event):
        with lock:
            events.append((event["event"], event["job"], event.get("device")))

    res = run_batch(load_preset(path), devices=["cpu", "cpu"], progress=progress)
    assert res.exit_code == 0
    order = [(e, j) for e, j, _ in events if e in ("job_start", "job_end")]
    # walk_a and compare_ab are independent: both start before either ends; still_a waits for walk_a.
    assert order.index(("job_start", "compare_ab")) < order.index(("job_end", "walk_a"))
    assert order.index(("job_end", "walk_a")) < order.index(("job_start", "still_a"))


def test_walk_with_workers_renders_in_segments(tmp_path, assets):
    text = RENDERS + '\n[jobs.walk_seg]\nkind = "walk"\nckpt = "A.pt"\nworkers = 2\nlossless = true\n'
    text += '\n[jobs.walk_one]\nkind = "walk"\nckpt = "A.pt"\nlossless = true\n'
    path = write_preset(tmp_path, assets, text)
    res = run(path, only=["walk_seg", "walk_one"])
    assert res.exit_code == 0, res.to_dict()
    from video_helpers import read_video

    out = tmp_path / "out"
    side = json.loads((out / "walk_seg.mp4.json").read_text())
    assert side["workers"] == 2
    assert (read_video(out / "walk_seg.mp4") == read_video(out / "walk_one.mp4")).all()


def test_cli_entry_point_runs_and_reruns(tmp_path, assets, monkeypatch):
    from cli_helpers import run_main

    path = write_preset(tmp_path, assets, RENDERS)
    monkeypatch.chdir(tmp_path)
    cmd = ["batch", str(path), "--devices", "cpu", "--quiet", "--json"]
    first = run_main(cmd)
    assert first.returncode == 0, first.stderr
    assert [j["status"] for j in json.loads(first.stdout)["jobs"]] == ["done", "done", "done"]
    second = run_main(cmd)
    assert second.returncode == 0 and {j["status"] for j in json.loads(second.stdout)["jobs"]} == {"skipped"}
    assert "3 up to date" in second.stderr


def test_ctrl_c_stops_the_cli_cleanly_and_a_rerun_finishes(tmp_path, assets):
    """SIGINT mid-render: exit 130, no output or temp file, the manifest says interrupted; rerun completes."""
    import signal
    import time

    text = ('[settings]\nout_dir = "out"\n[jobs.long]\nkind = "walk"\nckpt = "A.pt"\nsize = 64\nframes = 3000\n'
            'batch = 1\npreset = "ultrafast"\n')
    path = write_preset(tmp_path, assets, text)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "batch", str(path), "--devices", "cpu", "--quiet"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        log = out / "logs" / "long.log"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (log.exists() and "checks passed" in log.read_text()):
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "stopping" in err and "batch stopped" in err
    assert manifest(out)["jobs"]["long"]["status"] == "interrupted"
    assert not (out / "long.mp4").exists() and not list(out.glob(".long.mp4*"))
    path.write_text(text.replace("frames = 3000", "frames = 4"))
    assert run(path).statuses == {"long": "done"}
