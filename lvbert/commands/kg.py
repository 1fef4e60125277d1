"""``lvbert kg train|eval|score``: KG-BERT knowledge-graph completion (thin wrappers over :mod:`lvbert.recipes.kg`)."""

from __future__ import annotations

import json

from lvbert.options import add_options, resolve, resolve_run
from lvbert.recipes.kg import (
    KgEvalConfig,
    KgScoreConfig,
    KgTrainConfig,
    evaluate_kg,
    score_triples,
    train_kg,
)


def register(sub) -> None:
    p = sub.add_parser("kg", help="knowledge-graph completion with KG-BERT (triples, links, relations)")
    ksub = p.add_subparsers(dest="kg_command", metavar="ACTION", parser_class=type(p))
    ksub.required = True
    t = ksub.add_parser(
        "train",
        help="train KG-BERT on a graph: triple classification, link prediction or relation prediction",
        description="KG-BERT(a): [CLS] head [SEP] relation [SEP] tail [SEP] classified true/false, trained with "
        "filtered corrupted triples (--task triple or link); KG-BERT(b): [CLS] head [SEP] tail [SEP] classified into "
        "the relations (--task relation). Graphs: umls, kinships, nations (the demo), or a folder.",
    )
    add_options(t, KgTrainConfig, resume=True)
    t.set_defaults(func=run_train, config_class=KgTrainConfig)
    e = ksub.add_parser("eval", help="triple accuracy; link prediction MR/MRR/Hits@k, raw and filtered; relation ranks")
    add_options(e, KgEvalConfig)
    e.set_defaults(func=run_eval, config_class=KgEvalConfig)
    s = ksub.add_parser("score", help="score your own triples with a trained model (probability of true per line)")
    add_options(s, KgScoreConfig)
    s.set_defaults(func=run_score, config_class=KgScoreConfig)


def run_train(args) -> int:
    cfg, resume = resolve_run(KgTrainConfig, args)
    train_kg(cfg, resume=resume)
    return 0


def run_eval(args) -> int:
    from lvbert.tasks.kg import format_results

    cfg = resolve(KgEvalConfig, args)
    r = evaluate_kg(cfg)
    print(json.dumps(r) if cfg.json else format_results(r))
    return 0


def run_score(args) -> int:
    score_triples(resolve(KgScoreConfig, args))
    return 0
