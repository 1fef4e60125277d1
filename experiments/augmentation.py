"""Conditional BERT's claim at this machine's scale: does label-conditional augmentation help a
classifier more than no augmentation, a random floor and unconditional MLM augmentation?

On the demo tasks ``polarity`` (Pang & Lee sentence polarity: the "RT" column of C-BERT's own
table, CNN 75.4 -> 78.2, RNN 76.7 -> 79.0) and ``uncertainty``, each with its full training set
and a fixed 10 % subset: the train set as it is, and + ``lvbert augment --method random``,
``--method mlm`` and ``--method cbert`` (the same ``--copies`` for all three, the same MLM for
``mlm`` and ``cbert``; for a subset the C-MLM is fine-tuned on that subset only). On each, three
classifiers: a Kim-CNN and an LSTM over word embeddings learnt from scratch (the paper's two,
small PyTorch models defined here; 100-dimensional embeddings, 100 filters per width, 150 LSTM
units -- the paper's are 300 -- Adam 1e-3, batch 64, at most 15 epochs, early stop after 3
without a better dev accuracy), ``--seeds`` seeds, and a fine-tuned tiny lvbert
(``lvbert finetune``), ``--lvbert-seeds`` seeds. Every number is test accuracy at the best dev
epoch; the tables give mean and standard deviation over seeds.

Also: label preservation (the lvbert classifier fine-tuned on the original full train set labels
the augmented sentences; agreement with each row's label, next to its agreement on the original
train sentences) for ``mlm``, ``cbert`` and ``cbert --flip-label``, and the wall time of every
augment command (sentences per second, at this run's MLM size).

Every result is a file under ``--out``, so a stopped run continues where it stopped.

    python experiments/augmentation.py --mlm runs/lvb-mlm --backbone runs/tiny-mlm --out runs/aug-exp
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

import torch
from torch import nn

METHODS = ("random", "mlm", "cbert")
_WORD = re.compile(r"\w+|[^\w\s]")


def _run(argv: list) -> None:
    from lvbert.cli import main

    rc = main([str(a) for a in argv])
    if rc != 0:
        raise SystemExit(f"failed ({rc}): lvbert {' '.join(map(str, argv))}")


def _read(path: Path) -> tuple[list[str], list[str]]:
    from lvbert.tasks.task import Layout, read_examples

    examples = read_examples(path, Layout(text="text", label="label", fmt="tsv"))
    return [ex.text for ex in examples], [ex.label for ex in examples]


def _write_json(path: Path, obj) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    tmp.replace(path)


def subset_folder(source: Path, dest: Path, fraction: float, seed: int = 0) -> Path:
    """A task folder with a seeded random ``fraction`` of the train rows (at least one per label)
    and the dev and test files as they are."""
    if (dest / "train.tsv").exists():
        return dest
    lines = (source / "train.tsv").read_text().splitlines()
    header, rows = lines[0], lines[1:]
    keep = sorted(random.Random(seed).sample(range(len(rows)), max(2, round(fraction * len(rows)))))
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / "train.tsv").write_text("\n".join([header] + [rows[i] for i in keep]) + "\n")
    for name in ("dev.tsv", "test.tsv"):
        shutil.copy2(source / name, tmp / name)
    tmp.rename(dest)
    return dest


# ============================================================================ word-level classifiers


class KimCNN(nn.Module):
    """Kim (2014): embeddings, convolutions of widths 3/4/5 with max-over-time pooling, dropout, linear."""

    def __init__(self, vocab: int, labels: int, dim: int = 100, filters: int = 100, dropout: float = 0.5):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(dim, filters, w, padding=w - 1) for w in (3, 4, 5))
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(3 * filters, labels)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.emb(ids)).transpose(1, 2)  # [B, D, T]
        pad = (ids == 0).unsqueeze(1)
        feats = []
        for conv in self.convs:
            h = torch.relu(conv(x))[..., : ids.shape[1]]  # [B, F, T]: position t covers words t-w+1..t
            feats.append(h.masked_fill(pad, 0).max(-1).values)
        return self.out(self.drop(torch.cat(feats, -1)))


class LstmClassifier(nn.Module):
    """One LSTM layer over the embeddings, dropout 0.5, last state -> linear (C-BERT's RNN has 300 units)."""

    def __init__(self, vocab: int, labels: int, dim: int = 100, hidden: int = 150, dropout: float = 0.5):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim, padding_idx=0)
        self.lstm = nn.LSTM(dim, hidden, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, labels)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.emb(ids))
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, (h, _) = self.lstm(packed)
        return self.out(self.drop(h[-1]))


def _words(text: str, max_len: int = 64) -> list[str]:
    return _WORD.findall(text.lower())[:max_len] or ["<empty>"]


