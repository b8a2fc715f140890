"""TOML presets: parse a job file and validate all of it into Job records before anything runs.

A preset is data, never code:

    [settings]                    # optional
    out_dir = "../runs/article"   # where outputs, manifest.json, logs/ and preset.resolved.json go
    data_dir = "data/mnist"       # default data_dir of every train job (omit: the data cache / download)

    [defaults.walk]               # optional: options shared by every job of a kind (a job's own win)
    size = 1080

    [jobs.train_resnet]           # one table per job; the name is used in references and log files
    kind = "train"                # train | walk | still | compare
    model = "resnet"              # options: the fields of TrainConfig / WalkSettings / StillSettings /
    epochs = 24                   #   CompareSettings, with their types
    save_at = [6]
    output = "resnet"             # optional (train: the run directory; default: the job name)

    [jobs.walk_e6]
    kind = "walk"
    ckpt = "@train_resnet/e6.pt"  # "@job/FILE": a file that job writes; "@job": its main output
    output = "walks/e6.mp4"       # optional (default: <job name>.mp4 / .png)
    after = ["other_job"]         # optional: explicit extra dependencies

Paths. Relative paths *in the preset* (settings.out_dir, data_dir, ckpt, ckpts, keyframes_file,
images)
resolve against the directory of the preset file, so a preset means the same thing from any working
directory and a rerun finds its manifest. A job's `output` resolves against out_dir. Without
settings.out_dir the outputs go to `runs/<preset stem>` beside the preset; `cppn-video batch --out DIR`
overrides it (a command-line path, so relative to the working directory).

Inputs. `ckpt` (walk, still) and `ckpts` (compare) take a reference to a train job's checkpoint
(`@train_resnet/e6.pt` must be one it saves: its save_at epochs and its last), a checkpoint file, or the
name of a bundled checkpoint (prev, e6, e24, w4). Train jobs read their data from data_dir; when it is
given it must exist at validation time (the data layer reads only that folder and never downloads into
it); when it is omitted the data layer uses the cache and downloads MNIST there with SHA-256 checks, so
nothing is checked up front.

Not options: `device` (the runner assigns devices: `cppn-video batch --devices`) and a train job's
`out_dir` (it is the job's `output`, inside the batch's out_dir).

Validation reports every problem at once, one line each, naming the job and key:
"article.toml: job walk_e6, key ckpt: @train_resnet/e7.pt is not written by job train_resnet (it
writes e6.pt, e24.pt)". `load_preset` raises PresetError carrying that list.
"""
from __future__ import annotations

import re
import typing
from dataclasses import fields, replace
from pathlib import Path

from pipeline.batch.records import InputRef, Job, Preset, rel
from pipeline.jobs.typecheck import Mismatch, convert, show, suggest, toml_type
from pipeline.errors import UserError

from pipeline.jobs.kinds import RENDER_KINDS  # noqa: E402 (no torch: settings records only)

KINDS = ("train", *RENDER_KINDS)
INPUT_KEYS = {"train": (), **{name: (k.input_key,) for name, k in RENDER_KINDS.items()}}
COMMON_KEYS = ("kind", "output", "after")
# Keys a job may not set, and why (said instead of "unknown key").
NOT_OPTIONS = {
    "device": "devices are assigned by the runner; choose them with `cppn-video batch --devices`",
    "out_dir": "a train job's run directory is its `output` (relative to the batch's out_dir)",
}
SETTINGS_KEYS = ("out_dir", "data_dir")
TOP_LEVEL = ("settings", "defaults", "jobs")
REF_PREFIX = "@"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class PresetError(UserError):
    """A preset with problems; `problems` holds one line per problem."""

    def __init__(self, path, problems: list[str]):
        self.path = Path(path)
        self.problems = list(problems)
        n = len(self.problems)
        super().__init__(f"{self.path} has {n} problem{'s' if n != 1 else ''}: " + "; ".join(self.problems))


# ----------------------------------------------------------------------------- settings classes

