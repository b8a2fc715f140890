"""Render engine: evaluate a CPPN generator for many frames at any resolution."""
from pipeline.lazy import exports
from pipeline.render.paths import PATHS

_ENGINE = "pipeline.render.engine"
__all__ = ["PATHS", "Renderer", "available_paths", "check_frame_size", "default_batch", "resolve_device", "to_uint8",
           "reference_frames"]
__getattr__ = exports(__name__, {
    "Renderer": _ENGINE, "available_paths": _ENGINE, "check_frame_size": _ENGINE, "default_batch": _ENGINE,
    "resolve_device": _ENGINE, "to_uint8": "pipeline.render.quantize", "reference_frames": "pipeline.render.reference",
})
