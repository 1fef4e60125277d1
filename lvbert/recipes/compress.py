"""Pipeline: a fine-tuned teacher -> a small int8 ONNX model per budget that runs without lvbert, and a
report that says whether it was worth it (``lvbert compress``).

Stages, each a call of a recipe's public entry point, in one folder (``OUT/work``); a finished stage
is skipped on a re-run, an interrupted one resumes from its own checkpoints:

1. ``teacher``: checks (a classifier of the task; the corpus's tokenizer is the teacher's) and the
   task-agnostic teacher, a masked-LM model: ``--teacher-pretrained``, else the model the teacher was
   fine-tuned from (its ``results.json``);
2. ``augment`` (``--augment N``): TinyBERT's augmented train set, N copies per example;
3. ``nas``: the NAS-BERT supernet, block-wise distilled from the teacher (``lvbert nas train``);
4. per budget: ``search`` (``lvbert nas search``), ``general`` distillation of the chosen student on the
   corpus, then per seed ``task`` distillation (intermediate then prediction layer) and ``int8``
   (KDLSQ quantization-aware training with the task-distilled student as its teacher, int8 ONNX);
5. ``baselines``: the teacher's dev score in fp32 PyTorch and under onnxruntime's dynamic int8 (what
   an Optimum user does), and a same-size ``AF`` student distilled and quantized the same way, without
   search;
6. ``deploy``: ``OUT/<budget>/``, the best seed's model (``lvbert.export.deploy``): the searched student,
   or the same-size AF student when its dev score is higher (the report says which);
7. ``latency``: every model timed for real on this machine (batch 1 and 8, ``--latency-threads``);
8. ``report``: ``OUT/report.md``, ``report.json``, ``report.png``.
"""

from __future__ import annotations

import dataclasses
import shutil
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification

from lvbert.arch import Arch
from lvbert.compress_report import write_compress_report
from lvbert.data.packed import open_data
from lvbert.data.tokenizer import check_teacher_vocab
from lvbert.errors import LvBertError
from lvbert.export.deploy import latency_batch, serving_latency, torch_runner, write_deploy_folder
from lvbert.export.onnx import OnnxClassifier, export_checked, require_deploy
from lvbert.export.runtime import evaluate_onnx
from lvbert.hardware import cpu_capability
from lvbert.interop import from_hf
from lvbert.model_dir import (
    load_config,
    load_finetuned,
    load_model_config,
    load_model_tokenizer,
    quiet_transformers,
    save_model_dir,
)
from lvbert.modeling_lvbert import LvBertConfig, LvBertForMaskedLM, LvBertModel
from lvbert.nas.select import parse_budget
from lvbert.objectives.distill import load_teacher, num_parameters
from lvbert.options import check_resume_options, option
from lvbert.tasks import DEMO_TASKS, demo_data_dir, get_task
from lvbert.tasks.encoding import encode_task, evaluate_splits, resolve_max_seq_len
from lvbert.tasks.hub import hub_glue_task
from lvbert.training.run import RUN_CONFIG
from lvbert.training.stages import StageLog
from lvbert.utils import check_output_dir, read_json


@dataclass(frozen=True)
class CompressProfile:
    """The budgets of every stage (``--profile``)."""

    description: str
    nas_size: str = "tiny"  # the NAS space preset (widths, blocks)
    nas_widths: str | None = None
    nas_steps: int = 400  # per block
    nas_bins: int = 3
    nas_sample: int = 20
    nas_keep: int = 3
    nas_calibrate: int = 4  # whole models measured to calibrate the NAS latency table
    search_top: int = 10
    general_steps: int = 400
    batch_size: int = 32
    lr: float = 1e-3  # NAS and general distillation
    task_epochs: int = 3  # intermediate-layer epochs of task distillation
    pred_epochs: int = 3  # prediction-layer epochs
    task_lr: float = 1e-3
    int8_epochs: int = 2
    int8_lr: float = 5e-5
    max_seq_len: int = 64
    repeats: int = 20  # latency: timed runs per point


