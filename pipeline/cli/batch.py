"""`cppn-video batch PRESET`: validate a TOML preset, print its plan or run it resumably (pipeline.batch)."""
from __future__ import annotations

import threading
from contextlib import ExitStack
from pathlib import Path

import click

from pipeline.cli.common import echo_json, progress_bar, stop_on_interrupt
from pipeline.errors import UserError
from pipeline.text import printable

# Exit codes: 0 every selected job done or up to date; 1 a job failed (or was blocked by one);
# 2 the preset or an option is invalid (nothing ran); 130 stopped by Ctrl-C.
EXIT_INVALID = 2

_VERB = {"done": "done", "skipped": "skip", "failed": "FAIL", "blocked": "skip", "interrupted": "stop",
         "cancelled": "stop"}


class _Reporter:
    """Turns the runner's events (from several threads) into lines and, with one device, a progress bar."""

    def __init__(self, quiet: bool, bars: bool, out_dir: Path):
        self.quiet, self.bars, self.out_dir = quiet, bars, out_dir
        self.lock = threading.Lock()
        self.bar: ExitStack | None = None
        self.advance = None
        self.held: list[str] = []  # lines that arrive while a bar is drawn, printed when it closes

    def _echo(self, line: str, always: bool = False) -> None:
        if self.quiet and not always:
            return
        if self.bar is not None:
            self.held.append(line)
        else:
            click.echo(line, err=True)

    def _close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar, self.advance = None, None
        for line in self.held:
            click.echo(line, err=True)
        self.held.clear()

    def _where(self, path) -> str:
        try:
            return str(Path(path).relative_to(Path.cwd()))
        except ValueError:
            return str(path)

    def __call__(self, event: dict) -> None:
        with self.lock:
            kind, job = event["event"], event["job"]
            if kind == "job_start":
                self._echo(f"run  {job} ({event['kind']}) on {event['device']}: {event['reason']}")
            elif kind == "job_total":
                if self.bars and self.bar is None:
                    self.bar = ExitStack()
                    self.advance = self.bar.enter_context(progress_bar(job, event["total"], event["unit"]))
                    self.advance(0)
            elif kind == "job_advance":
                if self.advance is not None:
                    self.advance(event["n"], info=event.get("info", ""))
            elif kind == "job_end":
                if self.bar is not None and event["status"] not in ("skipped", "blocked", "cancelled"):
                    self._close_bar()
                status = event["status"]
                verb = _VERB.get(status, status)
                if status == "done":
                    self._echo(f"{verb} {job} in {event['seconds']:.1f} s")
                elif status in ("failed", "interrupted"):
                    self._echo(f"{verb} {job}: {event['reason']} (log: {self._where(event['log'])})",
                               always=status == "failed")
                else:
                    self._echo(f"{verb} {job}: {event['reason']}")

    def close(self) -> None:
        with self.lock:
            self._close_bar()


def _print_plan(preset, steps) -> None:
    n_run = sum(s.action == "run" for s in steps)
    click.echo(f"plan for {preset.name} -> {preset.out_dir} ({len(steps)} job{'s' if len(steps) != 1 else ''}: "
               f"{n_run} to run, {len(steps) - n_run} up to date)")
    width = max(len(s.name) for s in steps)
    for i, s in enumerate(steps, 1):
        click.echo(f"{i:3d}. {s.name:<{width}}  {s.kind:<7}  {s.action:<4}  {printable(s.reason)}")
        if s.deps:
            click.echo(f"       needs:   {', '.join(s.deps)}")
        if s.inputs:
            click.echo(f"       inputs:  {printable(', '.join(s.inputs))}")  # paths from the preset
        click.echo(f"       outputs: {printable(', '.join(s.outputs))}")
    click.echo("nothing was run (--dry-run)")


def _summary(result) -> str:
    counts: dict[str, int] = {}
    for o in result.outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    words = {"done": "ran", "skipped": "up to date", "failed": "failed", "blocked": "blocked by a failure",
             "interrupted": "interrupted", "cancelled": "not started"}
    parts = [f"{counts[k]} {w}" for k, w in words.items() if counts.get(k)]
    head = "batch complete" if result.ok else ("batch stopped" if result.interrupted else "batch finished with failures")
    return f"{head}: {', '.join(parts) or 'no jobs'}; outputs and manifest.json in {result.out_dir}"


@click.command("batch")
@click.argument("preset", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True,
              help="Validate and print the plan (order, kinds, inputs, outputs, run or skip and why); run nothing.")
@click.option("--only", multiple=True, metavar="NAME",
              help="Run only this job and the jobs it needs (repeat, or separate names with commas).")
@click.option("--force", is_flag=True,
              help="Rerun the --only jobs (or every job) even when up to date; the jobs they need are still "
                   "skipped when up to date.")
@click.option("--devices", default="auto", show_default=True,
              help="cpu, auto (cuda:0 if available, else cpu), or a list such as cuda:0,cuda:1: one job runs per "
                   "device at a time, so independent jobs render in parallel.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder for every job, manifest.json and logs/  [default: the preset's settings.out_dir].")
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder with the MNIST IDX files for every train job  [default: the preset's data_dir, else the "
                   "data cache, which downloads MNIST].")
@click.option("--ray", "ray_address", is_flag=False, flag_value="local", default=None, metavar="[ADDRESS]",
              help="Run the jobs on a Ray cluster: --ray alone starts one on this machine, --ray auto or "
                   "--ray HOST:6379 joins a running one (needs pip install \"cppn-video[farm]\"; "
                   "see docs/RENDER_FARM.md). --devices is then the cluster's business.")
