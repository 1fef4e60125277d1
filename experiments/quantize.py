"""KDLSQ's claims at this machine's scale: how much accuracy do 8-, 4- and 2-bit weights (8-bit
activations) lose after quantization-aware training, and does distillation beat the labels alone?

A pre-trained LV-BERT model (``--pretrained``, e.g. the teacher of ``experiments/distillation.py``)
is fine-tuned on each task; then, per seed of the quantization-aware training (``lvbert quantize``,
3 epochs): W8A8, W4A8 and W2A8, each with KD from the full-precision model and without (plain LSQ,
labels only). Post-training baselines of the same fine-tuned model, no training: onnxruntime's
dynamic int8 (``lvbert export --dynamic-int8``) and torchao's int8 dynamic-activation / int8-weight.
Every score is **test** accuracy (the quantize run picks its epoch on dev); the W8A8 models are
also scored through their int8 ONNX export. Sizes: the fp32 file, the int8 ONNX file, the packed
files and KDLSQ's compression ratio. Every result is a file, so a stopped run continues.

    python experiments/quantize.py --pretrained runs/distill-exp/teacher --out runs/quant-exp
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path


def _run(argv: list) -> None:
    from lvbert.cli import main

    rc = main([str(a) for a in argv])
    if rc != 0:
        raise SystemExit(f"failed ({rc}): lvbert {' '.join(map(str, argv))}")


def _write_json(path: Path, obj) -> None:
    from lvbert.utils import atomic_write_json

    atomic_write_json(path, obj)


def _test_set(task_name: str, model_dir: Path):
    from lvbert.model_dir import load_model_config, load_model_tokenizer
    from lvbert.tasks import demo_data_dir, get_task
    from lvbert.tasks.encoding import encode
    from lvbert.tasks.task import Layout, read_examples

    task = get_task(task_name)
    examples = read_examples(demo_data_dir(task.name) / "test.tsv", Layout(text="text", label="label", fmt="tsv"))
    config = load_model_config(model_dir)
    tokenizer = load_model_tokenizer(model_dir, config.vocab_size)
    enc = encode(tokenizer, examples, 128, f"{task.name} test")
    return task, enc, [task.labels.index(ex.label) for ex in examples], tokenizer.pad_token_id or 0


def _accuracy(logits, labels) -> float:
    preds = logits.argmax(-1).tolist()
    return sum(int(p == y) for p, y in zip(preds, labels)) / len(labels)


def test_accuracy(model_dir: Path, task_name: str, runtime: str = "torch") -> float:
    """Test accuracy of a model folder through ``runtime`` (torch: fake-quant for a quantized model)."""
    from lvbert.model_dir import load_finetuned
    from lvbert.tasks.encoding import predict_logits

    _, enc, labels, pad = _test_set(task_name, model_dir)
    if runtime == "onnx":
        from lvbert.export.onnx import OnnxClassifier

        return _accuracy(OnnxClassifier(model_dir).predict_logits(enc, 64, pad), labels)
    model = load_finetuned(model_dir)
    if runtime == "torchao":
        from lvbert.export.torchao import torchao_int8

        model = torchao_int8(model)
    return _accuracy(predict_logits(model, enc, 64, pad), labels)


def _cached(path: Path, compute):
    if path.exists():
        return json.loads(path.read_text())
    value = compute()
    _write_json(path, value)
    return value


def _stats(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values),
            "values": values}  # fmt: skip


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pretrained", required=True, help="a pre-trained lvbert model folder, fine-tuned per task here")
    ap.add_argument("--out", default="runs/quant-exp")
    ap.add_argument("--tasks", nargs="+", default=["polarity"])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--bits", nargs="+", type=int, default=[8, 4, 2])
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args(argv)
    out = Path(args.out)
    summary: dict = {"pretrained": args.pretrained, "epochs": args.epochs, "tasks": {}}
    for task in args.tasks:
        root = out / task
        ft = root / "fp32"
        if not (ft / "results.json").exists():
            shutil.rmtree(ft, ignore_errors=True)
            _run(["finetune", "--model", args.pretrained, "--task", task, "--out", ft, "--epochs", 3, "--lr", "1e-3",
                  "--layer-decay", 1, "--no-progress"])  # fmt: skip
        row: dict = {"fp32": _cached(root / "fp32.test.json", lambda: test_accuracy(ft, task))}
        dyn = root / "dynamic-int8"
        if not (dyn / "model.onnx").exists():
            shutil.rmtree(dyn, ignore_errors=True)
            shutil.copytree(ft, dyn, ignore=shutil.ignore_patterns("logs"))
            _run(["export", "--model", dyn, "--dynamic-int8"])
        row["ptq_dynamic_int8_onnx"] = _cached(root / "dynamic.test.json", lambda: test_accuracy(dyn, task, "onnx"))
        row["ptq_torchao_int8"] = _cached(root / "torchao.test.json", lambda: test_accuracy(ft, task, "torchao"))
        sizes = {"fp32_file_bytes": (ft / "model.safetensors").stat().st_size,
                 "dynamic_int8_onnx_bytes": (dyn / "model.onnx").stat().st_size}  # fmt: skip
        for bits in args.bits:
            for kd in (True, False):
                name = f"w{bits}a8-{'kd' if kd else 'nokd'}"
                tests, devs, before, onnx_tests, agreements = [], [], [], [], []
                for seed in range(args.seeds):
                    run = root / f"{name}-s{seed}"
                    export = bits == 8 and kd
                    if not (run / "results.json").exists():
                        shutil.rmtree(run, ignore_errors=True)
                        _run(["quantize", "--model", ft, "--task", task, "--out", run, "--weight-bits", bits,
                              "--act-bits", 8, "--epochs", args.epochs, "--seed", seed, "--no-progress",
                              *([] if kd else ["--no-kd"]), *([] if export else ["--no-export"])])  # fmt: skip
                    res = json.loads((run / "results.json").read_text())
                    devs.append(res["runs"][0]["score"])
                    before.append(res["before_training_score"])
                    tests.append(_cached(run / "test.json", lambda: test_accuracy(run, task)))
                    if export:
                        onnx_res = res["onnx"]
                        if (run / "export.json").exists():  # re-exported by lvbert export (a newer exporter)
                            onnx_res = json.loads((run / "export.json").read_text())
                        onnx_tests.append(_cached(run / "test.onnx.json", lambda: test_accuracy(run, task, "onnx")))
                        agreements.append(onnx_res["agreement"])
                        sizes.setdefault("int8_onnx_bytes", onnx_res["bytes"])
                    sizes.setdefault(f"packed_w{bits}_bytes", res["sizes"]["file_bytes"])
                    sizes.setdefault(f"kdlsq_ratio_w{bits}", res["sizes"]["kdlsq_ratio"])
                    print(f"{task} {name} seed {seed}: test {100 * tests[-1]:.2f} (fp32 {100 * row['fp32']:.2f}), "
                          f"dev {100 * devs[-1]:.2f}, before training {100 * before[-1]:.2f}", flush=True)  # fmt: skip
                row[name] = {"test": _stats(tests), "dev": _stats(devs), "before_training_dev": _stats(before)}
                if onnx_tests:
                    row[name]["test_int8_onnx"] = _stats(onnx_tests)
                    row[name]["onnx_agreement_dev"] = _stats(agreements)
        row["sizes"] = sizes
        summary["tasks"][task] = row
        _write_json(out / "results.json", summary)
    for task, row in summary["tasks"].items():
        print(f"\n{task}: test accuracy, median [min, max] of {args.seeds} seeds")
        print(f"  fp32                      {100 * row['fp32']:.2f}")
        print(f"  PTQ dynamic int8 (ORT)    {100 * row['ptq_dynamic_int8_onnx']:.2f}")
        print(f"  PTQ torchao int8          {100 * row['ptq_torchao_int8']:.2f}")
        for name, r in row.items():
            if isinstance(r, dict) and "test" in r:
                t = r["test"]
                extra = f"; int8 ONNX {100 * r['test_int8_onnx']['median']:.2f}" if "test_int8_onnx" in r else ""
                print(f"  {name:<25} {100 * t['median']:.2f} [{100 * t['min']:.2f}, {100 * t['max']:.2f}]{extra}")
        print(f"  sizes: {row['sizes']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
