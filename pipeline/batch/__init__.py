"""Batch jobs from TOML presets: validate, plan, and run resumably with a manifest (`cppn-video batch`)."""
from pipeline.batch.manifest import Manifest, check_job
from pipeline.batch.graph import select
from pipeline.batch.plan import PlanStep, make_plan
from pipeline.batch.preset import Job, Preset, PresetError, load_preset
from pipeline.batch.runner import BatchResult, JobOutcome, parse_devices, run_batch

__all__ = ["load_preset", "make_plan", "run_batch", "parse_devices", "select", "check_job", "Preset", "Job",
           "PresetError", "PlanStep", "BatchResult", "JobOutcome", "Manifest"]
