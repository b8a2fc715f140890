"""The `cppn-video` command: a thin click layer over the library (one module per command)."""
from __future__ import annotations

import click

from pipeline import __version__
from pipeline.cli import batch, bench, compare, eval, info, project, render, replay, serve, train
from pipeline.cli.common import run_cli


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="cppn-video")
def cli() -> None:
    """Train CPPN generators on MNIST and render them as high-resolution videos."""


for _command in (train, info, render, bench, compare, batch, eval, project, replay, serve):
    _command.register(cli)


def main() -> None:
    run_cli(cli)