def settings_class(kind: str):
    """The dataclass whose fields are a job kind's options (compare is imported only when used)."""
    if kind == "train":
        from pipeline.train.config import TrainConfig

        return TrainConfig
    return RENDER_KINDS[kind].settings


def allowed_keys(kind: str) -> list[str]:
    """Every key a job of this kind may set."""
    names = [f.name for f in fields(settings_class(kind)) if f.name not in NOT_OPTIONS]
    return list(COMMON_KEYS) + list(INPUT_KEYS[kind]) + names + (["keyframe"] if kind in ("walk", "compare") else [])


# A keyframe list: one table per keyframe, each with its latent (seed, digit or class) and, when wanted, its
# time and hold, as a Deforum user writes a schedule:
#     keyframe = [{ seed = 3, at = "0s", hold = "1s" }, { seed = 17, at = "4s" }, { seed = 42, at = "8s" }]
# It stands for seeds/digits/classes + times + hold, which it may not be given with.
KEYFRAME_SOURCES = {"seed": "seeds", "digit": "digits", "class": "classes"}


def keyframe_list(value) -> dict:
    """The settings a keyframe list stands for ({"seeds": "3,17", "times": "0s,4s", "hold": "1s,0"}); UserError
    naming the entry otherwise."""
    if not isinstance(value, list) or not value or not all(isinstance(e, dict) for e in value):
        raise UserError("expected a list of tables such as [{ seed = 3, at = \"0s\" }, { seed = 17, at = \"4s\" }]",
                        key="keyframe")
    sources = set()
    latents, times, holds = [], [], []
    for i, entry in enumerate(value, 1):
        unknown = set(entry) - set(KEYFRAME_SOURCES) - {"at", "hold"}
        found = [k for k in KEYFRAME_SOURCES if k in entry]
        if unknown or len(found) != 1:
            raise UserError(f"keyframe {i}: give one of seed, digit or class, and optionally at and hold "
                            f"(got {', '.join(sorted(entry)) or 'nothing'})", key="keyframe")
        if isinstance(entry[found[0]], bool) or not isinstance(entry[found[0]], int):
            raise UserError(f"keyframe {i}: {found[0]} must be a whole number", key="keyframe")
        sources.add(found[0])
        latents.append(str(entry[found[0]]))
        for key, into in (("at", times), ("hold", holds)):
            if key in entry:
                if isinstance(entry[key], bool) or not isinstance(entry[key], (str, int)):
                    raise UserError(f"keyframe {i}: {key} must be a time such as \"2s\" or frames", key="keyframe")
                into.append(str(entry[key]))
    if len(sources) > 1:
        raise UserError(f"keyframes mix {' and '.join(sorted(sources))}; one walk takes its keyframes from one "
                        f"source", key="keyframe")
    if times and len(times) != len(value):
        raise UserError("give every keyframe an `at`, or none (then they are evenly spaced)", key="keyframe")
    out = {KEYFRAME_SOURCES[sources.pop()]: ",".join(latents)}
    if times:
        out["times"] = ",".join(times)
    if holds:
        out["hold"] = ",".join(h for h in (str(e.get("hold", "0")) for e in value))
    return out


# ----------------------------------------------------------------------------- loading

def _toml():
    try:
        import tomllib  # Python 3.11+
    except ModuleNotFoundError:  # Python 3.10 (pyproject allows it): the same parser as a package
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise UserError("reading presets needs Python 3.11+ or the tomli package (pip install tomli)") from None
    return tomllib


def _read_toml(path: Path) -> dict:
    tomllib = _toml()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"preset {path} not found; pass a TOML file such as presets/quick.toml") from None
    except IsADirectoryError:
        raise UserError(f"{path} is a directory; pass a TOML preset file such as presets/quick.toml") from None
    except OSError as e:
        raise UserError(f"cannot read preset {path}: {e.strerror or e}") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise PresetError(path, [f"{path.name}: not UTF-8 text; a preset is a TOML file"]) from None
    except tomllib.TOMLDecodeError as e:
        raise PresetError(path, [f"{path.name}: not valid TOML: {e}; fix the syntax there"]) from None
    except RecursionError:  # arrays or tables nested thousands deep: no preset is
        raise PresetError(path, [f"{path.name}: its TOML is nested too deep; a preset holds flat tables of "
                                 f"options"]) from None


