"""Search fitness on a 2-core CPU: one process with 2 threads against 2 processes with 1 thread each.

The search's fitness already splits its candidates over the processes of ``torch.distributed``
(``distributed_fitness``: ``torchrun --nproc_per_node 2 -m lvbert search --threads 1 ...``). At the
small size most of its kernels are too short for two threads to share well, so two processes that
each own a core may evaluate more candidates per second than one process that spreads each kernel
over both. This measures that, side by side in one run:

- **one process**: ``SupernetFitness(...)(archs)`` with ``torch.set_num_threads(2)``;
- **two processes**: the same call under ``distributed_fitness`` in two processes (gloo), one
  thread each; the time is rank 0's, from a barrier to the gathered results.

Both evaluate the same random archs of a randomly initialised supernet (speed does not depend on the
weights) on a synthetic fixed-mask validation set, after a warm-up on an arch outside the workload.
The fitness of every candidate is compared between the two (thread counts may change rounding).
Square-matmul peaks (fp32 and bf16, 2 threads) are measured at the start and the end.

    .venv/bin/python benchmarks/bench_fitness_procs.py              # small, 256 x 128, 20 archs, fp32 and bf16
    .venv/bin/python benchmarks/bench_fitness_procs.py --quick      # smoke run: tiny, 32 sequences, 4 archs

Writes ``benchmarks/results/fitness_procs.json``.
"""

from __future__ import annotations

import argparse
import os
import queue as queues
import random
import socket
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import machine_info, matmul_peak, write_result  # noqa: E402
from bench_fitness import synthetic_batch  # noqa: E402

from lvbert.search.fitness import SupernetFitness, distributed_fitness  # noqa: E402
from lvbert.space import SearchSpace  # noqa: E402
from lvbert.supernet import LvBertSupernet  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "fitness_procs.json"


def workload(args) -> tuple[LvBertSupernet, dict, list[str], str]:
    """The same supernet, validation set, archs and warm-up arch in every process."""
    torch.manual_seed(0)
    overrides = {"num_slots": args.num_slots} if args.num_slots else {}
    net = LvBertSupernet.from_size(args.size, **overrides).eval()
    batch = synthetic_batch(args.sequences, args.seq_len, net.config.vocab_size)
    space = SearchSpace(net.num_slots, "CAF", size=args.size)
    rng = random.Random(0)
    archs: list[str] = []
    while len(archs) < args.candidates + 1:
        a = space.sample(rng)
        if a not in archs:
            archs.append(a)
    return net, batch, archs[1:], archs[0]


def one_process(args, bf16: bool) -> dict:
    torch.set_num_threads(args.threads)
    net, batch, archs, probe = workload(args)
    fit = SupernetFitness(net, batch, batch_size=args.batch_size, bf16=bf16)
    fit.evaluate(probe)
    t0 = time.perf_counter()
    results = fit(archs)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "candidates_per_second": len(archs) / seconds,
            "fitness": [r["fitness"] for r in results]}  # fmt: skip


def _worker(rank: int, world: int, port: int, args, bf16: bool, queue) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        net, batch, archs, probe = workload(args)
        fit = SupernetFitness(net, batch, batch_size=args.batch_size, bf16=bf16)
        fit.evaluate(probe)
        dist.barrier()
        t0 = time.perf_counter()
        results = distributed_fitness(fit)(archs)
        seconds = time.perf_counter() - t0
        if rank == 0:
            queue.put({"seconds": seconds, "candidates_per_second": len(archs) / seconds,
                       "fitness": [r["fitness"] for r in results]})  # fmt: skip
    finally:
        dist.destroy_process_group()


def processes(args, bf16: bool) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(r, args.processes, port, args, bf16, queue))
             for r in range(args.processes)]  # fmt: skip
    for p in procs:
        p.start()
    result = None
    while result is None:
        try:
            result = queue.get(timeout=2)
        except queues.Empty:  # stop waiting once a worker has failed
            if any(p.exitcode not in (None, 0) for p in procs):
                for p in procs:
                    p.kill()
                raise RuntimeError(f"a worker failed (exit codes {[p.exitcode for p in procs]})") from None
    for p in procs:
        p.join()
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: tiny size, 32 sequences of 64, 4 archs")
    p.add_argument("--size", default="small")
    p.add_argument("--num-slots", type=int, default=None)
    p.add_argument("--sequences", type=int, default=256)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--candidates", type=int, default=20)
    p.add_argument("--threads", type=int, default=2, help="threads of the one process (default 2)")
    p.add_argument("--processes", type=int, default=2, help="processes of one thread each (default 2)")
    p.add_argument("--dtypes", default="float32,bfloat16")
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args(argv)
    if args.quick:
        args.size, args.num_slots, args.sequences, args.seq_len, args.candidates = "tiny", 6, 32, 64, 4

    torch.set_num_threads(args.threads)
    peak = {"start": {d: matmul_peak(getattr(torch, d)) for d in ("float32", "bfloat16")}}
    rows = {}
    for name in args.dtypes.split(","):
        bf16 = name == "bfloat16"
        one = one_process(args, bf16)
        many = processes(args, bf16)
        diff = max(abs(a - b) for a, b in zip(one.pop("fitness"), many.pop("fitness")))
        rows[name] = {"one_process": {"threads": args.threads, **one},
                      "processes": {"processes": args.processes, "threads_each": 1, **many},
                      "speedup": many["candidates_per_second"] / one["candidates_per_second"],
                      "max_abs_fitness_diff": diff}  # fmt: skip
        print(f"{name}: one process x {args.threads} threads {one['candidates_per_second']:.3f} cand/s; "
              f"{args.processes} processes x 1 thread {many['candidates_per_second']:.3f} cand/s "
              f"({rows[name]['speedup']:.2f}x; fitness differs by at most {diff:.2e})", flush=True)  # fmt: skip
    torch.set_num_threads(args.threads)
    peak["end"] = {d: matmul_peak(getattr(torch, d)) for d in ("float32", "bfloat16")}
    result = {"benchmark": "fitness_procs", "quick": args.quick, "machine": machine_info(), "matmul_peak_tflops": peak,
              "setup": {k: getattr(args, k) for k in ("size", "num_slots", "sequences", "seq_len", "batch_size",
                                                      "candidates", "threads", "processes")},
              "results": rows}  # fmt: skip
    print(f"wrote {write_result(args.out, result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
