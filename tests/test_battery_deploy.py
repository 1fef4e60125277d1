"""Fault battery of the deployment commands: distill, quantize, export, predict (torch and onnx runtimes),
nas train and nas search, each given an empty input file, a non-UTF-8 or binary input, an output that
already exists and an output that is one of its inputs. Every refusal is one line (exit 2; a full disk
exit 1) and leaves the user's files as they were. Kill + resume of distill, quantize and nas train:
tests/test_distill.py, test_quantize.py and test_nas.py."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lvbert.cli import main
from test_distill import _general, teachers  # noqa: F401  (module fixture)
from test_nas import _train_argv, nas_run, nas_teacher  # noqa: F401  (module fixtures)
from test_quantize import _quantize_argv, finetuned  # noqa: F401  (module fixture)
from test_reliability import _one_line, small_fs  # noqa: F401  (fixture)

needs_deploy = pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="needs the deploy extra")


def _fails(argv, capsys, *words, code: int = 2) -> None:
    capsys.readouterr()
    assert main([str(a) for a in argv]) == code, argv
    _one_line(capsys.readouterr().err, *words)


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _broken_model(finetuned, tmp_path, name: str, data: bytes) -> Path:
    """A copy of the fine-tuned model with one file replaced by ``data``."""
    folder = _copy(finetuned["model"], tmp_path / f"broken-{name}-{len(data)}")
    (folder / name).write_bytes(data)
    return folder


BROKEN_FILES = [("model.safetensors", b"", "not a safetensors file"),
                ("model.safetensors", b"\x08\x00\x00\x00\x00\x00\x00\x00{\"a\":1}", "not a safetensors file"),
                ("config.json", b"", "config"),
                ("config.json", '{"model_type": "lvbert", "label": "caf\xe9"}'.encode("latin-1"), "config"),
                ("config.json", b"\x00\x01\x02binary", "config")]  # fmt: skip


# ----------------------------------------------------------------------------- prepared data


def _broken_data(real_data: Path, tmp_path: Path, name: str, data: bytes | None = None, keep: int | None = None) -> Path:
    """A copy of the prepared data with ``name`` replaced by ``data`` or cut to ``keep`` bytes."""
    folder = _copy(real_data, tmp_path / f"data-{name}-{keep}-{len(data or b'')}")
    path = folder / name
    path.write_bytes(data if data is not None else path.read_bytes()[:keep])
    return folder


def _data_cases(real_data, tmp_path):
    return [
        (_broken_data(real_data, tmp_path, "train_input_ids.npy", keep=200), ["train_input_ids.npy", "lvbert data prepare"]),
        (_broken_data(real_data, tmp_path, "valid_token_type_ids.npy", b""), ["valid_token_type_ids.npy", "lvbert data prepare"]),
        (_broken_data(real_data, tmp_path, "manifest.json", '{"format": "caf\xe9"}'.encode("latin-1")), ["not UTF-8"]),
        (_broken_data(real_data, tmp_path, "manifest.json", b"\x00\x01\x02"), ["binary"]),
        (_broken_data(real_data, tmp_path, "manifest.json", b""), ["manifest", "not valid JSON"]),
    ]  # fmt: skip


def test_truncated_or_undecodable_prepared_data_is_one_line(real_data, tmp_path):
    from lvbert.data.packed import PackedDataset, open_data
    from lvbert.errors import LvBertError

    for folder, words in _data_cases(real_data, tmp_path):
        with pytest.raises(LvBertError) as e:
            open_data(folder)
        assert all(w in str(e.value) for w in words) and "\n" not in str(e.value), (folder, e.value)
    assert len(PackedDataset(open_data(real_data), "train")[0]["input_ids"]) == open_data(real_data).seq_len


# ----------------------------------------------------------------------------- distill


def test_distill_refuses_a_users_model_folder_and_its_inputs_as_out(teachers, finetuned, real_data, tmp_path, capsys):
    mine = _copy(finetuned["model"], tmp_path / "my-model")  # a fine-tuned model with its results.json
    before = _snapshot(mine)
    _fails(_general(teachers["lv"], real_data, mine), capsys, "already exists", "--overwrite")
    assert _snapshot(mine) == before
    other = tmp_path / "notes"
    other.mkdir()
    (other / "notes.txt").write_text("mine\n")
    _fails(_general(teachers["lv"], real_data, other), capsys, "already exists")
    assert (other / "notes.txt").read_text() == "mine\n" and len(list(other.iterdir())) == 1
    teacher_before = _snapshot(teachers["lv"])
    for out in (teachers["lv"], real_data, real_data / "sub"):
        _fails(_general(teachers["lv"], real_data, out), capsys, "would destroy the input")
        _fails([*_general(teachers["lv"], real_data, out), "--overwrite"], capsys, "would destroy the input")
    assert _snapshot(teachers["lv"]) == teacher_before
    _fails(_general(teachers["lv"], real_data, mine, "--resume"), capsys, "cannot resume")
    assert main(_general(teachers["lv"], real_data, mine, "--overwrite")) == 0
    assert not (mine / "results.json").exists() and (mine / "summary.json").is_file()  # nothing of the old model mixed in
    _fails(_general(teachers["lv"], real_data, mine), capsys, "already exists")  # a finished run: --overwrite too


def test_distill_bad_options_are_one_line_and_leave_no_folder(teachers, finetuned, real_data, tmp_path, capsys):
    out = tmp_path / "o"
    for extra, words in ((["--lr", "-1"], "--lr must be positive"), (["--lr", "0"], "--lr must be positive"),
                         (["--weight-decay", "-0.1"], "--weight-decay"), (["--dropout", "1.5"], "--dropout")):  # fmt: skip
        _fails(_general(teachers["lv"], real_data, out, *extra), capsys, words)
        assert not out.exists()
    task = ["distill", "--teacher", finetuned["model"], "--student", finetuned["model"], "--task", "good-word",
            "--data-dir", finetuned["data"], "--text-column", "text", "--out", out, "--no-progress"]  # fmt: skip
    _fails([*task, "--pred-lr", "-1"], capsys, "--pred-lr must be positive")
    assert not out.exists()


def test_distill_broken_inputs_are_one_line(teachers, finetuned, real_data, tmp_path, capsys):
    for folder, words in _data_cases(real_data, tmp_path):
        _fails(_general(teachers["lv"], folder, tmp_path / "o"), capsys, *words)
    for name, data, words in BROKEN_FILES:
        teacher = _copy(teachers["lv"], tmp_path / f"t-{name}-{len(data)}-{data[:1].hex()}")
        (teacher / name).write_bytes(data)
        _fails(_general(teacher, real_data, tmp_path / "o"), capsys, words)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("data", ["text\tlabel\ncaf\xe9\t1\n".encode("latin-1"), b"\x00\x01\x02\x03"])
def test_task_distill_with_an_undecodable_task_file_is_one_line(finetuned, tmp_path, capsys, data):
    folder = _copy(finetuned["data"], tmp_path / "data")
    (folder / "train.tsv").write_bytes(data)
    _fails(["distill", "--teacher", finetuned["model"], "--student", finetuned["model"], "--task", "good-word",
            "--data-dir", folder, "--text-column", "text", "--out", tmp_path / "o", "--no-progress"], capsys,
           "not UTF-8" if data[:1] != b"\x00" else "binary")  # fmt: skip


# ----------------------------------------------------------------------------- quantize


def test_quantize_refuses_its_model_as_out_and_an_existing_folder(finetuned, tmp_path, capsys):
    model = finetuned["model"]
    before = _snapshot(model)
    for out in (model, model / "q", model.parent):
        _fails(_quantize_argv(finetuned, out, "--no-export"), capsys, "would destroy the input")
        _fails(_quantize_argv(finetuned, out, "--no-export", "--overwrite"), capsys, "would destroy the input")
    _fails(_quantize_argv(finetuned, tmp_path / "q", "--teacher", tmp_path / "q"), capsys, "would destroy the input")
    assert _snapshot(model) == before
    other = _copy(model, tmp_path / "other-model")
    other_before = _snapshot(other)
    _fails(_quantize_argv(finetuned, other, "--no-export"), capsys, "already exists", "--overwrite")
    assert _snapshot(other) == other_before
    assert main(_quantize_argv(finetuned, other, "--no-export", "--overwrite", "--weight-bits", "4")) == 0
    res = json.loads((other / "results.json").read_text())
    assert res["quantization"]["weight_bits"] == 4 and (other / "quantized.safetensors").is_file()
    _fails(_quantize_argv(finetuned, other, "--no-export"), capsys, "already exists")


def test_quantize_bad_options_and_broken_models_are_one_line(finetuned, tmp_path, capsys):
    out = tmp_path / "o"
    for extra, words in ((["--lr", "-1"], "--lr must be positive"), (["--act-alpha-lr", "0"], "--act-alpha-lr"),
                         (["--weight-decay", "-1"], "--weight-decay")):  # fmt: skip
        _fails(_quantize_argv(finetuned, out, *extra), capsys, words)
        assert not out.exists()  # no run_config.yaml left to block the folder
    for name, data, words in BROKEN_FILES:
        _fails(_quantize_argv({**finetuned, "model": _broken_model(finetuned, tmp_path, name, data)}, out), capsys, words)
    assert not out.exists()


@pytest.mark.parametrize("data", ["text\tother\tlabel\ncaf\xe9\tx\t1\n".encode("latin-1"), b"\x00\x01\x02\x03"])
def test_quantize_with_an_undecodable_task_file_is_one_line(finetuned, tmp_path, capsys, data):
    folder = _copy(finetuned["data"], tmp_path / "data")
    (folder / "train.tsv").write_bytes(data)
    _fails(_quantize_argv({**finetuned, "data": folder}, tmp_path / "o"), capsys,
           "not UTF-8" if data[:1] != b"\x00" else "binary")  # fmt: skip


# ----------------------------------------------------------------------------- export


@needs_deploy
def test_export_refuses_an_existing_model_onnx_unless_overwrite(finetuned, tmp_path, capsys):
    out = tmp_path / "exported"
    out.mkdir()
    (out / "model.onnx").write_bytes(b"my own model")
    _fails(["export", "--model", finetuned["model"], "--out", out], capsys, "model.onnx already exists", "--overwrite")
    assert (out / "model.onnx").read_bytes() == b"my own model" and not (out / "export.json").exists()
    (out / "model.onnx").unlink()
    (out / "export.json").write_text("{}")
    _fails(["export", "--model", finetuned["model"], "--out", out], capsys, "export.json already exists")
    (out / "model.onnx").write_bytes(b"my own model")
    assert main(["export", "--model", str(finetuned["model"]), "--out", str(out), "--overwrite"]) == 0
    assert (out / "model.onnx").stat().st_size > 1000 and json.loads((out / "export.json").read_text())["kind"] == "fp32"
    _fails(["export", "--model", finetuned["model"], "--out", out / "model.onnx"], capsys, "is a file")


@needs_deploy
def test_export_broken_models_are_one_line(finetuned, tmp_path, capsys):
    for name, data, words in BROKEN_FILES:
        folder = _broken_model(finetuned, tmp_path, name, data)
        _fails(["export", "--model", folder], capsys, words)
        assert not (folder / "model.onnx").exists()


# ----------------------------------------------------------------------------- predict


def _predict_argv(model, data, out, *extra):
    return ["predict", "--model", model, "--task", "good-word", "--data-dir", data, "--text-column", "text", "--out",
            out, *extra]  # fmt: skip


def test_predict_refuses_an_existing_submission_file_unless_overwrite(finetuned, tmp_path, capsys):
    out = tmp_path / "sub"
    out.mkdir()
    (out / "good-word.tsv").write_text("my earlier predictions\n")
    (out / "other.txt").write_text("left alone\n")
    _fails(_predict_argv(finetuned["model"], finetuned["data"], out), capsys, "good-word.tsv already exists", "--overwrite")
    assert (out / "good-word.tsv").read_text() == "my earlier predictions\n"
    assert main([str(a) for a in _predict_argv(finetuned["model"], finetuned["data"], out, "--overwrite")]) == 0
    lines = (out / "good-word.tsv").read_text().splitlines()
    assert lines[0] == "index\tprediction" and len(lines) == 65 and (out / "other.txt").read_text() == "left alone\n"
    _fails(_predict_argv(finetuned["model"], finetuned["data"], out / "other.txt"), capsys, "is a file")


def test_predict_never_writes_over_its_test_file(finetuned, tmp_path, capsys):
    data = _copy(finetuned["data"], tmp_path / "data")
    before = _snapshot(data)
    argv = ["predict", "--model", finetuned["model"], "--task", "test", "--data-dir", data, "--text-column", "text",
            "--out", data]  # fmt: skip
    _fails(argv, capsys, "would destroy the input")
    _fails([*argv, "--overwrite"], capsys, "would destroy the input")
    assert _snapshot(data) == before


def test_predict_broken_models_are_one_line(finetuned, tmp_path, capsys):
    for name, data, words in BROKEN_FILES:
        _fails(_predict_argv(_broken_model(finetuned, tmp_path, name, data), finetuned["data"], tmp_path / "o"), capsys,
               words)  # fmt: skip
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("data", ["text\tother\tlabel\ncaf\xe9\tx\t1\n".encode("latin-1"), b"\x00\x01\x02\x03"])
def test_predict_with_an_undecodable_test_file_is_one_line(finetuned, tmp_path, capsys, data):
    folder = _copy(finetuned["data"], tmp_path / "data")
    (folder / "test.tsv").write_bytes(data)
    _fails(_predict_argv(finetuned["model"], folder, tmp_path / "o"), capsys,
           "not UTF-8" if data[:1] != b"\x00" else "binary")  # fmt: skip


def _tiny_onnx(path: Path, outputs: int) -> None:
    """A valid ONNX classifier with ``outputs`` logits per sequence (the sum of its attention mask, repeated)."""
    import onnx
    from onnx import TensorProto, helper

    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "seq"])
              for n in ("input_ids", "attention_mask", "token_type_ids")]  # fmt: skip
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", outputs])
    ones = helper.make_tensor("ones", TensorProto.FLOAT, [1, outputs], [1.0] * outputs)
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    nodes = [helper.make_node("Cast", ["attention_mask"], ["mask"], to=TensorProto.FLOAT),
             helper.make_node("ReduceSum", ["mask", "axes"], ["length"], keepdims=1),
             helper.make_node("MatMul", ["length", "ones"], ["logits"])]  # fmt: skip
    graph = helper.make_graph(nodes, "tiny", inputs, [logits], initializer=[ones, axes])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


@needs_deploy
def test_predict_onnx_with_a_broken_or_foreign_model_onnx_is_one_line(finetuned, tmp_path, capsys):
    folder = _copy(finetuned["model"], tmp_path / "model")
    out = tmp_path / "o"
    _tiny_onnx(folder / "model.onnx", 2)  # the right number of outputs: predictions are written
    assert main([str(a) for a in _predict_argv(folder, finetuned["data"], out, "--runtime", "onnx")]) == 0
    assert len((out / "good-word.tsv").read_text().splitlines()) == 65
    valid = (folder / "model.onnx").read_bytes()
    for data in (b"", valid[: len(valid) // 2], b"\x00\x01 not a protobuf \xff" * 10):
        (folder / "model.onnx").write_bytes(data)
        _fails(_predict_argv(folder, finetuned["data"], tmp_path / "o2", "--runtime", "onnx"), capsys,
               "not a valid ONNX model", "lvbert export")  # fmt: skip
    _tiny_onnx(folder / "model.onnx", 3)  # another model's export: 3 logits for 2 labels
    _fails(_predict_argv(folder, finetuned["data"], tmp_path / "o2", "--runtime", "onnx"), capsys, "gives 3 outputs",
           "has 2")  # fmt: skip
    assert not (tmp_path / "o2").exists()


@pytest.mark.skipif(importlib.util.find_spec("torchao") is None, reason="torchao is not installed")
def test_default_predict_does_not_import_torchao(finetuned, tmp_path):
    argv = [str(a) for a in _predict_argv(finetuned["model"], finetuned["data"], tmp_path / "o")]
    code = (f"import sys; from lvbert.cli import main; rc = main({argv!r}); "
            "print('torchao loaded' if 'torchao' in sys.modules else 'no torchao'); sys.exit(rc)")  # fmt: skip
    import lvbert

    here = str(Path(lvbert.__file__).parents[1])  # the lvbert under test
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([here, os.environ.get("PYTHONPATH", "")])}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=env)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().endswith("no torchao") and "torchao" not in p.stderr, (p.stdout, p.stderr)
    assert (tmp_path / "o" / "good-word.tsv").is_file()
    # the torchao runtime still imports it when asked for
    code = "import sys, lvbert; from lvbert.export.torchao import require_torchao; require_torchao(); print('torchao' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          env=env).stdout.strip() == "True"  # fmt: skip


# ----------------------------------------------------------------------------- nas train


def test_nas_train_refuses_a_users_folder_and_its_inputs_as_out(nas_teacher, real_data, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine\n")
    _fails(_train_argv(nas_teacher, real_data, mine), capsys, "already exists", "--overwrite")
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    teacher_before = _snapshot(nas_teacher)
    for out in (nas_teacher, real_data, nas_teacher / "sub"):
        _fails(_train_argv(nas_teacher, real_data, out, "--overwrite"), capsys, "would destroy the input")
    assert _snapshot(nas_teacher) == teacher_before
    _fails(_train_argv(nas_teacher, real_data, mine, "--resume"), capsys, "cannot resume")
    _fails(_train_argv(nas_teacher, real_data, tmp_path / "o", "--lr", "-1"), capsys, "--lr must be positive")
    assert not (tmp_path / "o").exists()


def test_nas_train_broken_inputs_are_one_line(nas_teacher, real_data, tmp_path, capsys):
    for folder, words in _data_cases(real_data, tmp_path):
        _fails(_train_argv(nas_teacher, folder, tmp_path / "o"), capsys, *words)
    for name, data, words in BROKEN_FILES:
        teacher = _copy(nas_teacher, tmp_path / f"t-{name}-{len(data)}-{data[:1].hex()}")
        (teacher / name).write_bytes(data)
        _fails(_train_argv(teacher, real_data, tmp_path / "o"), capsys, words)
    assert not (tmp_path / "o").exists()


def test_torch_save_on_a_full_disk_is_one_line(small_fs):
    """What torch.save raises on a full disk (no errno, no 'no space': "[enforce fail at inline_container.cc]
    unexpected pos"), as a checkpoint's optimizer.pt meets it after its model.safetensors still fitted."""
    from lvbert.errors import write_failure

    (small_fs / "filler").write_bytes(b"0" * (1024 * 1024 - 16384))
    with pytest.raises(RuntimeError) as e:
        torch.save({"exp_avg": torch.zeros(100_000)}, small_fs / "optimizer.pt")
    message = write_failure(e.value)
    assert message is not None and message.startswith("cannot write") and "no space left" in message, (e.value, message)


def test_nas_train_full_disk_while_checkpointing_is_one_line(nas_teacher, real_data, tmp_path, capsys, monkeypatch):
    import lvbert.training.checkpoint as checkpoint

    def short_write(*a, **k):  # what torch.save raises when the disk fills while it writes (see the test above)
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")

    monkeypatch.setattr(checkpoint.torch, "save", short_write)
    _fails(_train_argv(nas_teacher, real_data, tmp_path / "o", "--blocks", "0", "--bin-by", "params"), capsys,
           "cannot write", "no space left", code=1)  # fmt: skip


@pytest.fixture
def fs_2mb(tmp_path):
    """A 2 MB tmpfs: a tiny NAS block's checkpoint model.safetensors (1.4 MB) fits, its optimizer.pt (2.9 MB) not."""
    mnt = tmp_path / "fs"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_nas_train_on_a_full_disk_is_one_line_end_to_end(nas_teacher, real_data, fs_2mb):
    import lvbert

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(lvbert.__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    argv = _train_argv(nas_teacher, real_data, fs_2mb / "run", "--blocks", "0", "--bin-by", "params", "--latency-calibrate", "0")
    p = subprocess.run([sys.executable, "-m", "lvbert", *map(str, argv)], capture_output=True, text=True, timeout=600, env=env)
    assert p.returncode == 1, p.stderr
    _one_line(p.stderr, "cannot write", "no space left")


# ----------------------------------------------------------------------------- nas search


def _search_argv(run, data, out, *extra):
    return ["nas", "search", "--supernet", run, "--data", data, "--targets", "300K", "--top", "2", "--eval-sequences",
            "8", "--measure", "0", "--out", out, *extra]  # fmt: skip


def test_nas_search_checks_targets_before_loading_anything(nas_run, real_data, tmp_path, capsys, monkeypatch):
    import lvbert.recipes.nas as nas

    def no_loading(*a, **k):
        raise AssertionError("the weights were loaded before the targets were checked")

    monkeypatch.setattr(nas, "load_nas_run", no_loading)
    _fails(_search_argv(nas_run, real_data, tmp_path / "s", "--targets", "10K"), capsys, "target 10K",
           "no combination", "the smallest has")  # fmt: skip
    fastest = _smallest_of(nas_run)[1]  # calibrated table times (a fitted offset may even make them tiny)
    if fastest > 2e-6:
        _fails(_search_argv(nas_run, real_data, tmp_path / "s", "--max-latency", f"{fastest / 2}"), capsys,
               "--max-latency", "the fastest takes")  # fmt: skip
    with pytest.raises(AssertionError, match="weights were loaded"):
        main([str(a) for a in _search_argv(nas_run, real_data, tmp_path / "s")])  # a target that fits goes on
    assert not (tmp_path / "s").exists()


def _smallest_of(run: Path, per_block: int | None = None):
    """(params, ms) of :func:`lvbert.nas.run.smallest_combination` over the first ``per_block`` candidates of each
    block, with what it needs: (space, rows, size, lut)."""
    from lvbert.model_dir import load_model_config
    from lvbert.nas.latency import NasLatencyTable
    from lvbert.nas.run import LATENCY_JSON, read_nas_run, smallest_combination

    space, shared, rows = read_nas_run(run)
    rows = [r[:per_block] for r in rows]
    tc = load_model_config(shared["teacher"])
    size = space.student_size(tc.embedding_size, tc.vocab_size, tc.max_position_embeddings, tc.type_vocab_size)
    lut = NasLatencyTable.from_dict(json.loads((run / LATENCY_JSON).read_text()))
    return (*smallest_combination(space, rows, size, lut), (space, rows, size, lut))


def test_smallest_combination_is_the_brute_force_minimum(nas_run):
    import itertools

    params, ms, (space, few, size, lut) = _smallest_of(nas_run, 4)  # a few per block: brute force stays small
    combos = list(itertools.product(*few))
    assert params == min(space.arch_params([r["block"] for r in c], size) for c in combos)
    assert ms == pytest.approx(min(lut.predict([r["block"] for r in c]) for c in combos))


def test_nas_search_refuses_existing_outputs_and_its_inputs(nas_run, real_data, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine\n")
    _fails(_search_argv(nas_run, real_data, mine), capsys, "already exists", "--overwrite")
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    before = _snapshot(nas_run)
    for out in (nas_run, nas_run / "models", real_data):
        _fails(_search_argv(nas_run, real_data, out, "--overwrite"), capsys, "would destroy the input")
    assert _snapshot(nas_run) == before
    assert main([str(a) for a in _search_argv(nas_run, real_data, mine, "--overwrite")]) == 0
    assert (mine / "results.json").is_file() and not (mine / "notes.txt").exists()


def test_nas_search_broken_inputs_are_one_line(nas_run, real_data, tmp_path, capsys):
    for folder, words in _data_cases(real_data, tmp_path):
        _fails(_search_argv(nas_run, folder, tmp_path / "o"), capsys, *words)
    cases = [("nas.json", '{"space": "caf\xe9"}'.encode("latin-1"), "not UTF-8"), ("nas.json", b"", "not valid JSON"),
             ("latency.json", b"\x00\x01\x02", "binary"), ("block-0/candidates.json", b"[1, 2", "not valid JSON")]  # fmt: skip
    for name, data, words in cases:
        run = _copy(nas_run, tmp_path / f"run-{name.replace('/', '-')}-{len(data)}")
        (run / name).write_bytes(data)
        _fails(_search_argv(run, real_data, tmp_path / "o"), capsys, name.split("/")[-1], words)
    assert not (tmp_path / "o").exists()