@click.option("--ray-cpus", type=click.IntRange(min=1), default=1, show_default=True,
              help="With --ray on a cluster without GPUs: CPUs each render task asks for.")
@click.option("--quiet", is_flag=True, help="Only failures and the summary (no progress bars or per-job lines).")
@click.option("--json", "as_json", is_flag=True, help="Print the plan (--dry-run) or every job's outcome as JSON.")
@click.pass_context
def batch_command(ctx: click.Context, preset, dry_run, only, force, devices, out_dir, data_dir, ray_address, ray_cpus,
                  quiet, as_json) -> None:
    """Run the jobs of a TOML PRESET (train, walk, still, compare) in dependency order, resumably.

    The whole preset is validated first (each problem on one line, exit code 2). Jobs whose outputs,
    settings and input hashes match OUT/manifest.json are skipped; a failing job does not stop the
    jobs that do not need it. Exit code 0 when every selected job succeeded, 1 when one failed, 130
    when stopped by Ctrl-C (rerun to continue). Each job logs to OUT/logs/<job>.log.
    """
    from pipeline.batch import PresetError, load_preset, make_plan, parse_devices, run_batch, select

    preset, ray_address = _preset_after_bare_ray(preset, ray_address)
    names = [n.strip() for item in only for n in item.split(",") if n.strip()]
    try:
        p = load_preset(preset, out_dir=out_dir, data_dir=data_dir)
    except PresetError as e:
        for line in e.problems:
            click.echo(f"error: {printable(line)}", err=True)  # a problem may quote the preset's keys
        click.echo(f"{preset}: {len(e.problems)} problem{'s' if len(e.problems) != 1 else ''}; nothing was run",
                   err=True)
        ctx.exit(EXIT_INVALID)
    try:
        select(p, names)
    except UserError as e:
        raise click.BadParameter(str(e).split(": ", 1)[-1], param_hint="'--only'") from None
    if ray_address is not None:
        farm = None if dry_run else _farm(ctx)
        if ctx.get_parameter_source("devices") != click.core.ParameterSource.DEFAULT:
            raise click.BadParameter("chooses this machine's devices; with --ray the cluster's resources decide "
                                     "(leave it out, or drop --ray)", param_hint="'--devices'")
        devices = "cpu"  # the plan is the same wherever the jobs run
    try:
        device_list = parse_devices(devices, check=not dry_run)
    except UserError as e:
        raise click.BadParameter(str(e).split(": ", 1)[-1], param_hint="'--devices'") from None
    if dry_run:
        steps = make_plan(p, only=names, force=force)
        if as_json:
            echo_json({"preset": str(p.path), "out_dir": str(p.out_dir), "devices": device_list,
                       "jobs": [s.to_dict() for s in steps]})
        else:
            _print_plan(p, steps)
        return

    stop = threading.Event()
    if ray_address is not None:
        _run_on_farm(ctx, farm, p, names, force, ray_address, ray_cpus, quiet, as_json, stop)
        return
    reporter = _Reporter(quiet, bars=not quiet and not as_json and len(device_list) == 1, out_dir=p.out_dir)
    if not quiet:
        click.echo(f"batch {p.name} -> {p.out_dir} on {', '.join(device_list)}", err=True)
    _run_and_report(ctx, reporter, stop, as_json, "running jobs stop at their next batch and are recorded",
                    lambda: run_batch(p, only=names, force=force, devices=device_list, progress=reporter,
                                      stop_flag=stop))


def _run_and_report(ctx: click.Context, reporter, stop: threading.Event, as_json: bool, on_stop: str, run) -> None:
    """run() under Ctrl-C/SIGTERM/SIGHUP handling, then the outcome (JSON and the summary line) and its exit code."""
    try:
        with stop_on_interrupt(stop, f"stopping; {on_stop} (Ctrl-C again to abort)"):
            result = run()
    finally:
        reporter.close()
    if as_json:
        echo_json(result.to_dict())
    click.echo(printable(_summary(result), keep_newlines=True), err=True)
    ctx.exit(result.exit_code)


def _preset_after_bare_ray(preset: Path | None, ray_address: str | None) -> tuple[Path, str | None]:
    """`batch --ray p.toml`: click reads p.toml as the address of --ray; a bare --ray it is (a local cluster)."""
    if preset is None:
        if ray_address is not None and ray_address.endswith(".toml"):
            path = Path(ray_address)
            if not path.is_file():
                raise click.BadParameter(f"file {ray_address!r} does not exist", param_hint="'PRESET'")
            return path, "local"
        raise click.UsageError("missing the PRESET argument (a .toml file; see presets/)")
    return preset, ray_address


def _farm(ctx: click.Context):
    """pipeline.farm, or a one-line error saying how to install Ray."""
    from pipeline import farm

    try:
        farm.require_ray()
    except UserError as e:
        click.echo(f"error: {printable(e, keep_newlines=True)}", err=True)
        ctx.exit(1)
    return farm


def _run_on_farm(ctx, farm, p, names, force, address, cpus, quiet, as_json, stop) -> None:
    if quiet or as_json:
        reporter = _Reporter(quiet, bars=False, out_dir=p.out_dir)
    else:
        from pipeline.cli.farm_display import FarmDisplay

        reporter = FarmDisplay()
        click.echo(f"batch {p.name} -> {p.out_dir} on Ray ({'a local cluster' if address == 'local' else address})",
                   err=True)
    _run_and_report(ctx, reporter, stop, as_json, "the cluster's tasks are cancelled and nothing partial is written",
                    lambda: farm.run_farm(p, only=names, force=force, address=address, cpus=cpus,
                                          progress=reporter, stop_flag=stop))


def register(cli: click.Group) -> None:
    cli.add_command(batch_command)
