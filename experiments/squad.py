"""Does pre-training help extractive QA at this scale? A pre-trained tiny lvbert against the same
network from random initialisation, fine-tuned with ``lvbert finetune --task squad``.

No SQuAD is on the package registries, so the data are SQuAD-layout cloze questions built from
the demo corpus's *validation* text (Wikipedia and news paragraphs the MLM was not trained on):
in a paragraph, a sentence of at least 8 words is picked and one of its words (letters only, at
least 4 of them, occurring once in the paragraph) becomes the answer; the question is the
sentence with that word replaced by "what". Three questions per paragraph at most; the first
85 % of the paragraphs give the training file, the rest the dev file, so no dev paragraph is seen
in training. The model must find the sentence and the missing word: a span, as SQuAD.

Per seed: ``pretrained`` (``--model``) and ``random`` (its config, freshly initialised), fine-tuned
identically; EM and F1 of the best epoch on dev, median and range over seeds. Every result is a
file under ``--out``, so a stopped run continues.

    python experiments/squad.py --model runs/tiny-mlm --out runs/squad-exp
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import statistics
import sys
import time
from pathlib import Path

_SENTENCE = re.compile(r"[^.!?]+[.!?]")


def build_cloze(paragraphs: list[str], seed: int = 0, per_paragraph: int = 3) -> list[dict]:
    """SQuAD 1.1 articles of cloze questions (see the module docstring); answers checked against their spans."""
    rng = random.Random(seed)
    articles = []
    for p, text in enumerate(paragraphs):
        qas = []
        spans = [(m.start(), m.group()) for m in _SENTENCE.finditer(text)]
        rng.shuffle(spans)
        for start, sentence in spans:
            if len(qas) == per_paragraph:
                break
            words = list(re.finditer(r"[A-Za-z]{4,}", sentence))
            if len(sentence.split()) < 8:
                continue
            unique = [w for w in words if len(re.findall(rf"\b{re.escape(w.group())}\b", text)) == 1]
            if not unique:
                continue
            w = rng.choice(unique)
            question = (sentence[: w.start()] + "what" + sentence[w.end() :]).strip()
            answer_start = start + w.start()
            assert text[answer_start : answer_start + len(w.group())] == w.group()
            qas.append({"id": f"p{p}-q{len(qas)}", "question": question,
                        "answers": [{"text": w.group(), "answer_start": answer_start}]})  # fmt: skip
        if qas:
            articles.append({"title": f"paragraph {p}", "paragraphs": [{"context": text, "qas": qas}]})
    return articles


def write_squad(path: Path, articles: list[dict]) -> None:
    path.write_text(json.dumps({"version": "1.1", "data": articles}))


def random_init(model_dir: Path, dest: Path, seed: int) -> Path:
    """``model_dir``'s network, config and tokenizer with fresh random weights."""
    import torch
    from transformers import AutoConfig, AutoModelForMaskedLM

    import lvbert  # noqa: F401  (registers the lvbert model type)
    from lvbert.model_dir import load_model_tokenizer, save_model_dir

    if (dest / "config.json").exists():
        return dest
    config = AutoConfig.from_pretrained(model_dir)
    torch.manual_seed(seed)
    save_model_dir(AutoModelForMaskedLM.from_config(config), load_model_tokenizer(model_dir, config.vocab_size), dest)
    return dest


def main(argv=None) -> int:
    from lvbert.cli import main as lvbert

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a pre-trained lvbert model folder")
    ap.add_argument("--out", default="runs/squad-exp")
    ap.add_argument("--corpus", default=None, help="paragraphs, one per line (default: the demo corpus's valid.txt)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", default="1e-3")
    ap.add_argument("--max-seq-len", type=int, default=192)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    if args.corpus is None:
        from lvbert.data.demo import demo_dir

        corpus = Path(demo_dir()) / "pretrain" / "valid.txt"
        if not corpus.exists():
            lvbert(["data", "fetch", "demo"])
    else:
        corpus = Path(args.corpus)
    paragraphs = [line.strip() for line in corpus.read_text(encoding="utf-8").splitlines() if len(line.split()) >= 20]
    cut = round(0.85 * len(paragraphs))
    train, dev = out / "train.json", out / "dev.json"
    write_squad(train, build_cloze(paragraphs[:cut], seed=0))
    write_squad(dev, build_cloze(paragraphs[cut:], seed=1))
    rows = []
    for seed in range(args.seeds):
        models = {"pretrained": Path(args.model), "random": random_init(Path(args.model), out / f"random-init-s{seed}", seed)}
        row = {"seed": seed}
        for name, model in models.items():
            run = out / f"{name}-s{seed}"
            if not (run / "results.json").exists():
                shutil.rmtree(run, ignore_errors=True)
                rc = lvbert(["finetune", "--model", str(model), "--task", "squad", "--train-file", str(train),
                             "--dev-file", str(dev), "--out", str(run), "--epochs", str(args.epochs), "--lr", args.lr,
                             "--layer-decay", "1", "--max-seq-len", str(args.max_seq_len), "--seed", str(seed),
                             "--no-progress"])  # fmt: skip
                if rc != 0:
                    raise SystemExit(f"fine-tuning {name} seed {seed} failed ({rc})")
            r = json.loads((run / "results.json").read_text())["runs"][0]
            row[name] = {"exact": r["dev"]["dev"]["exact"], "f1": r["dev"]["dev"]["f1"], "epoch": r["best_epoch"],
                         "seconds": r["seconds"]}  # fmt: skip
        rows.append(row)
    n_train = sum(len(p["qas"]) for a in json.loads(train.read_text())["data"] for p in a["paragraphs"])
    n_dev = sum(len(p["qas"]) for a in json.loads(dev.read_text())["data"] for p in a["paragraphs"])
    summary = {"questions": {"train": n_train, "dev": n_dev}, "seeds": args.seeds, "rows": rows,
               "settings": {"epochs": args.epochs, "lr": args.lr, "max_seq_len": args.max_seq_len}}  # fmt: skip
    for name in ("pretrained", "random"):
        for metric in ("exact", "f1"):
            vals = [r[name][metric] for r in rows]
            summary[f"{name}/{metric}"] = {"median": statistics.median(vals), "min": min(vals), "max": max(vals)}
    summary["seconds"] = round(time.time() - t0, 1)
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