class _Checker:
    """Collects problems while turning the TOML tables into Jobs."""

    def __init__(self, path: Path, base: Path):
        self.path, self.base = path, base
        self.problems: list[str] = []

    def problem(self, where: str, message: str) -> None:
        self.problems.append(f"{self.path.name}: {where}: {message}")

    def local(self, text: str) -> Path:
        """A path written in the preset -> absolute, relative to the preset's directory."""
        return (self.base / Path(text).expanduser()).resolve()

    def options(self, where: str, kind: str, table: dict, cls, model: str | None = None) -> dict:
        """Check each key of a job's (or a defaults') table; returns the converted settings fields."""
        hints = typing.get_type_hints(cls)
        field_names = {f.name for f in fields(cls)}
        valid = allowed_keys(kind)
        values = {}
        for key, value in table.items():
            if key in NOT_OPTIONS:
                self.problem(f"{where}, key {key}", f"not a preset option: {NOT_OPTIONS[key]}")
            elif key not in valid:
                self.problem(f"{where}, key {key}",
                             f"unknown key for a {kind} job{suggest(key, valid)} (valid: {', '.join(valid)})")
            elif key in field_names:
                if key == "schedule" and kind == "train":
                    converted = self.schedule(where, value, model)
                    if converted is not None:
                        values[key] = converted
                    continue
                try:
                    values[key] = convert(value, hints[key])
                except Mismatch as e:
                    self.problem(f"{where}, key {key}", f"expected {e.expected}, got {toml_type(value)} "
                                                        f"{show(value)}")
        return values

    def schedule(self, where: str, value, model: str | None):
        from pipeline.train.config import SCHEDULES

        if not isinstance(value, dict):
            self.problem(f"{where}, key schedule", f"expected a table of schedule constants, got "
                                                   f"{toml_type(value)} {show(value)}")
            return None
        model = model or "resnet"
        cls = SCHEDULES.get(model)
        if cls is None:
            return None  # the unknown model is reported on its own
        hints = typing.get_type_hints(cls)
        names = [f.name for f in fields(cls)]
        out, ok = {}, True
        for key, v in value.items():
            if key not in hints:
                self.problem(f"{where}, key schedule.{key}", f"unknown {model} schedule constant"
                                                             f"{suggest(key, names)}")
                ok = False
                continue
            try:
                out[key] = convert(v, hints[key])
            except Mismatch as e:
                self.problem(f"{where}, key schedule.{key}", f"expected {e.expected}, got {toml_type(v)} {show(v)}")
                ok = False
        return cls(**out) if ok else None


