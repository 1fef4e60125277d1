"""What this CPU can do fast, and the decisions that follow from it.

On a CPU without native bf16 dot products (AVX512-BF16 or AMX), torch runs bf16 matmuls through a
reference kernel: on an AVX2-only EPYC a 512x1024 @ 1024x1024 matmul ran at 0.7 GFLOP/s in bf16
against 81 in fp32, so ``--bf16`` made every command about 100x slower. Without VNNI or AMX, int8
dense layers through torchao ran 16-25x slower than fp32. :func:`resolve_bf16` and
:func:`resolve_runtime` turn such a request into fp32 / onnxruntime with a one-line note, unless the
user insists; every benchmark records :func:`cpu_capability` beside its figures.
"""

from __future__ import annotations

import functools
import platform
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class CpuCapability:
    """The CPU's model name, torch's vector ISA level and its native low-precision instructions."""

    name: str
    isa: str  # torch's CPU capability: "AVX512", "AVX2", "DEFAULT", ...
    bf16: bool  # native bf16 dot products: AVX512-BF16 or AMX-BF16
    int8: bool  # native int8 dot products: VNNI (AVX512-VNNI / AVX-VNNI) or AMX-INT8
    amx: bool

    def describe(self) -> str:
        """``AMD EPYC (AVX512; bf16: yes; int8 VNNI: yes; AMX: no)``."""
        yes = {True: "yes", False: "no"}
        return f"{self.name} ({self.isa}; bf16: {yes[self.bf16]}; int8 VNNI: {yes[self.int8]}; AMX: {yes[self.amx]})"

    def to_dict(self) -> dict:
        return asdict(self)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _probe(name: str) -> bool:
    import torch

    fn = getattr(torch.cpu, name, None)
    try:
        return bool(fn()) if fn is not None else False
    except Exception:  # a torch build without the probe
        return False


@functools.lru_cache(maxsize=1)
def cpu_capability() -> CpuCapability:
    """This machine's CPU (read once; torch's own probes, which look at CPUID)."""
    import torch

    amx = _probe("_is_amx_tile_supported")
    return CpuCapability(
        name=_cpu_name(),
        isa=str(torch.backends.cpu.get_cpu_capability()),
        bf16=_probe("_is_avx512_bf16_supported") or amx,
        int8=_probe("_is_vnni_supported") or amx,
        amx=amx,
    )


def resolve_bf16(bf16: bool, device: str = "cpu", force: bool = False, cpu: CpuCapability | None = None) -> bool:
    """Whether to run in bf16: as asked, except on a CPU without native bf16, where a request without
    ``force`` runs fp32 with a one-line warning (the bf16 path there is about 100x slower)."""
    if not bf16 or force or not _runs_on_cpu(device):
        return bool(bf16)
    cpu = cpu or cpu_capability()
    if cpu.bf16:
        return True
    warnings.warn(f"--bf16 ignored: this CPU ({cpu.name}, {cpu.isa}) has no native bf16 instructions "
                  "(AVX512-BF16 or AMX), where bf16 runs about 100x slower than fp32; running fp32 "
                  "(--force-bf16 insists)", stacklevel=2)  # fmt: skip
    return False


def _runs_on_cpu(device: str) -> bool:
    if str(device) == "auto":
        import torch

        return not torch.cuda.is_available()
    return str(device).startswith("cpu")


def resolve_runtime(runtime: str, force: bool = False, cpu: CpuCapability | None = None, onnx: bool = True) -> str:
    """The inference runtime to use: ``torchao`` int8 on a CPU without VNNI or AMX becomes ``onnx``
    (onnxruntime's int8 kernels do not need them; ``torch`` when there is no ONNX model, ``onnx=False``)
    with a one-line warning, unless ``force``."""
    if runtime != "torchao" or force:
        return runtime
    cpu = cpu or cpu_capability()
    if cpu.int8:
        return runtime
    instead = "onnx" if onnx else "torch"
    warnings.warn(f"--runtime torchao replaced by {instead}: this CPU ({cpu.name}, {cpu.isa}) has no VNNI or AMX, "
                  "where torchao's int8 layers run 16-25x slower than fp32 (--force-runtime insists)", stacklevel=2)  # fmt: skip
    return instead
