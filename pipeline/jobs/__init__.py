"""User-level jobs: render walk/class-transition videos and stills from checkpoints."""
from pipeline.jobs.render import DEFAULT_CHECKPOINT, StillSettings, WalkSettings, path_latents, render_still, render_walk

__all__ = ["DEFAULT_CHECKPOINT", "StillSettings", "WalkSettings", "path_latents", "render_still", "render_walk"]
