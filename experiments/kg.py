"""KG-BERT with a CPU-sized lvbert encoder on the demo graphs, against TransE on the same splits.

For each graph (UMLS, kinships, nations, from ``lvbert data fetch demo``): KG-BERT(a) trained for
link prediction (``lvbert kg train --task link``: filtered corruptions, 5 per positive) and
evaluated with the full filtered protocol on the test split (every entity on both sides); and
KG-BERT(b) for relation prediction. The baseline is TransE (Bordes et al. 2013; a few dozen
lines below: margin ranking loss, L1 distance, uniform negative sampling) trained on the same
train split and ranked with the same filtered protocol and the same tie rule (realistic).
Writes ``<out>/results.json`` and prints a table. Every run is a folder of its own.

    python experiments/kg.py --model runs/quickstart/pretrain/searched --out runs/kg-exp
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

GRAPHS = ("nations", "kinships", "umls")


def transe(graph, dim: int = 50, epochs: int = 300, lr: float = 0.01, margin: float = 2.0, seed: int = 0,
           batch_size: int = 512) -> dict:  # fmt: skip
    """Train TransE on ``graph``'s train split; filtered link-prediction ranks on its test split."""
    import torch

    from lvbert.tasks.kg import rank_metrics, rank_of

    torch.manual_seed(seed)
    e_id = {e: i for i, e in enumerate(graph.entities)}
    r_id = {r: i for i, r in enumerate(graph.relations)}
    train = torch.tensor([[e_id[h], r_id[r], e_id[t]] for h, r, t in graph.positives("train")])
    E = torch.nn.Embedding(len(e_id), dim)
    R = torch.nn.Embedding(len(r_id), dim)
    for emb in (E, R):
        torch.nn.init.uniform_(emb.weight, -6 / dim**0.5, 6 / dim**0.5)
    opt = torch.optim.Adam([*E.parameters(), *R.parameters()], lr=lr)

    def dist(h, r, t):
        return (E(h) + R(r) - E(t)).abs().sum(-1)

    t0 = time.perf_counter()
    for _ in range(epochs):
        perm = train[torch.randperm(len(train))]
        for start in range(0, len(perm), batch_size):
            b = perm[start : start + batch_size]
            corrupt = b.clone()
            side = torch.rand(len(b)) < 0.5
            rnd = torch.randint(len(e_id), (len(b),))
            corrupt[side, 0] = rnd[side]
            corrupt[~side, 2] = rnd[~side]
            loss = torch.relu(margin + dist(b[:, 0], b[:, 1], b[:, 2]) - dist(corrupt[:, 0], corrupt[:, 1], corrupt[:, 2])).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                E.weight.data = torch.nn.functional.normalize(E.weight.data, dim=-1)
    train_s = time.perf_counter() - t0
    truth = graph.true_triples
    ranks = []
    with torch.no_grad():
        all_e = torch.arange(len(e_id))
        for h, r, t in graph.positives("test"):
            hi, ri, ti = e_id[h], r_id[r], e_id[t]
            for side in ("head", "tail"):
                if side == "head":
                    scores = -dist(all_e, torch.full_like(all_e, ri), torch.full_like(all_e, ti))
                    true = scores[hi].item()
                    others = [s for e, s in zip(graph.entities, scores.tolist()) if e != h and (e, r, t) not in truth]
                else:
                    scores = -dist(torch.full_like(all_e, hi), torch.full_like(all_e, ri), all_e)
                    true = scores[ti].item()
                    others = [s for e, s in zip(graph.entities, scores.tolist()) if e != t and (h, r, e) not in truth]
                ranks.append(rank_of(true, others, "realistic"))
    return {"filtered": rank_metrics(ranks), "train_seconds": round(train_s, 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a pre-trained lvbert model with the demo tokenizer")
    ap.add_argument("--out", default="runs/kg-exp")
    ap.add_argument("--graphs", nargs="+", default=list(GRAPHS))
    ap.add_argument("--link-epochs", type=int, default=5)
    ap.add_argument("--relation-epochs", type=int, default=20)
    ap.add_argument("--lr", type=float, default=1e-3)
    args = ap.parse_args(argv)
    from lvbert.cli import main as cli
    from lvbert.tasks.kg import load_graph

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {"model": args.model, "graphs": {}}
    for name in args.graphs:
        graph = load_graph(name)
        r = {"graph": graph.describe()}
        for task, epochs in (("link", args.link_epochs), ("relation", args.relation_epochs)):
            run = out / f"{name}-{task}"
            if not (run / "results.json").exists():
                rc = cli(["kg", "train", "--model", args.model, "--dataset", name, "--task", task, "--epochs", str(epochs),
                          "--lr", str(args.lr), "--no-progress", "--out", str(run)])  # fmt: skip
                if rc:
                    raise SystemExit(f"kg train failed on {name} {task}")
            res = json.loads((run / "results.json").read_text())
            r[task] = {"test": res["test"], "train_seconds": res["train_seconds"]}
        random.seed(0)
        r["transe"] = transe(graph)
        results["graphs"][name] = r
        lp, tr = r["link"]["test"]["filtered"]["both"], r["transe"]["filtered"]
        print(f"{name}: KG-BERT link filtered MR {lp['mr']:.2f} MRR {lp['mrr']:.3f} Hits@10 {lp['hits@10']:.3f} "
              f"(test {r['link']['test']['seconds']} s, train {r['link']['train_seconds']} s); TransE MR {tr['mr']:.2f} "
              f"MRR {tr['mrr']:.3f} Hits@10 {tr['hits@10']:.3f}; relation filtered Hits@1 "
              f"{r['relation']['test']['filtered']['hits@1']:.3f}", flush=True)  # fmt: skip
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
