"""`cppn-video info CKPT`: everything a checkpoint records, as text or JSON."""
from __future__ import annotations

import click

from pipeline.cli.common import echo_json
from pipeline.text import printable


def checkpoint_summary(ckpt) -> dict:
    """A JSON-ready summary of a loaded Checkpoint (the whole meta included)."""
    from dataclasses import asdict

    latents = ckpt.class_latents
    missing = ckpt.meta.get("class_latents", {}).get("missing_classes", [])
    return {
        "path": str(ckpt.path),
        "sha256": ckpt.sha256,
        "kind": ckpt.kind,
        "format_version": ckpt.format_version,
        "family": ckpt.family,
        "generator_config": asdict(ckpt.generator_config),
        "parameters": ckpt.parameter_count(),
        "class_latents": {"shape": list(latents.shape), "present": [c for c in range(latents.shape[0])
                                                                    if c not in missing],
                          "missing": list(missing),
                          "norms": [round(float(v), 4) for v in latents.norm(dim=1)]},
        "meta": ckpt.meta,
    }


def _lines(value, indent: int) -> list[str]:
    """Nested dicts as indented `key: value` lines; lists of scalars on one line. Keys and values come from the
    file: every control character in them is escaped, so none can start a line of its own."""
    pad = "  " * indent
    out = []
    for key, v in value.items():
        key = printable(key)
        if isinstance(v, dict) and v:
            out.append(f"{pad}{key}:")
            out.extend(_lines(v, indent + 1))
        elif isinstance(v, (list, tuple)):
            out.append(f"{pad}{key}: {', '.join(printable(x) for x in v) if v else '(none)'}")
        else:
            out.append(f"{pad}{key}: {'(none)' if v is None or v == {} else printable(v)}")
    return out


@click.command("info")
@click.argument("checkpoint", metavar="CKPT")
@click.option("--json", "as_json", is_flag=True, help="Print the same information as JSON.")
def info_command(checkpoint: str, as_json: bool) -> None:
    """Print what a checkpoint records: model family, hyperparameters, epoch and steps,
    dataset and file hashes, seed, version, class latents, file SHA-256, parameter count.

    CKPT is a .pt file (e{epoch}.pt or state.pt from `cppn-video train`) or a bundled name such as e24.
    """
    from pipeline.checkpoint import load_checkpoint

    info = checkpoint_summary(load_checkpoint(checkpoint))
    if as_json:
        echo_json(info)
        return
    meta = info.pop("meta")
    for line in _lines(info, 0):
        click.echo(line)
    click.echo("meta:")
    for line in _lines(meta, 1):
        click.echo(line)


def register(cli: click.Group) -> None:
    cli.add_command(info_command)
