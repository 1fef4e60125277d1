"""``lvbert nas train|search``: NAS-BERT's block-wise distilled supernet and its selection of one model per budget."""

from __future__ import annotations

from lvbert.options import add_options, resolve, resolve_run
from lvbert.recipes.nas import NasSearchConfig, NasTrainConfig, search_nas, train_nas


def register(sub) -> None:
    p = sub.add_parser("nas", help="NAS-BERT: one block-wise distilled supernet, models at many sizes")
    nsub = p.add_subparsers(dest="nas_command", metavar="ACTION", parser_class=type(p))
    nsub.required = True
    t = nsub.add_parser(
        "train",
        help="train the block supernets by block-wise distillation from a teacher, with progressive shrinking",
        description="Each block of the space learns to give the teacher's block output from the teacher's previous "
        "block output (one sampled candidate per step); progressive shrinking keeps --keep candidates per bin. "
        "Blocks are separate runs: --blocks 0,1 in one job and --blocks 2,3 in another may share --out.",
    )
    add_options(t, NasTrainConfig, resume=True)
    t.set_defaults(func=run_train, config_class=NasTrainConfig)
    s = nsub.add_parser(
        "search",
        help="one model per parameter (and latency) budget from a trained NAS run, and the Pareto front",
        description="Combinations of the surviving block candidates are visited by increasing sum of block losses; the "
        "first --top within the budgets are chained with their trained weights and scored on the validation set; "
        "the best per target is written as a model folder (models/<target>/) that lvbert pretrain / distill train further.",
    )
    add_options(s, NasSearchConfig)
    s.set_defaults(func=run_search, config_class=NasSearchConfig)


def run_train(args) -> int:
    cfg, resume = resolve_run(NasTrainConfig, args)
    out = train_nas(cfg, resume=resume)
    print(f"NAS supernet written to {out}")
    return 0


def run_search(args) -> int:
    out = search_nas(resolve(NasSearchConfig, args))
    print(f"models written to {out}/models")
    return 0
