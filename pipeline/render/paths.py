"""The render paths a user can choose (`--path`); pipeline.render.engine says which can run where."""

PATHS = ("auto", "reference", "torch", "cpu-fused", "triton")
