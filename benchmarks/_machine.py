"""What the benchmark scripts record about the machine they ran on (shared by them)."""

from __future__ import annotations

import contextlib
import os
import platform
import time
from pathlib import Path

import torch
import transformers

from lvbert.hardware import cpu_capability


def machine_info() -> dict:
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "load_average_at_start": os.getloadavg()[0],
        # what the CPU runs natively: bf16 and int8 figures differ ~100x / ~20x without it
        "cpu_capability": cpu_capability().to_dict(),
    }


def matmul_peak(dtype=torch.float32, n: int = 1024, reps: int = 10) -> float:
    """Square-matmul speed right now, in TFLOP/s: the calibration every figure is read against
    (the CPU model differs between machines of one kind, and a shared machine's speed varies)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return round(2 * n**3 * reps / (time.perf_counter() - t0) / 1e12, 4)


def write_result(path, result: dict) -> Path:
    """Write a benchmark's JSON (its folder made if needed) and return the path."""
    import json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path
