"""What a benchmark ran on: CPU, threads, versions, device, date and how loaded the machine was."""
from __future__ import annotations

import os
import platform
from datetime import datetime, timezone

import torch

from pipeline import __version__


def machine_info(device: torch.device | None = None) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {"cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(), "cppn_video": __version__,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if device is not None:
        info["device"] = str(device)
        if device.type == "cuda":
            info["gpu"] = torch.cuda.get_device_name(device)
    try:
        # other processes on the same cores inflate wall times: the load says how quiet the machine was
        info["load_average_1min"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    return info
