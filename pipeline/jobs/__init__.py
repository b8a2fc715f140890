"""User-level jobs: render walk/class-transition videos, stills and comparison videos from checkpoints."""
from pipeline.jobs.render import DEFAULT_CHECKPOINT, StillSettings, WalkSettings, path_latents, render_still, render_walk
from pipeline.jobs.compare import CompareSettings, render_compare
from pipeline.jobs.segments import render_walk_segmented

__all__ = ["DEFAULT_CHECKPOINT", "StillSettings", "WalkSettings", "path_latents", "render_still", "render_walk",
           "CompareSettings", "render_compare", "render_walk_segmented"]
