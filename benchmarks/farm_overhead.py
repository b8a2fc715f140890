"""The cost of `batch --ray` on one machine: the same render preset by plain `batch` and on a local 2-node Ray
cluster (2 nodes x 1 CPU, as the tests use), each into a fresh folder; prints machine, date, command, times
and the ratio. Needs the farm extra (pip install "cppn-video[farm]") and a bundled checkpoint (e24).

    python benchmarks/farm_overhead.py [--frames 48] [--size 128]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

PRESET = """
[settings]
out_dir = "out"

[defaults.walk]
size = {size}
frames = {frames}
keyframes = 3
preset = "veryfast"

[jobs.walk_a]
kind = "walk"
ckpt = "e24"

[jobs.walk_b]
kind = "walk"
ckpt = "e6"
workers = 2

[jobs.still]
kind = "still"
ckpt = "e24"
size = {size}

[jobs.compare]
kind = "compare"
ckpts = ["e6", "e24"]
panel_size = {size}
frames = {frames}
keyframes = 3
preset = "veryfast"
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--size", type=int, default=128)
    args = ap.parse_args()
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    import ray
    import torch
    from ray.cluster_utils import Cluster

    from pipeline.batch import load_preset, run_batch
    from pipeline.farm import run_farm

    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, torch {torch.__version__}, ray {ray.__version__}")
    print(f"date: {datetime.now(timezone.utc).isoformat(timespec='seconds')}")
    print(f"command: python benchmarks/farm_overhead.py {' '.join(sys.argv[1:])}".rstrip())
    text = PRESET.format(size=args.size, frames=args.frames)
    with tempfile.TemporaryDirectory(prefix="farm-bench-") as tmp:
        local_p, farm_p = Path(tmp, "local", "p.toml"), Path(tmp, "farm", "p.toml")
        for p in (local_p, farm_p):
            p.parent.mkdir()
            p.write_text(text)

        t0 = time.perf_counter()
        res = run_batch(load_preset(local_p), devices=["cpu"])
        local_s = time.perf_counter() - t0
        assert res.ok, res.to_dict()

        t0 = time.perf_counter()
        light = {"num_cpus": 1, "object_store_memory": 100 * 1024**2}
        cluster = Cluster(initialize_head=True, head_node_args={**light, "include_dashboard": False})
        cluster.add_node(**light)
        ray.init(address=cluster.address, log_to_driver=False)
        start_s = time.perf_counter() - t0
        try:
            t0 = time.perf_counter()
            res = run_farm(load_preset(farm_p))
            farm_s = time.perf_counter() - t0
            assert res.ok, res.to_dict()
            t0 = time.perf_counter()
            again = run_farm(load_preset(farm_p))
            skip_s = time.perf_counter() - t0
            assert {o.status for o in again.outcomes} == {"skipped"}
        finally:
            ray.shutdown()
            cluster.shutdown()
        same = Path(tmp, "local/out/walk_b.mp4").read_bytes() == Path(tmp, "farm/out/walk_b.mp4").read_bytes()
    print(f"preset: 2 walks ({args.frames} frames, {args.size} px, one in 2 segments), a still, a 2-panel compare")
    print(f"plain batch (--devices cpu):           {local_s:7.2f} s")
    print(f"local 2-node cluster start + connect:  {start_s:7.2f} s")
    print(f"batch --ray on it (jobs):              {farm_s:7.2f} s")
    print(f"batch --ray rerun (all skipped):       {skip_s:7.2f} s")
    print(f"ratio --ray / plain (jobs only):       {farm_s / local_s:7.2f}")
    print(f"ratio --ray / plain (with start):      {(farm_s + start_s) / local_s:7.2f}")
    print(f"segmented walk byte-identical:         {same}")


if __name__ == "__main__":
    main()
