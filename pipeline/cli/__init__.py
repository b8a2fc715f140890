"""The `cppn-video` command: a thin click layer over the library (one module per command)."""
from __future__ import annotations

import click

from pipeline import __version__
from pipeline.cli.common import run_cli


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="cppn-video")
def cli() -> None:
    """Train CPPN generators on MNIST and render them as high-resolution videos."""


def _register() -> None:
    import importlib

    for name in ("train", "info", "render", "bench", "compare", "batch", "eval", "replay"):
        try:
            module = importlib.import_module(f"pipeline.cli.{name}")
        except ModuleNotFoundError as exc:  # a command module not written yet
            if exc.name != f"pipeline.cli.{name}":
                raise
            continue
        module.register(cli)


_register()


def main() -> None:
    run_cli(cli)
