"""The CPU-capability decisions, with faked capabilities (the machines of this project change CPU)."""

from __future__ import annotations

import warnings

import pytest

from lvbert.hardware import CpuCapability, cpu_capability, resolve_bf16, resolve_runtime

AVX2 = CpuCapability("AMD EPYC (faked)", "AVX2", bf16=False, int8=False, amx=False)
VNNI = CpuCapability("AMD EPYC (faked)", "AVX512", bf16=True, int8=True, amx=False)
AMX = CpuCapability("Intel Xeon (faked)", "AVX512", bf16=True, int8=True, amx=True)


def test_this_cpu_is_described():
    cpu = cpu_capability()
    assert cpu.name and cpu.isa and set(cpu.to_dict()) == {"name", "isa", "bf16", "int8", "amx"}
    assert cpu.isa in cpu.describe()


@pytest.mark.parametrize("cpu", [VNNI, AMX])
def test_bf16_kept_where_native(cpu):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_bf16(True, "cpu", cpu=cpu) is True
        assert resolve_bf16(False, "cpu", cpu=cpu) is False


def test_bf16_falls_back_to_fp32_without_native_bf16():
    with pytest.warns(UserWarning, match="no native bf16.*--force-bf16"):
        assert resolve_bf16(True, "cpu", cpu=AVX2) is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_bf16(True, "cpu", force=True, cpu=AVX2) is True  # the user insists
        assert resolve_bf16(True, "cuda", cpu=AVX2) is True  # a GPU is not this CPU
        assert resolve_bf16(False, "cpu", cpu=AVX2) is False


def test_torchao_falls_back_to_onnx_without_vnni():
    with pytest.warns(UserWarning, match="no VNNI or AMX"):
        assert resolve_runtime("torchao", cpu=AVX2) == "onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_runtime("torchao", force=True, cpu=AVX2) == "torchao"
        assert resolve_runtime("torchao", cpu=VNNI) == "torchao"
        assert resolve_runtime("onnx", cpu=AVX2) == "onnx" and resolve_runtime("torch", cpu=AVX2) == "torch"