def load_preset(path, out_dir=None, data_dir=None) -> Preset:
    """Read and validate a preset file; raises PresetError listing every problem (one line each).

    out_dir: overrides settings.out_dir; data_dir: every train job's data folder (settings.data_dir and
    the jobs' own). Both absolute, or relative to the working directory.
    """
    path = Path(path).expanduser().resolve()
    data = _read_toml(path)
    chk = _Checker(path, path.parent)

    for key in data:
        if key not in TOP_LEVEL:
            chk.problem(f"[{key}]", f"unknown section{suggest(key, TOP_LEVEL)} (valid: {', '.join(TOP_LEVEL)})")
    settings = data.get("settings", {})
    if not isinstance(settings, dict):
        chk.problem("settings", "must be a table ([settings])")
        settings = {}
    for key, value in settings.items():
        if key not in SETTINGS_KEYS:
            chk.problem(f"settings, key {key}", f"unknown setting{suggest(key, SETTINGS_KEYS)} "
                                                f"(valid: {', '.join(SETTINGS_KEYS)})")
        elif not isinstance(value, str):
            chk.problem(f"settings, key {key}", f"expected a string (a path), got {toml_type(value)} {show(value)}")

    if out_dir is not None:
        out = Path(out_dir).expanduser().resolve()
    elif isinstance(settings.get("out_dir"), str):
        out = chk.local(settings["out_dir"])
    else:
        out = (path.parent / "runs" / path.stem).resolve()

    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        chk.problem("defaults", "must hold one table per job kind, such as [defaults.walk]")
        defaults = {}
    good: dict[str, dict] = {}
    for kind, table in defaults.items():
        if kind not in KINDS:
            chk.problem(f"defaults.{kind}", f"unknown job kind{suggest(kind, KINDS)} (valid: {', '.join(KINDS)})")
        elif not isinstance(table, dict):
            chk.problem(f"defaults.{kind}", "must be a table of options")
        else:
            per_job = [k for k in table if k in COMMON_KEYS + INPUT_KEYS[kind]]
            for key in per_job:
                chk.problem(f"defaults.{kind}, key {key}", "set this in each job, not in defaults")
            rest = {k: v for k, v in table.items() if k not in per_job}
            try:
                valid = chk.options(f"defaults.{kind}", kind, rest, settings_class(kind))
            except ImportError as e:
                chk.problem(f"defaults.{kind}", f"{kind} jobs need a module this install lacks ({e})")
                continue
            # Keep only what checked out, so a bad default is reported once, not once per job.
            good[kind] = {k: v for k, v in rest.items() if k in valid}
    defaults = good

    jobs_table = data.get("jobs", {})
    if not isinstance(jobs_table, dict) or not jobs_table:
        chk.problem("jobs", "no jobs; add at least one [jobs.NAME] table with a kind")
        jobs_table = {}

    jobs: dict[str, Job] = {}
    raw_refs: dict[str, list] = {}   # job -> [(key, text, producer, file or None)]
    after_keys: dict[str, tuple] = {}
    for name, table in jobs_table.items():
        job = _check_job(chk, name, table, defaults, settings, out, raw_refs, after_keys, data_dir)
        if job is not None:
            jobs[name] = job

    _check_links(chk, jobs_table, jobs, raw_refs, after_keys, out)
    if chk.problems:
        raise PresetError(path, chk.problems)
    return Preset(path=path, out_dir=out, jobs=jobs)


