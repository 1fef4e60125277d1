"""benchmarks/gpu_suite.py runs end to end (``--quick`` on CPU) and writes every section, so the
script the GPU runs does not rot between the rare runs on a lent GPU."""

from __future__ import annotations

import importlib.util
import json
import numbers
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_suite():
    spec = importlib.util.spec_from_file_location("gpu_suite", ROOT / "benchmarks" / "gpu_suite.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def has_number(value) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, numbers.Number):
        return True
    if isinstance(value, dict):
        return any(has_number(v) for v in value.values())
    if isinstance(value, list):
        return any(has_number(v) for v in value)
    return False


def test_quick_cpu_run_writes_every_section(tmp_path):
    suite = load_suite()
    out = tmp_path / "g.json"
    assert suite.main(["--device", "cpu", "--quick", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["quick"] is True and result["device"] == "cpu"
    for key in ("torch", "device_name", "cpu_capability", "machine", "wall_s", "targets"):
        assert key in result, key
    sections = result["sections"]
    assert set(sections) == set(suite.SECTIONS)
    for name, section in sections.items():
        # each section has numbers or says why not (an error string); none is skipped in a quick run
        assert "skipped" not in section, (name, section)
        if "error" in section:
            assert isinstance(section["error"], str) and section["error"], name
        else:
            assert has_number({k: v for k, v in section.items() if k != "section_s"}), (name, section)
    peak = sections["matmul_peak"]
    if "error" not in peak:
        assert peak["tflops"]["bf16"] > 0 and peak["tflops"]["fp32"] > 0
    pretrain = sections["pretrain"]
    if "error" not in pretrain:
        models = {r["model"] for r in pretrain["rows"]}
        assert {"hf mlm", "hf electra"} <= models and any(m.startswith("lvbert electra") for m in models)
        for r in pretrain["rows"]:
            assert r["tokens_per_s"] > 0 and r["vs_hf"] is not None
            if r["objective"] == "mlm":
                assert r["mfu"] > 0
    for target in ("mfu", "electra_vs_hf"):
        t = result["targets"][target]
        assert t["target"] > 0 and t["pass"] in (True, False, None)
    inference = sections["inference"]
    if "error" not in inference:
        for dtype in ("fp32", "bf16", "int8_torchao"):
            row = inference["rows"][dtype]
            assert "error" in row or row["sequences_per_s"] > 0, (dtype, row)
    qs = sections["quickstart_slice"]
    if "error" not in qs:
        assert qs["projection"] is True and qs["projected_supernet_stage_s"] > 0


def test_sections_over_budget_are_recorded_as_skipped(tmp_path):
    suite = load_suite()
    out = tmp_path / "g.json"
    assert suite.main(["--device", "cpu", "--quick", "--budget-s", "0", "--out", str(out)]) == 0
    sections = json.loads(out.read_text())["sections"]
    assert all("skipped" in sections[name] for name in suite.SECTIONS)
    assert json.loads(out.read_text())["targets"]["mfu"]["pass"] is None
