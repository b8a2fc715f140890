"""`cppn-video serve`: a local web app to explore the latent space, pick keyframes and render walks.

Only this package (and the thin `pipeline.cli.serve`) knows the web stack (Starlette on uvicorn): it is the
optional extra `pip install "cppn-video[serve]"`, and nothing outside it imports that stack.
"""
from pipeline.lazy import exports

__all__ = ["create_app", "run", "Workspace", "RenderJobs"]
__getattr__ = exports(__name__, {
    "create_app": "pipeline.serve.app", "run": "pipeline.serve.app",
    "Workspace": "pipeline.serve.workspace", "RenderJobs": "pipeline.serve.jobs",
})
