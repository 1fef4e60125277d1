"""How well the latency tables predict whole models: raw per-op sums against calibrated ones.

In one run, on this device, batch ``--batch`` x ``--seq``, fp32:

- **LV-BERT** (size small, 24 slots, C/A/F): the stacked per-type table, calibrated on ``--fit``
  whole models (``LatencyTable.calibrate``), then ``--archs`` other random archs measured for
  real (half uniform over C/A/F, half with their own mix of types): mean absolute relative error
  and Pearson of the raw sum and of the calibrated table;
- **NAS-BERT** (the small space: widths 128-512, blocks of 6): the same with the NAS table and
  random combinations of block candidates.

None of the evaluated archs is used for fitting. The float32 matmul peak is measured in the same
run. Writes ``benchmarks/results/latency.json``.

    .venv/bin/python benchmarks/bench_latency.py [--archs 20 --fit 8]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _machine import machine_info, matmul_peak, write_result  # noqa: E402

RESULTS = HERE / "results" / "latency.json"


def _summary(pred: list[float], raw: list[float], meas: list[float]) -> dict:
    from lvbert.search.latency import pearson

    def err(p):
        return statistics.fmean(abs(a - b) / b for a, b in zip(p, meas))

    return {"mean_abs_rel_error": err(pred), "pearson": pearson(pred, meas), "raw_mean_abs_rel_error": err(raw),
            "raw_pearson": pearson(raw, meas), "raw_mean_signed_rel_error": statistics.fmean((a - b) / b for a, b in zip(raw, meas))}  # fmt: skip


def main(argv=None) -> int:
    from lvbert.arch import get_size, random_arch
    from lvbert.nas.latency import NasLatencyTable, measure_arch
    from lvbert.nas.space import get_space
    from lvbert.search.latency import LatencyTable, calibration_archs

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--archs", type=int, default=20)
    ap.add_argument("--fit", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    info, peak = machine_info(), matmul_peak()
    result = {"machine": info, "matmul_peak_fp32_tflops": peak, "batch": args.batch, "seq_len": args.seq}

    # LV-BERT
    t0 = time.perf_counter()
    table = LatencyTable.measure("small", args.batch, args.seq, repeats=args.repeats)
    cal = table.calibrate(calibration_archs(["C", "A", "F"], 24, args.fit), args.repeats)
    half = args.archs // 2
    test = [random_arch(1000 + i) for i in range(half)] + calibration_archs(["C", "A", "F"], 24, args.archs - half, seed=777)
    rows = [{"arch": a, "predicted_ms": table.predict(a), "raw_ms": table.raw_predict(a),
             "measured_ms": table.measure_model(a, args.repeats)} for a in test]  # fmt: skip
    lv = _summary([r["predicted_ms"] for r in rows], [r["raw_ms"] for r in rows], [r["measured_ms"] for r in rows])
    result["lvbert"] = {**lv, "calibration": cal, "archs": rows, "seconds": time.perf_counter() - t0}
    print(f"LV-BERT small: raw error {lv['raw_mean_abs_rel_error']:.1%} (Pearson {lv['raw_pearson']:.3f}), calibrated "
          f"{lv['mean_abs_rel_error']:.1%} (Pearson {lv['pearson']:.3f}) over {len(rows)} archs")  # fmt: skip

    # NAS-BERT
    t0 = time.perf_counter()
    space = get_space("small")
    size = space.student_size(128, get_size("small").vocab_size, 512)
    nas = NasLatencyTable.measure(space, size, args.batch, args.seq, repeats=10)
    cands = space.block_candidates()
    rng = random.Random(0)
    fit = [[rng.choice(cands) for _ in range(space.num_blocks)] for _ in range(args.fit)]
    raw_tab = NasLatencyTable.from_dict(json.loads(json.dumps(nas.to_dict())))
    ncal = nas.calibrate(space, size, fit, repeats=10)
    rows = []
    for _ in range(args.archs):
        blocks = [rng.choice(cands) for _ in range(space.num_blocks)]
        rows.append({"arch": str(space.arch(blocks)), "predicted_ms": nas.predict(blocks), "raw_ms": raw_tab.predict(blocks),
                     "measured_ms": measure_arch(str(space.arch(blocks)), size, args.batch, args.seq, repeats=10)})  # fmt: skip
    ns = _summary([r["predicted_ms"] for r in rows], [r["raw_ms"] for r in rows], [r["measured_ms"] for r in rows])
    result["nas"] = {**ns, "calibration": ncal, "archs": rows, "seconds": time.perf_counter() - t0}
    print(f"NAS-BERT small space: raw error {ns['raw_mean_abs_rel_error']:.1%} (Pearson {ns['raw_pearson']:.3f}), "
          f"calibrated {ns['mean_abs_rel_error']:.1%} (Pearson {ns['pearson']:.3f}) over {len(rows)} archs")  # fmt: skip
    print(f"wrote {write_result(RESULTS, result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
