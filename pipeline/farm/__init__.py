"""Batch presets on a Ray cluster (`cppn-video batch PRESET --ray [ADDRESS]`); the only package that imports ray.

Install with `pip install "cppn-video[farm]"`. See docs/RENDER_FARM.md.
"""
from __future__ import annotations

from pipeline.errors import UserError

INSTALL_HINT = 'pip install "cppn-video[farm]"'


def require_ray():
    """The ray module, or a one-line UserError saying how to install the extra."""
    try:
        import ray
    except ImportError:
        raise UserError(f"--ray needs Ray, which is not installed; install the farm extra: {INSTALL_HINT}") from None
    return ray


def run_farm(*args, **kwargs):
    """pipeline.farm.run.run_farm, imported on first use (it imports ray)."""
    require_ray()
    from pipeline.farm.run import run_farm as run

    return run(*args, **kwargs)