def _check_job(chk: _Checker, name: str, table, defaults: dict, settings: dict, out: Path,
               raw_refs: dict, after_keys: dict, data_dir=None) -> Job | None:
    where = f"job {name}"
    if not _NAME.match(name):
        chk.problem(where, "job names may hold letters, digits, _ . - only (they name log files and references)")
        return None
    if not isinstance(table, dict):
        chk.problem(where, f"must be a table ([jobs.{name}]) with a kind and its options")
        return None
    kind = table.get("kind")
    if kind is None:
        chk.problem(f"{where}, key kind", f"missing; set kind = one of {', '.join(KINDS)}")
        return None
    if kind not in KINDS:
        chk.problem(f"{where}, key kind", f"unknown kind {show(kind)}{suggest(str(kind), KINDS)} "
                                          f"(valid: {', '.join(KINDS)})")
        return None
    try:
        cls = settings_class(kind)
    except ImportError as e:
        chk.problem(f"{where}, key kind", f"{kind} jobs need a module this install lacks ({e})")
        return None
    merged = {**defaults.get(kind, {}), **table}
    if "keyframe" in merged and kind in ("walk", "compare"):
        clash = [k for k in ("seeds", "digits", "classes", "times", "hold") if k in merged]
        try:
            if clash:
                raise UserError(f"keyframe sets {', '.join(clash)} itself; leave those keys out", key="keyframe")
            merged = {**{k: v for k, v in merged.items() if k != "keyframe"}, **keyframe_list(merged["keyframe"])}
        except UserError as e:
            chk.problem(f"{where}, key keyframe", str(e))
            return None
    if kind == "train" and data_dir is not None:
        merged["data_dir"] = str(Path(data_dir).expanduser().resolve())
    elif kind == "train" and "data_dir" not in merged and isinstance(settings.get("data_dir"), str):
        merged["data_dir"] = settings["data_dir"]
    model = merged.get("model") if isinstance(merged.get("model"), str) else None
    n_before = len(chk.problems)
    values = chk.options(where, kind, merged, cls, model)

    inputs = _checkpoint_inputs(chk, where, kind, merged, raw_refs.setdefault(name, []))
    inputs += _path_inputs(chk, where, kind, values)

    after = merged.get("after", [])
    if not isinstance(after, list) or not all(isinstance(a, str) for a in after):
        chk.problem(f"{where}, key after", f"expected a list of job names, got {toml_type(after)} {show(after)}")
        after = []
    after_keys[name] = tuple(after)

    output_text = merged.get("output")
    if output_text is not None and (not isinstance(output_text, str) or not output_text.strip()):
        chk.problem(f"{where}, key output", f"expected a path (a string), got {toml_type(output_text)} "
                                            f"{show(output_text)}")
        output_text = None
    if output_text is not None:
        inside = (out / output_text).resolve()
        root = out.resolve()
        if Path(output_text).is_absolute() or inside == root or root not in inside.parents:
            chk.problem(f"{where}, key output", f"{output_text!r} is not inside the output folder {out}; a preset "
                                                f"writes only there: give a relative path without '..'")
            output_text = None
    if len(chk.problems) > n_before:
        return None  # settings cannot be built from options with problems

    # Build the settings object and let it check values (ranges, choices) with its own messages.
    if kind == "train":
        values["out_dir"] = str((out / (output_text or name)).resolve())
    elif output_text is None:
        fmt = values.get("fmt")
        output_text = {"gif": f"{name}.gif", "png": name}.get(fmt, f"{name}.png" if kind == "still" else f"{name}.mp4")
    try:
        s = cls(**values)
        if kind == "train":
            s = s.resolved()
        elif hasattr(s, "validate"):
            s.validate()
        _check_values(kind, s, sum(r.key == "ckpts" for r in inputs), out / (output_text or name))
    except UserError as e:
        chk.problem(f"{where}, key {e.key}" if e.key else where, str(e))
        return None
    except (TypeError, ValueError) as e:
        chk.problem(where, f"invalid options ({e})")
        return None

    from pipeline.train.run_dir import checkpoint_paths

    if kind == "train":
        output = Path(s.out_dir)
        outputs = tuple(checkpoint_paths(output, s))
    else:
        output = (out / output_text).resolve()
        outputs = (output,)
    from pipeline.provenance import check_not_input

    try:  # the preset is an input too: no output of the batch replaces it or any file a job reads
        for target in outputs:
            check_not_input(target, [chk.path, *(r.path for r in inputs)])
    except UserError as e:
        chk.problem(f"{where}, key output", str(e))
        return None
    options = {k: v for k, v in merged.items() if k != "kind"}
    return Job(name=name, kind=kind, settings=s, inputs=tuple(inputs), output=output, outputs=outputs,
               after=tuple(after), options=options)


