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


def test_torchao_without_an_onnx_model_falls_back_to_torch():
    with pytest.warns(UserWarning, match="replaced by torch"):
        assert resolve_runtime("torchao", cpu=AVX2, onnx=False) == "torch"


def test_the_bf16_option_follows_the_cpu(monkeypatch):
    """`--bf16` read through the options: fp32 on a CPU without native bf16 unless forced (LVBERT_FORCE_BF16,
    which `lvbert --force-bf16` sets)."""
    import argparse

    import lvbert.hardware as hardware
    from lvbert.options import collect
    from lvbert.recipes.finetune import FinetuneConfig

    monkeypatch.setattr(hardware, "cpu_capability", lambda: AVX2)
    args = argparse.Namespace(bf16=True, device="cpu")
    with pytest.warns(UserWarning, match="--bf16 ignored"):
        assert collect(FinetuneConfig, args)["bf16"] is False
    monkeypatch.setenv("LVBERT_FORCE_BF16", "1")
    assert collect(FinetuneConfig, args)["bf16"] is True
    monkeypatch.setattr(hardware, "cpu_capability", lambda: VNNI)
    monkeypatch.delenv("LVBERT_FORCE_BF16")
    assert collect(FinetuneConfig, args)["bf16"] is True
