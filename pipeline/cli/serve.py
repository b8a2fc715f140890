"""`cppn-video serve`: a thin adapter over pipeline.serve (the optional web extra, imported only when run)."""
from __future__ import annotations

import click

from pipeline.errors import UserError

EXTRA = 'pip install "cppn-video[serve]"'


@click.command()
@click.option("--ckpt", "ckpts", multiple=True, metavar="NAME_OR_PATH",
              help="A checkpoint to offer besides the bundled ones (repeat for several); the first is shown first.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port to listen on.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind. Anything but a loopback address needs the token printed in the URL.")
@click.option("--out", default="serve-out", show_default=True, type=click.Path(file_okay=False),
              help="The only folder renders are written to (created if needed).")
def serve(ckpts, port, host, out):
    """Explore the latent space in a browser: live preview, seeds, classes, sliders, keyframes, and walk renders
    (the same render as `walk`) with progress, into --out."""
    try:
        from pipeline.serve.app import create_app, is_local, new_token, run
    except ImportError as e:
        raise UserError(f"cppn-video serve needs the web extra ({e}); {EXTRA}") from None
    local = is_local(host)
    token = None if local else new_token()
    trusted = None if not local else ["127.0.0.1", "localhost", "[::1]", "::1"]
    app = create_app(ckpts, out, token=token, trusted_hosts=trusted)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{shown if ':' not in shown else f'[{shown}]'}:{port}/" + (f"?token={token}" if token else "")
    click.echo(f"serving on {url}  (outputs in {app.state.workspace.out}; Ctrl-C stops)")
    click.echo(app.state.workspace.opening())
    run(app, host=host, port=port)


def register(cli: click.Group) -> None:
    cli.add_command(serve)
