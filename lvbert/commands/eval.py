"""``lvbert eval``: masked-LM accuracy and loss of a model on fixed masks (a thin wrapper over
:func:`lvbert.recipes.eval.evaluate`)."""

from __future__ import annotations

import json

from lvbert.options import add_options, resolve


def register(sub) -> None:
    from lvbert.recipes.eval import EvalConfig

    p = sub.add_parser(
        "eval",
        help="masked-LM accuracy and loss of a model on prepared data or on your own text",
        description="The model: an lvbert MLM folder, an ELECTRA run folder (its generator) or a Hugging Face "
        "BERT/ELECTRA MLM checkpoint on disk. --data: prepared data made with the model's tokenizer; --corpus: "
        "text files, packed with the model's own tokenizer. Fixed masks from --seed, so numbers are comparable "
        "between models and runs; the unigram baseline (the most frequent masked word everywhere) is printed beside.",
    )
    add_options(p, EvalConfig)
    p.set_defaults(func=run, config_class=EvalConfig)


def run(args) -> int:
    from lvbert.recipes.eval import EvalConfig, evaluate

    cfg = resolve(EvalConfig, args)
    r = evaluate(cfg)
    if cfg.json:
        print(json.dumps(r))
    else:
        where = r.get("data") or ", ".join(r.get("corpus", []))
        print(f"{r['model']} ({r['kind']}) on {where}: {r['sequences']} sequences of {r['seq_len']} tokens, "
              f"{r['masked_tokens']:,} masked")
        print(f"mlm_accuracy {r['mlm_accuracy']:.4f}  mlm_loss {r['mlm_loss']:.4f}  "
              f"(unigram baseline {r['unigram_accuracy']:.4f})")
    return 0
