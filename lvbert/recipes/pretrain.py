"""Recipe: pre-train one architecture from scratch, with masked LM or ELECTRA.

``objective="electra"`` (the official LV-BERT recipe, ELECTRA's) trains a
generator of the same layer list at reduced width together with the
discriminator; ``objective="mlm"`` trains an ``LvBertForMaskedLM`` on masked
positions only. Same loop, checkpoints, resume and distributed support as the
supernet. Output folder:

    <out>/config.json, model.safetensors   the model kept: the discriminator
                                           (LvBertForPreTraining) or the MLM model;
                                           AutoModel.from_pretrained(out) loads its backbone
    <out>/tokenizer files                   the data's tokenizer
    <out>/generator/                        the ELECTRA generator (electra only)
    <out>/run_config.yaml, summary.json     resolved config; final validation
    <out>/metrics.jsonl, tensorboard/, checkpoints/
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from lvbert.errors import LvBertError
from lvbert.options import TrainingOptions, option


@dataclass
class PretrainConfig(TrainingOptions):
    out: str = option("run folder", default="runs/pretrain")
    steps: int = option("optimizer steps (the paper: 1,000,000)", default=1000000)
    batch_size: int = option("global batch size (128 for small and medium, 256 for base)", default=128)
    eval_every: int = option("steps between validations", default=1000)
    arch: str = option("architecture: CCAF..., [0,0,1,...] or a name (lv-bert-small, bert, sandwich, random:SEED)", default="lv-bert-small")
    objective: str = option("electra (replaced-token detection) or mlm", default="electra")
    generator_hidden: int | None = option("ELECTRA generator hidden size (default hidden/4: 64 for small)", default=None)
    rtd_weight: float = option("weight of the replaced-token-detection loss", default=50.0)
    temperature: float = option("generator sampling temperature", default=1.0)
    init_from: str | None = option("start from a Hugging Face BERT/ELECTRA checkpoint on disk (arch AF x N only)", default=None)
    teacher: str | None = option("prediction-layer distillation (NAS-BERT's pre-training KD), objective mlm: an MLM "
                                 "model folder (lvbert or Hugging Face BERT/ELECTRA) with the data's tokenizer",
                                 default=None)  # fmt: skip
    kd_weight: float = option("with --teacher: weight of the KL to the teacher's MLM logits (NAS-BERT: 0.5; the "
                              "MLM loss gets 1 - weight)", default=0.5)  # fmt: skip

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.objective not in ("electra", "mlm"):
            raise LvBertError(f"unknown objective {self.objective!r}; choose electra or mlm")
        if self.teacher and self.objective != "mlm":
            raise LvBertError("--teacher (prediction-layer KD) needs --objective mlm")
        if not 0.0 <= self.kd_weight <= 1.0:
            raise LvBertError(f"--kd-weight must be between 0 and 1, got {self.kd_weight}")


def build_model(cfg: PretrainConfig, vocab_size: int, pad_token_id: int):
    """The model trained: an ElectraPretrainer (discriminator + generator) or an LvBertForMaskedLM."""
    from lvbert.arch import GENERATOR_HIDDEN
    from lvbert.modeling_lvbert import LvBertConfig, LvBertForMaskedLM, LvBertForPreTraining
    from lvbert.objectives import ElectraPretrainer

    common = dict(
        vocab_size=vocab_size,
        hidden_dropout_prob=cfg.dropout,
        attention_probs_dropout_prob=cfg.dropout,
        pad_token_id=pad_token_id,
    )
    if cfg.init_from:
        from lvbert.interop import from_hf

        target = "pretraining" if cfg.objective == "electra" else "mlm"
        model = from_hf(cfg.init_from, target=target)
        if model.config.vocab_size != vocab_size:
            raise LvBertError(
                f"{cfg.init_from} has a vocabulary of {model.config.vocab_size} but the data's tokenizer has {vocab_size}; "
                "prepare the data with that checkpoint's tokenizer"
            )
    else:
        config = LvBertConfig.from_size(cfg.size, arch=cfg.arch, **common)
        model = LvBertForPreTraining(config) if cfg.objective == "electra" else LvBertForMaskedLM(config)
    if cfg.objective == "mlm":
        return model
    hidden = cfg.generator_hidden or GENERATOR_HIDDEN.get(cfg.size) or max(16, model.config.hidden_size // 4)
    return ElectraPretrainer(model, hidden, rtd_weight=cfg.rtd_weight, temperature=cfg.temperature)


def pretrain(cfg: PretrainConfig, resume: bool = False) -> Path:
    """Pre-train as configured; returns the output folder."""
    from lvbert.data.masking import MaskingConfig, fixed_mask_validation
    from lvbert.data.packed import check_positions, open_data
    from lvbert.objectives import electra_objective, evaluate_mlm, mlm_objective
    from lvbert.objectives.electra import evaluate_electra
    from lvbert.training.batches import PretrainBatches
    from lvbert.training.distributed import cleanup, setup_distributed
    from lvbert.training.loop import train_loop
    from lvbert.training.optim import build_optimizer, linear_schedule
    from lvbert.training.run import loop_config, prepare_run_dir, step_settings, write_run_config
    from lvbert.utils import atomic_write_json, fix_permissions

    out = Path(cfg.out)
    data = open_data(cfg.data)  # the tokenizer checked against the manifest once, here
    data_id, tokenizer = data.identity(), data.tokenizer
    info = setup_distributed(cfg.device)
    try:
        torch.manual_seed(cfg.seed)  # identical initial weights on every rank
        model = build_model(cfg, len(tokenizer), tokenizer.pad_token_id)
        kept = model.discriminator if cfg.objective == "electra" else model
        check_positions(data_id["seq_len"], kept.config.max_position_embeddings)
        identity = {"kind": "pretrain", "arch": kept.config.arch, "size": cfg.size, "objective": cfg.objective, **data_id}
        teacher = None
        if cfg.teacher:
            import functools

            from lvbert.data.tokenizer import check_teacher_vocab
            from lvbert.model_dir import load_mlm
            from lvbert.objectives.distill import mlm_kd_objective

            check_teacher_vocab(Path(cfg.teacher), tokenizer, f"the data in {data.path}")
            teacher = load_mlm(cfg.teacher)[0].eval().requires_grad_(False).to(info.device)
            check_positions(data_id["seq_len"], teacher.config.max_position_embeddings)
            identity["teacher"] = str(Path(cfg.teacher).resolve())
        resuming = prepare_run_dir(out, resume, identity)
        world = info.world_size
        micro, lr, warmup = step_settings(cfg, world)
        params = sum(p.numel() for p in kept.lvbert.parameters())
        if info.is_main:
            out.mkdir(parents=True, exist_ok=True)
            write_run_config(out, {**asdict(cfg), "lr": lr, "warmup_steps": warmup, "processes": world}, identity)
            print(
                f"pretrain ({cfg.objective}): arch {kept.config.arch}, size {cfg.size}, {params:,} backbone parameters, "
                f"{cfg.steps} steps x {cfg.batch_size} sequences, lr {lr}, {world} process(es) on {info.device}"
                + (f"; prediction-layer KD from {cfg.teacher} (weight {cfg.kd_weight})" if teacher is not None else "")
            )
        model.to(info.device)
        optimizer = build_optimizer(model, lr, weight_decay=cfg.weight_decay)
        scheduler = linear_schedule(optimizer, warmup, cfg.steps)
        masking = MaskingConfig(mode="electra" if cfg.objective == "electra" else "bert")
        batches = PretrainBatches(
            data, micro, cfg.grad_accum, info.rank, world, masking, cfg.seed, max_positions=kept.config.max_position_embeddings
        )
        valid = fixed_mask_validation(data, cfg.eval_sequences, seed=cfg.seed, config=masking)
        objective = electra_objective if cfg.objective == "electra" else mlm_objective
        if teacher is not None:
            objective = functools.partial(mlm_kd_objective, teacher=teacher, weight=cfg.kd_weight)

        def evaluate(m, step: int) -> dict:
            # MLM: the model; ELECTRA: the generator's MLM and the discriminator's detection
            return evaluate_mlm(m, valid) if cfg.objective == "mlm" else evaluate_electra(m, valid)

        def write_extra(folder: Path) -> None:
            tokenizer.save_pretrained(str(folder))

        loop_cfg = loop_config(cfg, out)
        result = train_loop(
            model,
            objective,
            batches,
            optimizer,
            scheduler,
            loop_cfg,
            dist_info=info,
            evaluate=evaluate if info.is_main else None,
            on_checkpoint=write_extra,
            resume=resuming,
        )
        if info.is_main:
            kept.save_pretrained(str(out))
            tokenizer.save_pretrained(str(out))
            if cfg.objective == "electra":
                model.generator.save_pretrained(str(out / "generator"))
                tokenizer.save_pretrained(str(out / "generator"))
            summary = {
                "arch": kept.config.arch,
                "objective": cfg.objective,
                "params": params,
                "step": result["step"],
                "validation": result["eval"],
            }
            atomic_write_json(out / "summary.json", summary)
            fix_permissions(out)  # safetensors writes 0600 files; the run folder follows the umask
            print("validation: " + ", ".join(f"{k} {v:.4f}" for k, v in result["eval"].items() if isinstance(v, float)))
        return out
    finally:
        cleanup(info)
