"""Recipe: pre-train the weight-sharing supernet with single-path sampling (SPOS).

One architecture per optimizer step, identical on every process and for every
micro-batch of the step; it depends only on (seed, step), so resuming and
multi-process runs sample the same sequence. Output folder:

    <out>/config.json, model.safetensors   the supernet (LvBertSupernet.from_pretrained)
    <out>/tokenizer files                   the data's tokenizer
    <out>/space.json                        the space it was trained over
    <out>/run_config.yaml                   the resolved config
    <out>/metrics.jsonl, tensorboard/       training and validation metrics
    <out>/checkpoints/step-N/               the last checkpoints (for --resume)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from lvbert.errors import LvBertError
from lvbert.model_dir import load_supernet
from lvbert.options import TrainingOptions, option
from lvbert.space import ArchSampler, probe_archs


@dataclass
class SupernetTrainConfig(TrainingOptions):
    out: str = option("run folder", default="runs/supernet")
    eval_every: int = option("steps between validations of the probe archs", default=500)
    allowed: str = option("ops allowed at every slot: layer types (CAF, AF, CAFI with identity) or ops with "
                          "settings ('C(kernel=3) C(kernel=5) A F I')", default="CAF")  # fmt: skip
    num_slots: int | None = option("slots (default: the size's, 24)", default=None)
    sampling: str = option("uniform (SPOS) or fair (FairNAS: each type equally often per slot)", default="uniform")
    mask_mode: str = option("masking: bert (80/10/10) or electra (85/15)", default="bert")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sampling not in ("uniform", "fair"):
            raise LvBertError(f"unknown sampling {self.sampling!r}; choose uniform or fair")
        from lvbert.space import normalize_choices

        normalize_choices(self.allowed, 1)  # a one-line error for a bad --allowed now, not after loading


def train_supernet(cfg: SupernetTrainConfig, resume: bool = False) -> Path:
    """Train a supernet as configured; returns the run folder."""
    from lvbert.arch import get_size
    from lvbert.data.masking import MaskingConfig, fixed_mask_validation
    from lvbert.data.packed import check_positions, open_data
    from lvbert.objectives import evaluate_mlm, mlm_objective
    from lvbert.space import SearchSpace
    from lvbert.supernet import LvBertSupernet, normalize_allowed
    from lvbert.training.batches import PretrainBatches
    from lvbert.training.distributed import cleanup, setup_distributed
    from lvbert.training.loop import train_loop
    from lvbert.training.optim import build_optimizer, linear_schedule
    from lvbert.training.run import loop_config, prepare_run_dir, step_settings, write_run_config
    from lvbert.utils import atomic_write_json, fix_permissions

    out = Path(cfg.out)
    size = get_size(cfg.size)
    num_slots = cfg.num_slots or size.num_slots
    allowed = normalize_allowed(cfg.allowed, num_slots, size)
    data = open_data(cfg.data)  # the tokenizer checked against the manifest once, here
    data_id, tokenizer = data.identity(), data.tokenizer
    check_positions(data_id["seq_len"], size.max_position_embeddings)
    identity = {
        "kind": "supernet",
        "size": cfg.size,
        "num_slots": num_slots,
        "allowed": allowed,
        **data_id,
    }
    info = setup_distributed(cfg.device)
    try:
        resuming = prepare_run_dir(out, resume, identity)
        world = info.world_size
        micro, lr, warmup = step_settings(cfg, world)
        if info.is_main:
            out.mkdir(parents=True, exist_ok=True)
            write_run_config(out, {**asdict(cfg), "lr": lr, "warmup_steps": warmup, "processes": world}, identity)
            print(f"supernet: {num_slots} slots, types {''.join(sorted(set(''.join(allowed))))}, size {cfg.size}, "
                  f"{cfg.steps} steps x {cfg.batch_size} sequences, lr {lr}, {world} process(es) on {info.device}")

        torch.manual_seed(cfg.seed)  # identical initial weights on every rank
        model = LvBertSupernet.from_size(
            cfg.size,
            allowed=allowed,
            num_slots=num_slots,
            vocab_size=len(tokenizer),
            hidden_dropout_prob=cfg.dropout,
            attention_probs_dropout_prob=cfg.dropout,
            pad_token_id=tokenizer.pad_token_id,
        ).to(info.device)
        optimizer = build_optimizer(model, lr, weight_decay=cfg.weight_decay)
        scheduler = linear_schedule(optimizer, warmup, cfg.steps)
        masking = MaskingConfig(mode=cfg.mask_mode)
        batches = PretrainBatches(
            data, micro, cfg.grad_accum, info.rank, world, masking, cfg.seed, max_positions=size.max_position_embeddings
        )
        sampler = ArchSampler(allowed, cfg.seed, cfg.sampling)
        valid = fixed_mask_validation(data, cfg.eval_sequences, seed=cfg.seed, config=masking)
        probes = probe_archs(allowed, cfg.seed)

        def before_step(step: int) -> dict:
            return {"arch": sampler(step)}

        def evaluate(m, step: int) -> dict:
            res = {}
            for name, arch in probes.items():
                r = evaluate_mlm(m, valid, arch=arch)
                res[f"{name}/mlm_accuracy"] = r["mlm_accuracy"]
                res[f"{name}/mlm_loss"] = r["mlm_loss"]
            return res

        def write_extra(folder: Path) -> None:
            tokenizer.save_pretrained(str(folder))

        loop_cfg = loop_config(cfg, out)
        result = train_loop(
            model,
            mlm_objective,
            batches,
            optimizer,
            scheduler,
            loop_cfg,
            dist_info=info,
            before_step=before_step,
            evaluate=evaluate if info.is_main else None,
            on_checkpoint=write_extra,
            resume=resuming,
            find_unused_parameters=True,
        )
        if info.is_main:
            model.save_pretrained(str(out))
            tokenizer.save_pretrained(str(out))
            space = SearchSpace(num_slots=num_slots, allowed=allowed, size=model.config.size_config(), seq_len=data_id["seq_len"])
            atomic_write_json(out / "space.json", space.to_dict())
            final = {"step": result["step"], "probes": probes, "validation": result["eval"]}
            atomic_write_json(out / "summary.json", final)
            fix_permissions(out)  # safetensors writes 0600 files; the run folder follows the umask
            _print_probe_table(result["eval"], probes)
        return out
    finally:
        cleanup(info)


def _print_probe_table(ev: dict, probes: dict) -> None:
    if not ev:
        return
    print("\nprobe architecture            MLM accuracy   MLM loss")
    for name, arch in probes.items():
        print(f"{name:<14} {arch[:14]:<14} {ev.get(f'{name}/mlm_accuracy', float('nan')):>12.4f} {ev.get(f'{name}/mlm_loss', float('nan')):>10.4f}")


@dataclass
class ExtractConfig:
    supernet: str = option("supernet run folder (lvbert supernet train)", default=None)
    arch: str = option("architecture inside the supernet's space: CCAF..., [0,0,1,...] or a name", default=None)
    out: str = option("output model folder", default=None)

    def __post_init__(self) -> None:
        for name in ("supernet", "arch", "out"):
            if not getattr(self, name):
                raise LvBertError(f"--{name} is required")


def extract_arch(cfg: ExtractConfig) -> Path:
    """Write ``cfg.arch``'s path of the supernet as a standalone ``LvBertForMaskedLM`` folder with the tokenizer."""
    from lvbert.data.tokenizer import load_tokenizer
    from lvbert.utils import check_out_dir, staging_folder

    out = check_out_dir(cfg.out)
    if out.is_dir() and any(out.iterdir()):
        raise LvBertError(f"--out {out} exists and is not empty; choose a new folder")
    net = load_supernet(cfg.supernet)
    model = net.extract(cfg.arch)
    tokenizer = load_tokenizer(cfg.supernet)
    with staging_folder(out) as tmp:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
    return out