PROFILES = {
    "quick": CompressProfile("minutes on 2 CPU cores: every stage runs, budgets small"),
    "full": CompressProfile("hours on 2 CPU cores; minutes on a GPU", nas_steps=3000, nas_bins=5, nas_sample=200,
                            nas_keep=10, search_top=50, general_steps=4000, task_epochs=5, pred_epochs=5,
                            int8_epochs=3, max_seq_len=128, repeats=50),  # fmt: skip
    # seconds: every stage runs, nothing is learned (the end-to-end test)
    "test": CompressProfile("seconds; a plumbing check", nas_steps=6, nas_sample=4, nas_keep=2, nas_calibrate=0,
                            search_top=3,
                            general_steps=4, batch_size=8, task_epochs=1, pred_epochs=1, int8_epochs=1,
                            max_seq_len=32, repeats=2),  # fmt: skip
}

BUDGETS = ("nas_steps", "general_steps", "task_epochs", "pred_epochs", "int8_epochs", "batch_size", "max_seq_len")


@dataclass
class CompressConfig:
    """Everything ``lvbert compress`` takes."""

    teacher: str = option("the fine-tuned teacher: an lvbert classifier folder (lvbert finetune) or a Hugging Face "
                          "BERT/ELECTRA sequence classifier on disk", default=None)  # fmt: skip
    task: str = option("the task the teacher was fine-tuned on (as lvbert finetune takes it)", default=None)
    corpus: str = option("prepared unlabelled text (lvbert data prepare) with the teacher's tokenizer: the NAS "
                         "supernet and general distillation read it", default=None)  # fmt: skip
    out: str = option("output folder: OUT/<budget>/ deploy folders, OUT/report.md, the stages in OUT/work",
                      default=None)  # fmt: skip
    data_dir: str | None = option("the task's folder (demo tasks default to the demo cache)", default=None)
    dataset: str | None = option("GLUE tasks from the Hugging Face hub or a saved dataset: NAME[:CONFIG] or a folder",
                                 default=None)  # fmt: skip
    teacher_pretrained: str | None = option("the masked-LM model the teacher was fine-tuned from (default: the one "
                                            "its results.json names); drives the task-agnostic stages",
                                            default=None)  # fmt: skip
    budget: str = option("budgets separated by ';', each params=N[,latency=MS]: N a count (5M, 800K) or a share of "
                         "the teacher's backbone (0.33x); MS the NAS latency table's milliseconds",
                         default="params=0.33x")  # fmt: skip
    bits: int = option("bits of the int8 model's weights (activations: 8)", default=8)
    profile: str = option("stage budgets: quick (minutes on 2 CPU cores), full, test (seconds); the options below "
                          "override single budgets", default="quick")  # fmt: skip
    nas_steps: int | None = option("NAS supernet: steps per block (default: the profile's)", default=None)
    general_steps: int | None = option("general distillation: steps (default: the profile's)", default=None)
    task_epochs: int | None = option("task distillation: intermediate-layer epochs (default: the profile's)",
                                     default=None)  # fmt: skip
    pred_epochs: int | None = option("task distillation: prediction-layer epochs (default: the profile's)",
                                     default=None)  # fmt: skip
    int8_epochs: int | None = option("KDLSQ int8 training: epochs (default: the profile's)", default=None)
    batch_size: int | None = option("batch size of every training stage (default: the profile's)", default=None)
    max_seq_len: int | None = option("task inputs are truncated to this many tokens (default: the profile's)",
                                     default=None)  # fmt: skip
    seeds: int = option("seeds of the task stages (task distillation, quantization); the report gives the median "
                        "and range, the deploy folder the best", default=1)  # fmt: skip
    augment: int = option("TinyBERT's data augmentation: copies per training example (0: none)", default=0)
    baseline: bool = option("also distil and quantize a same-size AF student without search (the report's "
                            "baseline)", default=True)  # fmt: skip
    latency_threads: str = option("threads of the latency measurements, e.g. 1 or 1,2", default="1")
    latency_seq_len: int = option("tokens per sequence in the latency measurements", default=128)
    text_column: str | None = option("file tasks: column with the text", default=None)
    text_pair_column: str | None = option("file tasks: column with the second text", default=None)
    label_column: str | None = option("file tasks: column with the label", default=None)
    device: str = option("auto, cpu, cuda (training stages; latency is measured on the CPU)", default="auto")
    progress: bool = option("progress bars", default=True)
    overwrite: bool = option("replace an existing --out folder (its old contents are removed first)", default=False)

    def __post_init__(self) -> None:
        for name in ("teacher", "task", "corpus", "out"):
            if not getattr(self, name):
                raise LvBertError(f"--{name.replace('_', '-')} is required")
        if self.profile not in PROFILES:
            raise LvBertError(f"unknown --profile {self.profile!r}; choose one of {', '.join(PROFILES)}")
        if not 2 <= self.bits <= 8:
            raise LvBertError(f"--bits must be between 2 and 8, got {self.bits}")
        for name in ("seeds", "latency_seq_len", *BUDGETS):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise LvBertError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.augment < 0:
            raise LvBertError(f"--augment must be 0 or more copies, got {self.augment}")
        self.thread_counts()
        self.budgets()

    def stage_budgets(self) -> CompressProfile:
        """The profile with the budgets given as options replacing its own."""
        given = {k: getattr(self, k) for k in BUDGETS if getattr(self, k) is not None}
        return dataclasses.replace(PROFILES[self.profile], **given)

    def thread_counts(self) -> list[int]:
        try:
            counts = [int(t) for t in str(self.latency_threads).split(",") if t.strip()]
        except ValueError:
            counts = []
        if not counts or min(counts) < 1:
            raise LvBertError(f"--latency-threads must be positive counts separated by commas, e.g. 1,2; got "
                              f"{self.latency_threads!r}")  # fmt: skip
        return counts

    def budgets(self) -> list[dict]:
        """``[{"name", "params" (a count or None), "share" (of the teacher, or None), "latency_ms"}]``."""
        out = []
        for text in str(self.budget).split(";"):
            if not text.strip():
                continue
            b = {"params": None, "share": None, "latency_ms": None}
            for part in text.split(","):
                key, _, value = part.strip().partition("=")
                value = value.strip()
                if key == "params" and value.endswith("x"):
                    b["share"] = _positive(value[:-1], text)
                elif key == "params":
                    b["params"] = parse_budget(value)
                elif key == "latency":
                    b["latency_ms"] = _positive(value.removesuffix("ms"), text)
                else:
                    raise LvBertError(f"--budget {text!r}: unknown part {part.strip()!r}; write params=5M,latency=8ms "
                                      "or params=0.33x")  # fmt: skip
            if b["params"] is None and b["share"] is None:
                raise LvBertError(f"--budget {text!r} needs params=N or params=SHAREx")
            b["name"] = budget_name(b)
            out.append(b)
        if not out:
            raise LvBertError("--budget needs at least one budget, e.g. params=5M or params=0.33x")
        if len({b["name"] for b in out}) != len(out):
            raise LvBertError(f"--budget {self.budget!r} names a budget twice")
        return out