def train_word_classifier(kind: str, train: tuple, dev: tuple, test: tuple, seed: int, epochs: int = 15,
                          patience: int = 3, batch_size: int = 64, lr: float = 1e-3) -> dict:  # fmt: skip
    """Adam, cross-entropy, early stopping on dev accuracy; test accuracy at the best dev epoch."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    names = sorted(set(train[1]))
    to_label = {n: i for i, n in enumerate(names)}
    vocab = {"<pad>": 0, "<unk>": 1}
    for text in train[0]:
        for w in _words(text):
            vocab.setdefault(w, len(vocab))

    def tensors(texts, labels):
        seqs = [[vocab.get(w, 1) for w in _words(t)] for t in texts]
        return seqs, torch.tensor([to_label[y] for y in labels])

    def batch(seqs, rows):
        width = max(len(seqs[i]) for i in rows)
        ids = torch.zeros(len(rows), width, dtype=torch.long)
        for b, i in enumerate(rows):
            ids[b, : len(seqs[i])] = torch.tensor(seqs[i])
        return ids, torch.tensor([len(seqs[i]) for i in rows])

    @torch.no_grad()
    def accuracy(model, seqs, ys):
        model.eval()
        right = 0
        for s in range(0, len(seqs), 256):
            rows = list(range(s, min(s + 256, len(seqs))))
            right += (model(*batch(seqs, rows)).argmax(-1) == ys[rows]).sum().item()
        return right / len(seqs)

    tr, dv, te = tensors(*train), tensors(*dev), tensors(*test)
    model = (KimCNN if kind == "cnn" else LstmClassifier)(len(vocab), len(names))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    best = {"dev": -1.0}
    bad = 0
    for epoch in range(1, epochs + 1):
        model.train()
        order = list(range(len(tr[0])))
        rng.shuffle(order)
        for s in range(0, len(order), batch_size):
            rows = order[s : s + batch_size]
            loss = nn.functional.cross_entropy(model(*batch(tr[0], rows)), tr[1][rows])
            opt.zero_grad()
            loss.backward()
            opt.step()
        d = accuracy(model, *dv)
        if d > best["dev"]:
            best, bad = {"dev": d, "test": accuracy(model, *te), "epoch": epoch}, 0
        else:
            bad += 1
            if bad >= patience:
                break
    return best


# ============================================================================ lvbert


def _classifier_predictions(model_dir: Path, texts: list[str]) -> list[str]:
    from lvbert.model_dir import load_classifier, load_config, load_model_tokenizer
    from lvbert.tasks.encoding import encode, predict_logits
    from lvbert.tasks.task import Example

    config = load_config(model_dir)
    labels = tuple(config.id2label[i] for i in range(config.num_labels))
    model, tokenizer = load_classifier(model_dir, labels, 0), load_model_tokenizer(model_dir, config.vocab_size)
    enc = encode(tokenizer, [Example(str(i), t) for i, t in enumerate(texts)], 128, "predict")
    logits = predict_logits(model, enc, 128, tokenizer.pad_token_id or 0)
    return [model.config.id2label[int(i)] for i in logits.argmax(-1)]


def lvbert_run(backbone: Path, task: str, data_dir: Path, out: Path, seed: int, epochs: int) -> dict:
    done = out / "test.json"
    if done.exists():
        return json.loads(done.read_text())
    if not (out / "results.json").exists():
        shutil.rmtree(out, ignore_errors=True)  # a run stopped midway starts again (runs are short)
        _run(["finetune", "--model", backbone, "--task", task, "--data-dir", data_dir, "--out", out, "--epochs", epochs,
              "--lr", "1e-3", "--layer-decay", "1", "--seed", seed, "--no-progress"])  # fmt: skip
    res = json.loads((out / "results.json").read_text())
    texts, labels = _read(data_dir / "test.tsv")
    preds = _classifier_predictions(out, texts)
    row = {"dev": res["runs"][0]["score"], "dev_accuracy": res["summary"]["dev/accuracy"]["median"],
           "test": sum(p == y for p, y in zip(preds, labels)) / len(labels), "epoch": res["runs"][0]["best_epoch"]}  # fmt: skip
    _write_json(done, row)
    return row


# ============================================================================ the experiment


def _stats(values: list[float]) -> dict:
    return {"mean": statistics.mean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values), "values": values}  # fmt: skip


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mlm", required=True, help="the masked LM for --method mlm and cbert (an lvbert MLM folder)")
    ap.add_argument("--backbone", default=None, help="the pre-trained model lvbert fine-tunes (default: --mlm)")
    ap.add_argument("--out", default="runs/aug-exp")
    ap.add_argument("--tasks", nargs="+", default=["polarity", "uncertainty"])
    ap.add_argument("--fractions", nargs="+", type=float, default=[1.0, 0.1])
    ap.add_argument("--copies", type=int, default=2, help="augmented copies per sentence, all three methods")
    ap.add_argument("--cbert-epochs", type=int, default=10)
    ap.add_argument("--seeds", type=int, default=5, help="seeds of the CNN and the LSTM")
    ap.add_argument("--lvbert-seeds", type=int, default=3)
    ap.add_argument("--lvbert-epochs", type=int, default=3)
    ap.add_argument("--classifiers", nargs="+", default=["cnn", "lstm", "lvbert"])
    args = ap.parse_args(argv)
    from lvbert.tasks import demo_data_dir

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    backbone = Path(args.backbone or args.mlm)
    t0 = time.time()
    results: dict = {"config": vars(args), "accuracy": {}, "augment_seconds": {}, "rows": {}, "preservation": {}}
    for task in args.tasks:
        source = demo_data_dir(task)
        if not (source / "train.tsv").exists():
            _run(["data", "fetch", "demo"])
        for fraction in args.fractions:
            key = f"{task}@{fraction:g}"
            base = source if fraction == 1.0 else subset_folder(source, out / key / "original", fraction)
            folders = {"original": base}
            for method in METHODS:
                dest = out / key / method
                timing = out / key / f"{method}.seconds.json"
                if not (dest / "train.tsv").exists():
                    shutil.rmtree(dest, ignore_errors=True)
                    extra = [] if method == "random" else ["--model", args.mlm]
                    extra += ["--epochs", args.cbert_epochs] if method == "cbert" else []
                    start = time.time()
                    _run(["augment", "--method", method, "--task", task, "--data-dir", base, "--copies", args.copies,
                          "--out", dest, "--no-progress", *extra])  # fmt: skip
                    _write_json(timing, {"seconds": round(time.time() - start, 1)})
                folders[method] = dest
                results["augment_seconds"][f"{key}/{method}"] = json.loads(timing.read_text())["seconds"]
            dev, test = _read(base / "dev.tsv"), _read(base / "test.tsv")
            for name, folder in folders.items():
                train = _read(folder / "train.tsv")
                results["rows"][f"{key}/{name}"] = len(train[0])
                for clf in args.classifiers:
                    seeds = args.lvbert_seeds if clf == "lvbert" else args.seeds
                    runs = []
                    for seed in range(seeds):
                        if clf == "lvbert":
                            runs.append(lvbert_run(backbone, task, folder, out / key / f"ft-{name}-s{seed}", seed,
                                                   args.lvbert_epochs))  # fmt: skip
                            continue
                        cache = out / key / f"{clf}-{name}-s{seed}.json"
                        if not cache.exists():
                            _write_json(cache, train_word_classifier(clf, train, dev, test, seed))
                        runs.append(json.loads(cache.read_text()))
                    results["accuracy"][f"{key}/{clf}/{name}"] = _stats([r["test"] for r in runs])
                    print(f"{key:16s} {clf:6s} {name:8s} test {100 * statistics.mean(r['test'] for r in runs):.1f}",
                          flush=True)  # fmt: skip
            _write_json(out / "results.partial.json", results)
        if "lvbert" in args.classifiers and 1.0 in args.fractions:
            results["preservation"][task] = preservation(task, out / f"{task}@1", args)
    results["seconds"] = round(time.time() - t0, 1)
    _write_json(out / "results.json", results)
    print(table(results))
    return 0


def preservation(task: str, folder: Path, args) -> dict:
    """Agreement of the classifier fine-tuned on the original set (seed 0) with the labels of the
    augmented rows (the intended labels), next to its agreement on the original train rows."""
    cache = folder / "preservation.json"
    if cache.exists():
        return json.loads(cache.read_text())
    flip = folder / "cbert-flip"
    if not (flip / "train.tsv").exists():
        shutil.rmtree(flip, ignore_errors=True)
        _run(["augment", "--method", "cbert", "--cmlm", folder / "cbert" / "cmlm" / "model", "--flip-label",
              "--task", task, "--data-dir", _demo(task),
              "--copies", args.copies, "--out", flip, "--no-progress"])  # fmt: skip
    clf = folder / "ft-original-s0"
    original = _read(_demo(task) / "train.tsv")
    n = len(original[0])
    out = {}
    for name, texts, labels in [("original train", *original)] + [
        (m, *[x[n:] for x in _read(folder / d / "train.tsv")]) for m, d in
        (("mlm", "mlm"), ("cbert", "cbert"), ("cbert --flip-label", "cbert-flip"))]:  # fmt: skip
        preds = _classifier_predictions(clf, texts)
        out[name] = {"agreement": sum(p == y for p, y in zip(preds, labels)) / len(labels), "rows": len(labels)}
    _write_json(cache, out)
    return out


def _demo(task: str) -> Path:
    from lvbert.tasks import demo_data_dir

    return demo_data_dir(task)


def table(results: dict) -> str:
    """Markdown: one row per (data, classifier), one column per augmentation; mean ± std."""
    lines = ["| data | classifier | original | + random | + mlm | + cbert |", "|---|---|---|---|---|---|"]
    seen = []
    for k in results["accuracy"]:
        data, clf, _ = k.split("/")
        if (data, clf) not in seen:
            seen.append((data, clf))
    for data, clf in seen:
        cells = []
        for name in ("original", *METHODS):
            s = results["accuracy"].get(f"{data}/{clf}/{name}")
            cells.append("" if s is None else f"{100 * s['mean']:.1f} ± {100 * s['std']:.1f}")
        lines.append(f"| {data} | {clf} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
