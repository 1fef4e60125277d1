"""NAS-BERT on this machine: block-wise training speed, the latency table's error, selection speed.

In one run, at the small space (NAS-BERT's: widths 128-512, blocks of 6) with a small-size teacher
width (256) and batch ``--batch`` x ``--seq``:

- **block training step** (forward, backward, AdamW) of the block supernet on a sampled candidate,
  against the same candidate built alone (its sub-layers and adapters, nothing else): the cost of
  holding every op at every width (target: within 1.05x);
- **latency table**: the per-op table's prediction of whole models against measuring them, over
  ``--archs`` random NAS archs (none used to build the table): mean error and Pearson;
- **selection**: best-first combinations under a parameter budget over 4 blocks x 100 candidates.

The float32 matmul peak is measured in the same run. Writes ``benchmarks/results/nas.json``.

    .venv/bin/python benchmarks/bench_nas.py [--batch 8 --seq 128 --archs 20]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _machine import machine_info, matmul_peak, write_result  # noqa: E402

RESULTS = HERE / "results" / "nas.json"


def _step_ms(model_fn, params, x, y, steps: int) -> float:
    opt = torch.optim.AdamW(params, lr=1e-4)
    times = []
    for i in range(steps + 2):
        t0 = time.perf_counter()
        loss = (model_fn(x) - y).pow(2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i >= 2:
            times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main(argv=None) -> int:
    from lvbert.modeling_lvbert import LvBertConfig, make_sublayer
    from lvbert.nas.latency import NasLatencyTable, measure_arch
    from lvbert.nas.select import k_best
    from lvbert.nas.space import get_space
    from lvbert.nas.supernet import NasBlock, sublayer_config
    from lvbert.search.latency import pearson

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--steps", type=int, default=5, help="timed training steps per candidate")
    ap.add_argument("--candidates", type=int, default=4)
    ap.add_argument("--archs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    info = machine_info()
    peak = matmul_peak()
    space = get_space("small")
    teacher_cfg = LvBertConfig.from_size("small", arch="AF")
    cfg = sublayer_config(teacher_cfg, 0.0)
    net = NasBlock(space, 256, cfg).train()
    n_weights = sum(p.numel() for p in net.parameters())
    x = torch.randn(args.batch, args.seq, 256)
    y = torch.randn(args.batch, args.seq, 256)
    rng = random.Random(0)
    cands = space.block_candidates()
    rows = []
    for block in [rng.choice([c for c in cands if "I" not in c.ops]) for _ in range(args.candidates)]:
        alone = torch.nn.ModuleList([torch.nn.Linear(256, block.width)]
                                    + [make_sublayer(space.op(t, block.width), cfg, block.width) for t in block.ops]
                                    + [torch.nn.Linear(block.width, 256)]).train()  # fmt: skip

        def run_alone(h, alone=alone):
            for m in alone:
                h = m(h) if isinstance(m, torch.nn.Linear) else m(h, None, None)
            return h

        sup = _step_ms(lambda h, b=block: net(h, b), [p for m in net.path(block) for p in m.parameters()]
                       + list(net.inputs[f"w{block.width}"].parameters()) + list(net.outputs[f"w{block.width}"].parameters()),
                       x, y, args.steps)  # fmt: skip
        ref = _step_ms(run_alone, list(alone.parameters()), x, y, args.steps)
        rows.append({"block": str(block), "supernet_ms": sup, "alone_ms": ref, "ratio": sup / ref})
        print(f"{block}: supernet {sup:.1f} ms, alone {ref:.1f} ms, ratio {sup / ref:.3f}")
    size = space.student_size(128, 30522, 512)
    t0 = time.perf_counter()
    lut = NasLatencyTable.measure(space, size, 1, args.seq, repeats=10)
    lut_s = time.perf_counter() - t0
    checks = []
    for _ in range(args.archs):
        blocks = [rng.choice(cands) for _ in range(space.num_blocks)]
        arch = str(space.arch(blocks))
        checks.append({"arch": arch, "predicted_ms": lut.predict(blocks), "measured_ms": measure_arch(arch, size, 1, args.seq)})
    err = statistics.fmean(abs(c["predicted_ms"] - c["measured_ms"]) / c["measured_ms"] for c in checks)
    r = pearson([c["predicted_ms"] for c in checks], [c["measured_ms"] for c in checks])
    print(f"latency table: {len(checks)} archs, mean error {err:.1%}, Pearson {r:.3f} ({lut_s:.0f} s to measure)")
    losses = [sorted(rng.random() for _ in range(100)) for _ in range(4)]
    sizes = [[rng.randint(1, 100) for _ in range(100)] for _ in range(4)]
    t0 = time.perf_counter()
    found, visits = k_best(losses, 100, lambda c: sum(sizes[n][i] for n, i in enumerate(c)) <= 120)
    sel_s = time.perf_counter() - t0
    print(f"selection: {len(found)} combinations of 10^8 under the budget in {sel_s:.2f} s ({visits:,} visited)")
    result = {
        "machine": info, "matmul_peak_fp32_tflops": peak, "batch": args.batch, "seq_len": args.seq,
        "block_supernet_weights": n_weights, "block_training": rows,
        "block_training_ratio_median": statistics.median(r_["ratio"] for r_ in rows),
        "latency_table": {"seconds_to_measure": lut_s, "archs": checks, "mean_abs_rel_error": err, "pearson": r},
        "selection": {"found": len(found), "visited": visits, "seconds": sel_s},
    }  # fmt: skip
    print(f"wrote {write_result(RESULTS, result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