def _positive(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise LvBertError(f"--budget {where!r}: {text!r} is not a positive number")
    return value


def budget_name(b: dict) -> str:
    """The folder name of a budget: ``5M``, ``0.33x``, ``5M-8ms``."""
    name = f"{b['share']:g}x" if b["share"] is not None else _human(b["params"])
    return name + (f"-{b['latency_ms']:g}ms" if b["latency_ms"] is not None else "")


def _human(n: int) -> str:
    for unit, div in (("M", 10**6), ("K", 10**3)):
        if n >= div and n % (div // 100) == 0:
            return f"{n / div:g}{unit}"
    return str(n)


def compress(cfg: CompressConfig) -> Path:
    """Run every stage (module docstring); returns the report's path."""

    p = cfg.stage_budgets()
    budgets = cfg.budgets()
    threads = cfg.thread_counts()
    options = asdict(cfg)
    task, data_dir = _resolve_task(cfg)  # before --overwrite removes anything
    out = Path(cfg.out)
    own = (out / "work" / "stages.json").is_file() and not cfg.overwrite
    out = check_output_dir(out, inputs={"--teacher": cfg.teacher, "--corpus": cfg.corpus, "--data-dir": cfg.data_dir,
                                        "--teacher-pretrained": cfg.teacher_pretrained}, overwrite=cfg.overwrite,
                           own_run=own)  # fmt: skip
    existed = out.exists()
    fresh = not existed or not any(out.iterdir())
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    log = StageLog(work, {"command": "compress"}, "run")
    saved = log.state.setdefault("options", options)
    check_resume_options(CompressConfig, options, saved, out, strict=True)
    total = 8 + (cfg.augment > 0)
    print(f"lvbert compress, profile {cfg.profile} ({p.description}), output in {out}")

    # 1. the teacher and its task-agnostic (masked-LM) teacher
    def teacher_stage() -> dict:
        return _check_teacher(cfg, task, work)

    try:
        t = log.run(1, total, "teacher", "checks; the masked-LM teacher of the task-agnostic stages", teacher_stage)
    except BaseException:
        if fresh and log.done("teacher") is None:  # bad input: nothing of this run is left behind
            shutil.rmtree(out if not existed else work, ignore_errors=True)
        raise
    teacher, teacher_mlm = Path(t["teacher"]), Path(t["teacher_mlm"])
    i = 2

    # 2. TinyBERT's augmented train set
    train_dir = data_dir
    if cfg.augment > 0:
        def augment_stage() -> dict:
            from lvbert.recipes.augment import AugmentConfig, augment

            dest = work / "augmented"
            acfg = AugmentConfig(method="mlm", model=str(teacher_mlm), task=cfg.task, data_dir=str(data_dir),
                                 out=str(dest), copies=cfg.augment, overwrite=True, text_column=cfg.text_column,
                                 text_pair_column=cfg.text_pair_column, label_column=cfg.label_column)  # fmt: skip
            return {"data_dir": str(augment(acfg))}

        augmented = log.run(i, total, "augment", f"{cfg.augment} copies per training example", augment_stage)
        train_dir = Path(augmented["data_dir"])
        i += 1

    # 3. the NAS-BERT supernet
    def nas_stage() -> dict:
        from lvbert.recipes.nas import NasTrainConfig, train_nas

        run = work / "nas"
        ncfg = NasTrainConfig(data=cfg.corpus, teacher=str(teacher_mlm), out=str(run), size=p.nas_size,
                              widths=p.nas_widths, steps=p.nas_steps, batch_size=p.batch_size, lr=p.lr, bins=p.nas_bins,
                              sample=p.nas_sample, keep=p.nas_keep, dev_batches=2, eval_sequences=64,
                              latency_seq_len=cfg.latency_seq_len, latency_repeats=3, latency_calibrate=p.nas_calibrate,
                              save_every=max(100, p.nas_steps // 2), device=cfg.device,
                              progress=cfg.progress)  # fmt: skip
        train_nas(ncfg, resume=(run / "nas.json").exists())
        return {"nas": str(run)}

    nas_dir = Path(log.run(i, total, "nas", f"NAS-BERT supernet from the teacher, {p.nas_steps} steps per block",
                           nas_stage)["nas"])  # fmt: skip
    i += 1

    # 4. per budget: search, general distillation, per seed task distillation and int8
    teacher_params = t["teacher_backbone_params"]
    students = {}
    for b in budgets:
        params = b["params"] if b["params"] is not None else int(b["share"] * teacher_params)

        def student_stage(b=b, params=params) -> dict:
            return _student(cfg, p, b, params, task, train_dir, data_dir, teacher, teacher_mlm, nas_dir, work,
                            "mlm" if t["teacher_mlm_head"] else "hidden")  # fmt: skip

        students[b["name"]] = log.run(i, total, f"student {b['name']}", f"search, distil and quantize within "
                                      f"{params:,} parameters" + (f", {b['latency_ms']:g} ms" if b["latency_ms"] else ""),
                                      student_stage)  # fmt: skip
    i += 1

    # 5. baselines: the teacher (fp32, onnxruntime dynamic int8), a same-size AF student without search
    def baselines_stage() -> dict:
        res = {"teacher": _teacher_baselines(cfg, p, task, data_dir, teacher, work)}
        if cfg.baseline:
            for name, s in students.items():
                res[f"af {name}"] = _af_student(cfg, p, name, s, task, train_dir, data_dir, teacher, teacher_mlm, work)
        return res

    baselines = log.run(i, total, "baselines", "the teacher under onnxruntime dynamic int8; same-size AF students",
                        baselines_stage)  # fmt: skip
    i += 1

    # 6. deploy folders: per budget the searched student, or the same-size AF student when it scores higher on dev
    def deploy_stage() -> dict:
        examples = _examples(task, data_dir)
        res, chosen = {}, {}
        for name, s in students.items():
            af = baselines.get(f"af {name}")
            kind, pick = ("searched", s)
            if af is not None and af["int8_score"]["median"] > s["int8_score"]["median"]:
                kind, pick = ("AF", af)
            best = pick["best_int8"]
            model_cfg = load_model_config(best)
            tok_len = resolve_max_seq_len(p.max_seq_len, model_cfg.max_position_embeddings)
            tok = load_model_tokenizer(best, model_cfg.vocab_size)
            summary = (f"Compressed by `lvbert compress` from `{teacher}` ({kind} student): {pick['params']:,} backbone "
                       f"parameters (teacher {teacher_params:,}), dev score {pick['int8_score']['median']:.4f} (teacher "
                       f"{baselines['teacher']['fp32_score']:.4f}); arch `{pick['arch']}`.")  # fmt: skip
            dest = write_deploy_folder(Path(best), out / name, task, tok_len, tok.pad_token_id or 0, examples, summary)
            res[name], chosen[name] = str(dest), kind
        return {"folders": res, "chosen": chosen}

    deployed = log.run(i, total, "deploy", f"OUT/<budget>/ for {len(students)} budget(s)", deploy_stage,
                       redo=True)  # seconds: written again with the stages before it  # fmt: skip
    i += 1

    # 7. latency, measured for real
    def latency_stage() -> dict:
        dynamic = Path(baselines["teacher"]["dynamic_int8_dir"])
        models = {"teacher fp32 (PyTorch)": ("torch", teacher), "teacher dynamic int8 (onnxruntime)": ("onnx", dynamic)}
        for name, s in students.items():
            models[f"compressed {name} int8 (onnxruntime)"] = ("onnx", Path(s["best_int8"]))
        for name, r in baselines.items():
            if name.startswith("af "):
                models[f"AF {name[3:]} int8 (onnxruntime)"] = ("onnx", Path(r["best_int8"]))
        return {"cpu": cpu_capability().to_dict(), "seq_len": cfg.latency_seq_len,
                "models": _measure_latency(models, threads, cfg.latency_seq_len, p.repeats)}  # fmt: skip

    latency = log.run(i, total, "latency", f"batch 1 and 8 x {cfg.latency_seq_len} tokens, "
                      f"{cfg.latency_threads} thread(s)", latency_stage, redo=True)  # fmt: skip
    i += 1

    # 8. report
    def report_stage() -> dict:
        return write_compress_report(out, options, task.name, t, students, baselines, deployed, latency, log.seconds())

    log.run(i, total, "report", "report.md, report.json, report.png", report_stage, redo=True)
    print(f"\nreport: {out / 'report.md'}")
    return out / "report.md"


# ============================================================================ stages


def _resolve_task(cfg: CompressConfig):
    from_hub = hub_glue_task(cfg.task, cfg.dataset, cfg.data_dir)
    if from_hub is not None:
        return from_hub
    if cfg.dataset:
        raise LvBertError(f"--dataset is for GLUE tasks, not {cfg.task}; give --data-dir")
    task = get_task(cfg.task, cfg.data_dir, text_column=cfg.text_column, text_pair_column=cfg.text_pair_column,
                    label_column=cfg.label_column)  # fmt: skip
    data_dir = Path(cfg.data_dir) if cfg.data_dir else (demo_data_dir(task.name) if task.name in DEMO_TASKS else None)
    if data_dir is None or not data_dir.is_dir():
        raise LvBertError(f"task {task.name} needs --data-dir, the folder with its files")
    if task.is_regression:
        raise LvBertError(f"task {task.name} is a regression; lvbert compress compresses classifiers")
    return task, data_dir


def _check_teacher(cfg: CompressConfig, task, work: Path) -> dict:
    """The teacher as an lvbert classifier folder, its masked-LM teacher, their checks."""
    teacher_dir = Path(cfg.teacher)
    config = load_config(teacher_dir, ("lvbert", "bert", "electra"))
    heads = config.architectures or []
    if not any(a.endswith("ForSequenceClassification") for a in heads):
        raise LvBertError(f"--teacher {teacher_dir} is not a sequence classifier ({', '.join(heads) or 'no head'}); "
                          f"give a model fine-tuned on {task.name} (lvbert finetune)")  # fmt: skip
    if config.num_labels != task.num_labels:
        raise LvBertError(f"--teacher {teacher_dir} has {config.num_labels} outputs but task {task.name} has "
                          f"{task.num_labels} labels; give a teacher fine-tuned on {task.name}")  # fmt: skip
    data = open_data(cfg.corpus)
    check_teacher_vocab(teacher_dir, data.tokenizer, f"the corpus in {data.path}")
    pretrained = cfg.teacher_pretrained
    if pretrained is None and config.model_type == "lvbert" and (teacher_dir / "results.json").is_file():
        pretrained = read_json(teacher_dir / "results.json").get("model")
        if not (Path(pretrained) / "config.json").is_file():  # moved or removed since: the backbone drives
            pretrained = None
    if pretrained is not None:
        pretrained = Path(pretrained)
        mlm_config = load_config(pretrained, ("lvbert", "bert", "electra"))
        mlm_dir, mlm_head = pretrained, True
        if mlm_config.model_type != "lvbert":  # the NAS supernet reads lvbert MLM models: converted once
            mlm_dir = work / "teacher-mlm"
            if not (mlm_dir / "config.json").is_file():
                model = from_hf(pretrained, target="mlm")
                save_model_dir(model, load_model_tokenizer(pretrained, model.config.vocab_size), mlm_dir)
    else:  # the fine-tuned backbone, with an MLM head it never trained: the search scores by hidden states
        if cfg.augment:
            raise LvBertError("--augment needs the masked-LM model the teacher was fine-tuned from: give "
                              "--teacher-pretrained")  # fmt: skip
        mlm_dir, mlm_head = work / "teacher-backbone", False
        if not (mlm_dir / "config.json").is_file():
            if config.model_type == "lvbert":
                with quiet_transformers():
                    model = LvBertForMaskedLM.from_pretrained(teacher_dir, local_files_only=True)
            else:
                model = from_hf(teacher_dir, target="mlm", strict=False)
            save_model_dir(model, load_model_tokenizer(teacher_dir, model.config.vocab_size), mlm_dir)
        print(f"no pretrained masked-LM model of {teacher_dir} (--teacher-pretrained): its fine-tuned backbone drives "
              "the task-agnostic stages, and the search scores students by their hidden states' distance to "
              "it")  # fmt: skip
    check_teacher_vocab(mlm_dir, data.tokenizer, f"the corpus in {data.path}")
    teacher = load_teacher(teacher_dir, task_head=True)
    base = getattr(teacher.model, teacher.model.base_model_prefix, teacher.model)
    return {"teacher": str(teacher_dir), "teacher_mlm": str(mlm_dir), "teacher_mlm_head": mlm_head,
            "teacher_model_type": config.model_type,
            "teacher_arch": getattr(config, "arch", None) or f"{config.model_type} x {config.num_hidden_layers}",
            "teacher_backbone_params": num_parameters(base), "teacher_params": num_parameters(teacher.model)}  # fmt: skip


def _seed_runs(cfg, p, task, student: Path, train_dir: Path, data_dir: Path, teacher: Path, folder: Path) -> dict:
    """Task distillation then int8 quantization-aware training of ``student``, per seed; the int8 dev scores."""
    from lvbert.recipes.distill import DistillConfig, task_distill
    from lvbert.recipes.quantize import QuantizeConfig, quantize

    columns = dict(text_column=cfg.text_column, text_pair_column=cfg.text_pair_column, label_column=cfg.label_column)
    runs = []
    for seed in range(cfg.seeds):
        tdir, qdir = folder / f"task-seed{seed}", folder / f"int8-seed{seed}"
        if not (tdir / "results.json").is_file():
            task_distill(DistillConfig(teacher=str(teacher), student=str(student), task=task.name,
                                       data_dir=str(train_dir), out=str(tdir), epochs=p.task_epochs,
                                       pred_epochs=p.pred_epochs, lr=p.task_lr, batch_size=p.batch_size,
                                       max_seq_len=p.max_seq_len, seed=seed, save_every=0, device=cfg.device,
                                       progress=cfg.progress, **columns),
                         resume=(tdir / RUN_CONFIG).is_file())  # fmt: skip
        if not (qdir / "results.json").is_file():
            quantize(QuantizeConfig(model=str(tdir), task=task.name, data_dir=str(data_dir), out=str(qdir),
                                    weight_bits=cfg.bits, act_bits=8, epochs=p.int8_epochs, lr=p.int8_lr,
                                    batch_size=p.batch_size, max_seq_len=p.max_seq_len, seed=seed, device=cfg.device,
                                    progress=cfg.progress, **columns),
                     resume=(qdir / RUN_CONFIG).is_file())  # fmt: skip
        fp32 = read_json(tdir / "results.json")
        int8 = read_json(qdir / "results.json")
        onnx_score = _onnx_score(qdir, task, data_dir, p.max_seq_len)
        runs.append({"seed": seed, "task_distilled_score": fp32["runs"][0]["score"], "int8_fake_quant_score":
                     int8["runs"][0]["score"], "int8_onnx_score": onnx_score, "task": str(tdir), "int8": str(qdir),
                     "onnx_agreement": (int8.get("onnx") or {}).get("agreement")})  # fmt: skip
    scores = [r["int8_onnx_score"] for r in runs]
    best = max(runs, key=lambda r: r["int8_onnx_score"])
    return {"runs": runs, "int8_score": _spread(scores),
            "task_distilled_score": _spread([r["task_distilled_score"] for r in runs]), "best_int8": best["int8"],
            "best_seed": best["seed"]}  # fmt: skip


def _spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def _onnx_score(folder: Path, task, data_dir: Path, max_seq_len: int) -> float:
    """The dev score of ``folder/model.onnx`` run by onnxruntime (what is deployed, not its fake-quant twin)."""
    require_deploy()
    config = load_model_config(folder)
    tok = load_model_tokenizer(folder, config.vocab_size)
    _, dev = encode_task(task, data_dir, tok, resolve_max_seq_len(max_seq_len, config.max_position_embeddings))
    return task.score(evaluate_onnx(OnnxClassifier(folder), task, dev, 64, tok.pad_token_id or 0))


def _student(cfg, p, b: dict, params: int, task, train_dir, data_dir, teacher, teacher_mlm, nas_dir, work,
             score: str) -> dict:  # fmt: skip
    from lvbert.recipes.distill import DistillConfig, general_distill
    from lvbert.recipes.nas import NasSearchConfig, search_nas

    folder = work / "students" / b["name"]
    search_dir = folder / "search"
    if not (search_dir / "results.json").is_file():
        search_nas(NasSearchConfig(supernet=str(nas_dir), data=cfg.corpus, targets=str(params),
                                   max_latency=b["latency_ms"], top=p.search_top, eval_sequences=64, measure=2,
                                   score=score, out=str(search_dir), overwrite=True))  # fmt: skip
    chosen = next(iter(read_json(search_dir / "results.json")["targets"].values()))
    general = folder / "general"
    if not (general / "summary.json").is_file():
        general_distill(DistillConfig(teacher=str(teacher_mlm), data=cfg.corpus,
                                      student=str(search_dir / chosen["model"]), steps=p.general_steps,
                                      batch_size=p.batch_size, lr=p.lr, out=str(general),
                                      save_every=max(100, p.general_steps // 2), eval_every=p.general_steps,
                                      eval_sequences=64, device=cfg.device, progress=cfg.progress),
                        resume=(general / RUN_CONFIG).is_file())  # fmt: skip
    res = _seed_runs(cfg, p, task, general, train_dir, data_dir, teacher, folder)
    return {"budget": b, "params": chosen["params"], "arch": chosen["arch"], "nas_latency_ms": chosen["latency_ms"],
            "search_score": score, "search_loss": chosen["loss"], "mlm_accuracy": chosen.get("mlm_accuracy"),
            "search": str(search_dir), "general": str(general), **res}


def _af_size(teacher_mlm: Path, params: int) -> tuple[str, str, int]:
    """The ``AF`` x n arch and size (the teacher's embeddings; width and depth searched over a small grid)
    whose backbone parameters are closest to ``params``; returns (arch, size, parameters)."""
    tc = load_model_config(teacher_mlm)
    best = None
    for width in (32, 64, 96, 128, 192, 256, 384, 512, 768):
        if width > tc.hidden_size:
            break
        heads = max(1, width // 64)
        for pairs in range(1, max(2, tc.num_slots // 2) + 1):
            size = (f"tiny(hidden_size={width},embedding_size={tc.embedding_size},num_attention_heads={heads},"
                    f"conv_heads={heads},intermediate_size={4 * width},vocab_size={tc.vocab_size},"
                    f"max_position_embeddings={tc.max_position_embeddings})")  # fmt: skip
            arch = "AF" * pairs
            with torch.device("meta"):
                n = num_parameters(LvBertModel(LvBertConfig.from_size(size, arch=arch, vocab_size=tc.vocab_size)))
            if best is None or abs(n - params) < abs(best[2] - params):
                best = (arch, size, n)
    return best


def _af_student(cfg, p, name: str, s: dict, task, train_dir, data_dir, teacher, teacher_mlm, work) -> dict:
    from lvbert.recipes.distill import DistillConfig, general_distill

    arch, size, params = _af_size(teacher_mlm, s["params"])
    folder = work / "baseline-af" / name
    general = folder / "general"
    if not (general / "summary.json").is_file():
        general_distill(DistillConfig(teacher=str(teacher_mlm), data=cfg.corpus, arch=arch, size=size,
                                      steps=p.general_steps, batch_size=p.batch_size, lr=p.lr, out=str(general),
                                      save_every=max(100, p.general_steps // 2), eval_every=p.general_steps,
                                      eval_sequences=64, device=cfg.device, progress=cfg.progress),
                        resume=(general / RUN_CONFIG).is_file())  # fmt: skip
    res = _seed_runs(cfg, p, task, general, train_dir, data_dir, teacher, folder)
    return {"arch": str(Arch.parse(arch)), "size": size, "params": params, "general": str(general), **res}


def _teacher_baselines(cfg, p, task, data_dir: Path, teacher: Path, work: Path) -> dict:
    """The teacher's dev score in fp32 PyTorch and after onnxruntime's dynamic int8 (the Optimum user's path)."""
    model = load_classifier_folder(teacher)
    config = model.config
    tok = load_model_tokenizer(teacher, config.vocab_size)
    pad = tok.pad_token_id or 0
    _, dev = encode_task(task, data_dir, tok, resolve_max_seq_len(p.max_seq_len, config.max_position_embeddings))
    fp32 = task.score(evaluate_splits(model, task, dev, 64, pad))
    dyn = work / "teacher-dynamic-int8"
    if dyn.exists():
        shutil.rmtree(dyn)
    save_model_dir(model, tok, dyn)
    export_checked(model, dyn, None, None, pad, dynamic_int8=True)
    dyn_score = task.score(evaluate_onnx(OnnxClassifier(dyn), task, dev, 64, pad))
    return {"fp32_score": fp32, "dynamic_int8_score": dyn_score, "dynamic_int8_dir": str(dyn),
            "dynamic_int8_bytes": (dyn / "model.onnx").stat().st_size,
            "fp32_bytes": (teacher / "model.safetensors").stat().st_size}  # fmt: skip


def _examples(task, data_dir: Path) -> list:
    ex = task.read(data_dir, task.dev_splits[0])[:2]
    return [e.text if e.text_pair is None else (e.text, e.text_pair) for e in ex]


def _measure_latency(models: dict, threads: list[int], seq_len: int, repeats: int) -> dict:
    """``{model: {"bytes": file size, "ms": {"b1_t1": median ms, ...}}}``: each model at batch 1 and 8 for each
    thread count (CPU)."""
    res = {}
    before = torch.get_num_threads()
    try:
        for name, (kind, folder) in models.items():
            config = load_config(folder, ("lvbert", "bert", "electra"))
            if kind == "torch":
                run = torch_runner(load_classifier_folder(folder).cpu())
                res[name] = {"bytes": (folder / "model.safetensors").stat().st_size, "ms": {}}
            else:
                res[name] = {"bytes": (folder / "model.onnx").stat().st_size, "ms": {}}
            for t in threads:
                torch.set_num_threads(t)
                if kind == "onnx":
                    sess = OnnxClassifier(folder, threads=t)
                    run = sess.logits
                for batch in (1, 8):
                    x = latency_batch(batch, min(seq_len, config.max_position_embeddings), config.vocab_size)
                    res[name]["ms"][f"b{batch}_t{t}"] = serving_latency(run, x, repeats)["median_ms"]
    finally:
        torch.set_num_threads(before)
    return res


def load_classifier_folder(folder: Path):
    """A fine-tuned classifier in eval mode: lvbert (``load_finetuned``) or a Hugging Face BERT / ELECTRA one."""
    if load_config(folder, ("lvbert", "bert", "electra")).model_type == "lvbert":
        return load_finetuned(folder)
    with quiet_transformers():
        return AutoModelForSequenceClassification.from_pretrained(folder, local_files_only=True).eval()
