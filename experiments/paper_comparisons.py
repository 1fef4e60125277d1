"""The paper's comparisons at small scale, on the demo data (issue 7, item 5).

(a) type sets {A, F} vs {A, F, C}: a supernet per set, evolutionary search in each,
    the best architecture of each pre-trained from scratch;
(b) orders at a matched parameter budget (the interleaved baseline's): interleaved
    (``bert``), sandwich, a random architecture and the searched one;
(c) evolution vs random search at an equal number of evaluations;
(d) Kendall tau between supernet fitness and stand-alone MLM accuracy over every
    architecture pre-trained here (at least 8).

Writes ``<out>/results.json`` and the table ``EXPERIMENTS.md`` (``--table``). Uses a
quickstart run's prepared data (``--data``), or builds it from the demo cache.

    python experiments/paper_comparisons.py --budget cpu --data runs/quickstart-cpu/data --out runs/experiments
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Budget:
    size: str
    supernet_steps: int
    supernet_batch: int
    population: int
    generations: int
    pretrain_steps: int
    pretrain_batch: int
    valid_sequences: int
    extra_random: int  # extra random architectures pre-trained for the rank correlation
    lr: float
    bf16: bool


BUDGETS = {
    "smoke": Budget("tiny", 30, 16, 6, 2, 30, 16, 64, 2, 2e-3, False),
    "cpu": Budget("tiny", 1200, 32, 12, 6, 600, 32, 256, 2, 2e-3, False),
    "gpu": Budget("small", 6000, 128, 50, 20, 6000, 128, 256, 3, 5e-4, True),
}


def kendall_tau(x: list[float], y: list[float]) -> float:
    from scipy.stats import kendalltau

    return float(kendalltau(x, y).statistic)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", choices=sorted(BUDGETS), default="smoke")
    ap.add_argument("--data", required=True, help="prepared data folder (e.g. a quickstart run's data/)")
    ap.add_argument("--out", default="runs/experiments")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--table", default=None, help="also write the markdown table to this file (EXPERIMENTS.md)")
    args = ap.parse_args(argv)

    from lvbert.arch import count_params, get_size, parse_arch
    from lvbert.data.masking import MaskingConfig, fixed_mask_validation
    from lvbert.data.packed import load_manifest
    from lvbert.recipes.common import RUN_CONFIG, read_json
    from lvbert.recipes.pretrain import PretrainConfig, pretrain
    from lvbert.recipes.supernet import SupernetTrainConfig, train_supernet
    from lvbert.recipes.search import SearchRunConfig
    from lvbert.recipes.search import search as run_search_cli
    from lvbert.search.fitness import SupernetFitness
    from lvbert.space import SearchSpace
    from lvbert.supernet import LvBertSupernet
    from lvbert.training.distributed import pick_device

    b = BUDGETS[args.budget]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = load_manifest(args.data)
    seq_len, vocab = int(manifest["seq_len"]), int(manifest["tokenizer"]["vocab_size"])
    size = get_size(b.size, vocab_size=vocab)
    bert = parse_arch("bert", size.num_slots)
    budget_params = count_params(bert, size)
    dev = pick_device(args.device)
    valid = fixed_mask_validation(args.data, b.valid_sequences, seed=1234, config=MaskingConfig())
    t_start = time.time()
    results: dict = {"budget": args.budget, "settings": b.__dict__, "seed": args.seed, "data": str(args.data),
                     "param_budget": budget_params}

    # ---- supernets over {A,F} and {A,F,C}
    supernets, fitness_fns = {}, {}
    for allowed in ("AF", "CAF"):
        run = out / f"supernet-{allowed}"
        if not (run / "summary.json").exists():
            cfg = SupernetTrainConfig(data=str(args.data), out=str(run), size=b.size, allowed=allowed,
                                      steps=b.supernet_steps, batch_size=b.supernet_batch, lr=b.lr, bf16=b.bf16,
                                      save_every=max(100, b.supernet_steps // 4), eval_every=b.supernet_steps,
                                      eval_sequences=min(128, b.valid_sequences), seed=args.seed, device=args.device)
            train_supernet(cfg, resume=(run / RUN_CONFIG).exists())
        net = LvBertSupernet.from_pretrained(run).to(dev).eval()
        supernets[allowed] = net
        fitness_fns[allowed] = SupernetFitness(net, valid, batch_size=64)

    def search(allowed: str, strategy: str, max_params: int | None) -> dict:
        """One search through the one entry point (lvbert.recipes.search), on the same fixed masks."""
        tag = f"{allowed}-{strategy}" + ("-budget" if max_params else "")
        folder = out / "search" / tag
        cfg = SearchRunConfig(supernet=str(out / f"supernet-{allowed}"), data=str(args.data), out=str(folder),
                              strategy=strategy, population=b.population, generations=b.generations,
                              parents=max(2, b.population // 5), mutations=b.population // 2,
                              crossovers=b.population - b.population // 2, seed=args.seed,
                              max_params=str(max_params) if max_params else None, valid_sequences=b.valid_sequences,
                              valid_seed=1234, bf16=b.bf16, device=args.device, progress=False)  # fmt: skip
        res = run_search_cli(cfg, resume=(folder / "search_config.json").exists())
        return {"arch": res.best["arch"], "fitness": res.best["fitness"], "evaluations": len(res.history),
                "mean_fitness_last_gen": res.generations[-1]["mean"] if res.generations else None,
                "ranking": res.best["ranking"]}

    # (a) type sets, (c) evolution vs random, (b) searched under the baseline's parameter budget
    searches = {
        "AF-evolution": search("AF", "evolution", None),
        "CAF-evolution": search("CAF", "evolution", None),
        "CAF-random": search("CAF", "random", None),
        "CAF-evolution-budget": search("CAF", "evolution", budget_params),
    }
    results["searches"] = searches

    # (b) orders at the matched budget: random archs drawn from the budget-constrained space
    rng = random.Random(args.seed)
    budget_space = SearchSpace(num_slots=size.num_slots, allowed="CAF", size=size, seq_len=seq_len, max_params=budget_params)
    archs = {
        "interleaved (bert)": bert,
        "sandwich": parse_arch("sandwich", size.num_slots),
        "random (budget)": budget_space.sample(rng),
        "searched {A,F}": searches["AF-evolution"]["arch"],
        "searched {A,F,C}": searches["CAF-evolution"]["arch"],
        "searched {A,F,C} (budget)": searches["CAF-evolution-budget"]["arch"],
        "random-search best": searches["CAF-random"]["arch"],
        "lv-bert-small (paper)": parse_arch("lv-bert-small", size.num_slots) if size.num_slots == 24 else bert,
    }
    for k in range(b.extra_random):
        archs[f"random {k + 1}"] = "".join(rng.choice("CAF") for _ in range(size.num_slots))

    # ---- pre-train every architecture from scratch with the same budget; supernet fitness of each
    models = []
    for name, arch in archs.items():
        slug = name.replace(" ", "_").replace("{", "").replace("}", "").replace(",", "").replace("(", "").replace(")", "")
        run = out / "pretrain" / slug
        if not (run / "summary.json").exists():
            cfg = PretrainConfig(data=str(args.data), out=str(run), arch=arch, size=b.size, objective="mlm",
                                 steps=b.pretrain_steps, batch_size=b.pretrain_batch, lr=b.lr, bf16=b.bf16,
                                 save_every=max(100, b.pretrain_steps // 4), eval_every=b.pretrain_steps,
                                 eval_sequences=b.valid_sequences, seed=args.seed, device=args.device)
            print(f"--- pre-training {name}: {arch}", flush=True)
            pretrain(cfg, resume=(run / RUN_CONFIG).exists())
        s = read_json(run / "summary.json")
        fit_af = fitness_fns["AF"]([arch])[0]["fitness"] if set(arch) <= set("AF") else None
        models.append({
            "name": name, "arch": arch, "params": count_params(arch, size),
            "supernet_fitness": fitness_fns["CAF"]([arch])[0]["fitness"],
            "supernet_fitness_AF": fit_af,
            "mlm_accuracy": s["validation"]["mlm_accuracy"], "mlm_loss": s["validation"]["mlm_loss"],
        })
    results["models"] = models
    unique = {m["arch"]: m for m in models}.values()
    xs = [m["supernet_fitness"] for m in unique]
    ys = [m["mlm_accuracy"] for m in unique]
    results["kendall_tau"] = {"tau": kendall_tau(xs, ys), "architectures": len(xs)}
    results["seconds"] = round(time.time() - t_start, 1)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    table = render(results)
    print(table)
    if args.table:
        Path(args.table).write_text(table)
    return 0


def render(r: dict) -> str:
    s = r["searches"]
    lines = [
        f"## Budget `{r['budget']}` (seed {r['seed']})", "",
        "Settings: " + ", ".join(f"{k} {v}" for k, v in r["settings"].items())
        + f"; parameter budget {r['param_budget']:,} (the interleaved baseline's); wall time {r['seconds'] / 60:.0f} min.",
        "",
        "### Searches (supernet fitness = masked-LM accuracy with inherited weights)", "",
        "| search | best arch | fitness | evaluations |", "|---|---|---:|---:|",
    ]
    for k, v in s.items():
        lines.append(f"| {k} | `{v['arch']}` | {v['fitness']:.4f} | {v['evaluations']} |")
    lines += ["", "### Pre-trained from scratch (same steps, batch and learning rate for every model)", "",
              "| model | arch | params | supernet fitness | stand-alone MLM accuracy | MLM loss |",
              "|---|---|---:|---:|---:|---:|"]
    for m in r["models"]:
        lines.append(f"| {m['name']} | `{m['arch']}` | {m['params']:,} | {m['supernet_fitness']:.4f} | "
                     f"{m['mlm_accuracy']:.4f} | {m['mlm_loss']:.4f} |")
    kt = r["kendall_tau"]
    lines += ["", f"Kendall tau (supernet fitness vs stand-alone MLM accuracy) over {kt['architectures']} "
              f"distinct architectures: **{kt['tau']:.3f}**.", ""]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
