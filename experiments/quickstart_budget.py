"""Where the quickstart's models leave the unigram plateau: MLM accuracy against steps, several seeds.

Trains, at the ``cpu-quick`` profile's size (tiny, 12 slots, sequences of 64, lr 2e-3) with batches
of 32 (the profile's until December 2026; it now uses 16),
the supernet (its probe paths are validated every ``--eval-every`` steps) and stand-alone MLM
models of ``bert`` (AF x 6) and of LV-BERT-small's bottom 12 slots (the released list has 24),
each with ``--seeds`` seeds, all on one fixed-mask validation set; then evaluates how far apart
the supernet's fitness puts random archs. Writes ``<out>/results.json`` and the plot
``docs/img/quickstart_plateau.png`` (``--plot``) with the unigram baseline drawn.
Each run is a folder of its own, so a stopped run continues where it stopped.

    python experiments/quickstart_budget.py --data runs/quickstart/data --out runs/plateau --plot docs/img/quickstart_plateau.png
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="prepared data of the cpu-quick profile (a quickstart run's data/)")
    ap.add_argument("--out", default="runs/plateau")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--supernet-steps", type=int, default=3000)
    ap.add_argument("--pretrain-steps", type=int, default=2000)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--valid-sequences", type=int, default=256)
    ap.add_argument("--random-archs", type=int, default=64, help="random archs whose supernet fitness gives the spread")
    ap.add_argument("--plot", default=None, help="write the plot here (e.g. docs/img/quickstart_plateau.png)")
    args = ap.parse_args(argv)

    from lvbert.arch import LV_BERT_SMALL
    from lvbert.data.masking import fixed_mask_validation
    from lvbert.model_dir import load_supernet
    from lvbert.objectives import unigram_accuracy
    from lvbert.recipes.pretrain import PretrainConfig, pretrain
    from lvbert.recipes.supernet import SupernetTrainConfig, train_supernet
    from lvbert.search.evolution import fitness_noise
    from lvbert.search.fitness import SupernetFitness
    from lvbert.training.loop import eval_curve
    from lvbert.training.run import RUN_CONFIG

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    common = dict(data=str(args.data), size="tiny", batch_size=32, lr=2e-3, eval_every=args.eval_every,
                  eval_sequences=args.valid_sequences, progress=False)  # fmt: skip
    standalone = {"bert (AF x 6)": "AF" * 6, "LV-BERT-small, bottom 12 slots": LV_BERT_SMALL[:12]}
    runs: dict[str, list[Path]] = {"supernet": [], **{k: [] for k in standalone}}
    for seed in range(args.seeds):
        run = out / f"supernet-seed{seed}"
        if not (run / "summary.json").exists():
            cfg = SupernetTrainConfig(out=str(run), num_slots=12, steps=args.supernet_steps, seed=seed,
                                      save_every=max(500, args.supernet_steps // 4), **common)  # fmt: skip
            train_supernet(cfg, resume=(run / RUN_CONFIG).exists())
        runs["supernet"].append(run)
        for name, arch in standalone.items():
            run = out / f"{arch}-seed{seed}"
            if not (run / "summary.json").exists():
                cfg = PretrainConfig(out=str(run), arch=arch, objective="mlm", steps=args.pretrain_steps, seed=seed,
                                     save_every=max(500, args.pretrain_steps // 4), **common)  # fmt: skip
                pretrain(cfg, resume=(run / RUN_CONFIG).exists())
            runs[name].append(run)

    valid = fixed_mask_validation(args.data, args.valid_sequences, seed=0)
    unigram = unigram_accuracy(valid)
    curves: dict[str, dict] = {}

    def add(label: str, folders: list[Path], key: str) -> None:
        per_seed = [eval_curve(f, key) for f in folders]
        steps = sorted(set.intersection(*(set(s) for s, _ in per_seed)))
        vals = [[dict(zip(s, v))[t] for s, v in per_seed] for t in steps]
        curves[label] = {"steps": steps, "median": [statistics.median(v) for v in vals],
                         "min": [min(v) for v in vals], "max": [max(v) for v in vals]}  # fmt: skip

    add("supernet path: bert", runs["supernet"], "bert/mlm_accuracy")
    add("supernet path: random arch 1 (one per seed)", runs["supernet"], "random1/mlm_accuracy")
    add("supernet path: random arch 2 (one per seed)", runs["supernet"], "random2/mlm_accuracy")
    for name in standalone:
        add(f"from scratch: {name}", runs[name], "mlm_accuracy")

    # how far apart the trained supernet puts random archs: the search's fitness spread
    spreads = []
    for folder in runs["supernet"]:
        net = load_supernet(folder)
        fit = SupernetFitness(net, valid)
        rng = random.Random(0)
        archs = ["".join(rng.choice("CAF") for _ in range(12)) for _ in range(args.random_archs)]
        recs = fit(archs)
        f = [r["fitness"] for r in recs]
        spreads.append({"spread": max(f) - min(f), "noise": fitness_noise(recs), "median": statistics.median(f),
                        "min": min(f), "max": max(f)})  # fmt: skip
    results = {"unigram_accuracy": unigram, "seeds": args.seeds, "supernet_steps": args.supernet_steps,
               "pretrain_steps": args.pretrain_steps, "valid_sequences": args.valid_sequences, "curves": curves,
               "random_arch_fitness": spreads, "seconds": round(time.time() - t0, 1)}  # fmt: skip
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    for label, c in curves.items():
        leave = next((t for t, v in zip(c["steps"], c["median"]) if v > unigram + 0.01), None)
        print(f"{label:<42} final median {c['median'][-1]:.4f} [{c['min'][-1]:.4f}, {c['max'][-1]:.4f}]; "
              f"above unigram + 0.01 from step {leave}")
    print(f"unigram baseline {unigram:.4f}; supernet fitness of {args.random_archs} random archs: "
          + "; ".join(f"spread {s['spread']:.4f} (noise {s['noise']:.4f})" for s in spreads))
    if args.plot:
        from lvbert.plots import plot_curves

        series = {k: (c["steps"], c["median"], "--" if k.startswith("supernet") else "-") for k, c in curves.items()}
        bands = {k: (c["steps"], c["min"], c["max"]) for k, c in curves.items()}
        plot_curves(series, args.plot, xlabel="optimizer step (batch 32 x 64 tokens)",
                    ylabel="MLM accuracy, fixed-mask validation set",
                    title=f"cpu-quick size (tiny, 12 slots): median of {args.seeds} seeds, band min-max",
                    hlines={f"unigram baseline {unigram:.3f}": unigram}, bands=bands)  # fmt: skip
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
