"""Render engine: evaluate a CPPN generator for many frames at any resolution."""
from pipeline.render.engine import PATHS, Renderer, available_paths, check_size, default_batch, resolve_device
from pipeline.render.quantize import to_uint8
from pipeline.render.reference import reference_frames

__all__ = ["PATHS", "Renderer", "available_paths", "check_size", "default_batch", "resolve_device", "to_uint8",
           "reference_frames"]
