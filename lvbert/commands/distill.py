"""``lvbert distill`` and ``lvbert augment``: thin wrappers over :mod:`lvbert.recipes.distill` and ``augment``."""

from __future__ import annotations

from lvbert.options import add_options, resolve_run
from lvbert.recipes.augment import AugmentConfig, augment
from lvbert.recipes.distill import DistillConfig


def register(sub) -> None:
    p = sub.add_parser(
        "distill",
        help="TinyBERT distillation into any lvbert student (general, or on a task)",
        description="General distillation: --teacher DIR --arch ARCH --size SIZE --data PREPARED --steps N --out DIR "
        "(hidden states and pre-softmax attention on unlabelled text). Task distillation: --teacher FINETUNED "
        "--student DIR --task T --data-dir DIR --out DIR (intermediate layers, then the prediction layer). "
        "Teachers: lvbert models or Hugging Face BERT/ELECTRA checkpoints on disk.",
    )
    add_options(p, DistillConfig, resume=True)
    p.set_defaults(func=run_distill, config_class=DistillConfig)

    a = sub.add_parser(
        "augment",
        help="augment a task's training set: conditional BERT, TinyBERT's MLM augmentation, or a random floor",
        description="--method cbert: a label-conditional masked LM (fine-tuned here, saved in OUT/cmlm) re-samples about "
        "1/7 of each sentence's word pieces, conditioned on the label (--flip-label: the other label). --method mlm "
        "(TinyBERT's): each word replaced with probability --prob by one of the --top-k words a masked LM predicts in "
        "its place. --method random: random swaps and deletions, no model. --copies per example; dev and test copied "
        "unchanged.",
    )
    add_options(a, AugmentConfig, resume=True)
    a.set_defaults(func=run_augment, config_class=AugmentConfig)


def run_distill(args) -> int:
    from lvbert.recipes.distill import DistillConfig, run_distill

    cfg, resume = resolve_run(DistillConfig, args)
    out = run_distill(cfg, resume=resume)
    print(f"student written to {out}")
    return 0


def run_augment(args) -> int:
    cfg, resume = resolve_run(AugmentConfig, args)
    augment(cfg, resume=resume)
    return 0