def _checkpoint_inputs(chk: _Checker, where: str, kind: str, merged: dict, refs: list) -> list[InputRef]:
    """ckpt / ckpts: references are recorded in `refs` (checked once every job is known), files resolved now."""
    inputs: list[InputRef] = []
    for key in INPUT_KEYS[kind]:
        if key not in merged:
            example = "@train_resnet/e24.pt" if key == "ckpt" else '["@train_prev/e24.pt", "@train_resnet/e6.pt"]'
            chk.problem(f"{where}, key {key}", f"missing; name the checkpoint{'s' if key == 'ckpts' else ''}: "
                                               f"a file, a bundled name (prev, e6, e24, w4) or e.g. {example}")
            continue
        value = merged[key]
        if key == "ckpts" and (not isinstance(value, list) or not value):
            chk.problem(f"{where}, key {key}", f"expected a non-empty list of checkpoints, got "
                                               f"{toml_type(value)} {show(value)}")
            continue
        for text in value if key == "ckpts" else [value]:
            if not isinstance(text, str):
                chk.problem(f"{where}, key {key}", f"expected a string (a checkpoint), got {toml_type(text)} "
                                                   f"{show(text)}")
            elif text.startswith(REF_PREFIX):
                producer, _, file = text[len(REF_PREFIX):].partition("/")
                refs.append((key, text, producer, file or None))
                inputs.append(InputRef(key=key, text=text, path=None, job=producer))
            elif (found := _find_checkpoint(chk, text)) is not None:
                inputs.append(InputRef(key=key, text=text, path=found))
            else:
                from pipeline.checkpoint import list_bundled

                names = list_bundled()
                bundled = f"bundled: {', '.join(names)}" if names else "none are bundled"
                chk.problem(f"{where}, key {key}", f"checkpoint {text!r} not found (no file {chk.local(text)}, "
                                                   f"no bundled checkpoint of that name: {bundled}); fix the path "
                                                   f"or reference a train job with @job/eN.pt")
    return inputs


def _path_inputs(chk: _Checker, where: str, kind: str, values: dict) -> list[InputRef]:
    """keyframes_file and a train job's data_dir: made absolute in `values` (relative to the preset) and checked."""
    inputs = []
    if isinstance(values.get("keyframes_file"), str):
        text = values["keyframes_file"]
        p = chk.local(text)
        if not p.is_file():
            chk.problem(f"{where}, key keyframes_file", f"file {p} not found; fix the path (relative to the preset)")
        values["keyframes_file"] = str(p)
        inputs.append(InputRef(key="keyframes_file", text=text, path=p))
    for key in ("images", "image"):  # pictures of digits projected into the checkpoint (jobs.projected)
        if not isinstance(values.get(key), str):
            continue
        paths = []
        for text in (part.strip() for part in values[key].split(",")):
            p = chk.local(text)
            if not p.is_file():
                chk.problem(f"{where}, key {key}", f"image {p} not found; fix the path (relative to the preset)")
            paths.append(str(p))
            inputs.append(InputRef(key=key, text=text, path=p))
        values[key] = ",".join(paths)
    if isinstance(values.get("audio"), str):  # a soundtrack: relative to the preset, hashed as an input
        text = values["audio"]
        p = chk.local(text)
        if not p.is_file():
            chk.problem(f"{where}, key audio", f"file {p} not found; fix the path (relative to the preset)")
        values["audio"] = str(p)
        inputs.append(InputRef(key="audio", text=text, path=p))
    if kind == "train" and isinstance(values.get("data_dir"), str):
        text = values["data_dir"]
        p = chk.local(text)
        if not p.is_dir():
            chk.problem(f"{where}, key data_dir", f"data directory {p} does not exist; fix the path (relative to "
                                                  f"the preset) or omit data_dir to use the data cache/download")
        values["data_dir"] = str(p)
        inputs.append(InputRef(key="data_dir", text=text, path=p))
    return inputs


def _check_values(kind: str, s, n_inputs: int, output: Path) -> None:
    """Checks across options that the settings classes cannot make alone; raises UserError."""
    if kind == "compare":
        from pipeline.video import output_format

        s.check(n_inputs, output_format(output, s.fmt))
    if kind == "walk":
        from pipeline.scene.preflight import check_format
        from pipeline.video import output_format

        check_format(*s.canvas(), output_format(output, s.fmt))
    if kind == "walk" and s.workers > 1:
        if output_format(output, s.fmt) != "mp4":
            raise UserError("workers > 1 joins MP4 segments: name the output .mp4 or use one worker", key="workers")


