"""User-level jobs: render walk/class-transition videos, stills and comparison videos from checkpoints."""
from pipeline.jobs.settings import DEFAULT_CHECKPOINT, CompareSettings, StillSettings, WalkSettings
from pipeline.lazy import exports

__all__ = ["DEFAULT_CHECKPOINT", "StillSettings", "WalkSettings", "path_latents", "render_still", "render_stills",
           "render_walk",
           "CompareSettings", "render_compare", "render_walk_grid", "render_walk_segmented"]
__getattr__ = exports(__name__, {
    "path_latents": "pipeline.jobs.render", "render_still": "pipeline.jobs.render",
    "render_stills": "pipeline.jobs.render",
    "render_walk": "pipeline.jobs.render", "render_compare": "pipeline.jobs.compare",
    "render_walk_grid": "pipeline.jobs.compare",
    "render_walk_segmented": "pipeline.jobs.segments",
})