def _find_checkpoint(chk: _Checker, text: str) -> Path | None:
    """A checkpoint named in a preset: a file relative to the preset, else a bundled name."""
    p = chk.local(text)
    if p.is_file():
        return p
    from pipeline.checkpoint import bundled_path

    bundled = bundled_path(text)
    return bundled.resolve() if bundled is not None else None


def _check_links(chk: _Checker, jobs_table: dict, jobs: dict, raw_refs: dict, after_keys: dict, out: Path) -> None:
    """References, explicit dependencies, duplicate outputs and cycles, across jobs."""
    from pipeline.batch.graph import find_cycles

    known = list(jobs_table)
    edges: dict[str, list[tuple[str, str]]] = {n: [] for n in known}  # job -> [(dep, key)]
    for name, refs in raw_refs.items():
        resolved = {}
        for key, text, producer, file in refs:
            where = f"job {name}, key {key}"
            if producer not in jobs_table:
                chk.problem(where, f"{text} refers to unknown job {producer!r}{suggest(producer, known)}")
                continue
            edges[name].append((producer, key))
            prod = jobs.get(producer)
            if prod is None:
                continue  # the producer has its own problems
            if prod.kind != "train":
                chk.problem(where, f"{text} is the {prod.kind} output of job {producer}, not a checkpoint; "
                                   f"reference a train job's checkpoint such as @{_a_train(jobs)}/e24.pt")
                continue
            if file is None:
                resolved[text] = prod.main_output()
            else:
                target = (prod.output / file).resolve()
                if target not in prod.outputs:
                    writes = ", ".join(p.name for p in prod.outputs)
                    chk.problem(where, f"{text} is not written by job {producer} (it writes {writes}); "
                                       f"reference one of those or add the epoch to its save_at")
                    continue
                resolved[text] = target
        job = jobs.get(name)
        if job is not None and resolved:
            inputs = tuple(replace(r, path=resolved[r.text]) if r.job is not None and r.text in resolved else r
                           for r in job.inputs)
            jobs[name] = replace(job, inputs=inputs)
    for name, after in after_keys.items():
        for dep in after:
            if dep not in jobs_table:
                chk.problem(f"job {name}, key after", f"unknown job {dep!r}{suggest(dep, known)}")
            else:
                edges[name].append((dep, "after"))

    # Duplicate and reserved outputs: two jobs writing one file would overwrite each other.
    owners: dict[Path, str] = {}
    reserved = {out / "manifest.json", out / "preset.resolved.json", out / "logs"}
    for job in jobs.values():
        paths = [job.output] + [p for p in job.outputs if p != job.output]
        for p in paths:
            if p in reserved:
                chk.problem(f"job {job.name}, key output", f"{rel(p, out)} is reserved for the batch's own "
                                                           f"files; choose another output")
            elif p in owners and owners[p] != job.name:
                chk.problem(f"job {job.name}, key output", f"{rel(p, out)} is also the output of job {owners[p]}; "
                                                           f"give each job its own output")
            else:
                owners.setdefault(p, job.name)
    trains = {j.output: j.name for j in jobs.values() if j.kind == "train"}
    for job in jobs.values():
        if job.kind != "train" and job.output.parent in trains:
            chk.problem(f"job {job.name}, key output", f"{rel(job.output, out)} is inside the run directory of "
                                                       f"train job {trains[job.output.parent]}; write it elsewhere")

    for cycle in find_cycles({n: [d for d, _ in e] for n, e in edges.items()}):
        hops = []
        for a, b in zip(cycle, cycle[1:]):
            key = next(k for d, k in edges[a] if d == b)
            hops.append(f"{a}.{key} needs {b}")
        chk.problem(f"job {cycle[0]}, key {next(k for d, k in edges[cycle[0]] if d == cycle[1])}",
                    f"dependency cycle {' -> '.join(cycle)} ({'; '.join(hops)}); remove one of these references")


def _a_train(jobs: dict) -> str:
    return next((j.name for j in jobs.values() if j.kind == "train"), "train_job")
