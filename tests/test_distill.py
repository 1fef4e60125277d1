"""TinyBERT distillation: the losses by hand, the layer mapping, attention capture from a Hugging Face
teacher, augmentation (determinism, layout), resume equality, and a tiny end-to-end run."""

from __future__ import annotations

import json

import pytest
import torch

from lvbert.cli import main
from lvbert.objectives.distill import (
    DistillLoss,
    Teacher,
    TeacherOutputs,
    align,
    hidden_widths,
    map_layers,
    masked_score_mse,
    slot_pair_layers,
    soft_cross_entropy,
    transformer_layers,
)

# ----------------------------------------------------------------------------- mapping


def test_uniform_mapping_for_1_2_and_12_pairs_against_a_4_layer_teacher():
    assert map_layers(1, 4) == [0, 4]
    assert map_layers(2, 4) == [0, 2, 4]
    assert map_layers(4, 12) == [0, 3, 6, 9, 12]  # TinyBERT-4 of BERT-base
    assert map_layers(12, 4) == [0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]  # a deeper student: the covering layer
    assert map_layers(2, 4, "top") == [0, 3, 4] and map_layers(2, 4, "bottom") == [0, 1, 2]
    assert map_layers(12, 4, "top") == [0] + [1] * 9 + [2, 3, 4]
    with pytest.raises(ValueError):
        map_layers(2, 4, "middle")


def test_alignment_of_a_mixed_student_with_a_bert_teacher():
    student = slot_pair_layers("CA FA CF AI")  # pairs: CA, FA, CF, AI -> A slots 1, 3, 6
    assert student.hidden == (0, 2, 4, 6, 8) and student.attention == ((), (0,), (1,), (), (2,))
    a = align(student, transformer_layers(8))
    assert a.mapping == [0, 2, 4, 6, 8]
    assert a.hidden == [(0, 0), (2, 2), (4, 4), (6, 6), (8, 8)]
    assert a.attention == [(0, 1), (1, 3), (2, 7)]  # each A slot against its pair's teacher layer
    odd = slot_pair_layers("CAF")  # 3 slots: (C A) (F)
    assert odd.hidden == (0, 2, 3) and odd.num_layers == 2
    teacher = slot_pair_layers("AF" * 4)  # an lvbert teacher: its pairs are its layers
    assert align(slot_pair_layers("CF CF"), teacher).attention == []  # no A in the student: hidden states only


# ----------------------------------------------------------------------------- losses by hand


def test_soft_cross_entropy_by_hand():
    s = torch.tensor([[1.0, 2.0, 0.5]])
    t = torch.tensor([[0.0, 3.0, 1.0]])
    p = torch.softmax(t / 2, -1)
    expected = -(p * torch.log_softmax(s / 2, -1)).sum()
    assert torch.allclose(soft_cross_entropy(s, t, 2.0), expected)
    assert torch.allclose(soft_cross_entropy(torch.tensor([[1.5]]), torch.tensor([[0.5]])), torch.tensor(1.0))


def test_attention_mse_zeroes_padded_keys_by_hand():
    a_s = torch.tensor([[[[1.0, 2.0], [3.0, -1e30]]]])
    a_t = torch.tensor([[[[0.0, 4.0], [3.0, -5.0]]]])
    mask = torch.tensor([[1, 0]])  # the second key is padding
    # entries at key 1 are zeroed on both sides: differences (1-0), 0, (3-3), 0
    assert torch.allclose(masked_score_mse(a_s, a_t, mask), torch.tensor((1.0 + 0 + 0 + 0) / 4))


def test_hidden_loss_through_the_shared_projection_by_hand():
    align_ = align(slot_pair_layers("AF"), transformer_layers(1))
    loss = DistillLoss(align_, 2, 3, projection="shared")
    with torch.no_grad():
        loss.proj[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        loss.proj[0].bias.zero_()
    hs = (torch.tensor([[[1.0, 2.0]]]), torch.tensor([[[9.0, 9.0]]]), torch.tensor([[[0.0, 1.0]]]))  # 1 pair: ends at 2
    ht = (torch.tensor([[[1.0, 2.0, 0.0]]]), torch.tensor([[[0.0, 0.0, 1.0]]]))
    # layer 0: proj = (1, 2, 3) vs (1, 2, 0): 9/3; layer 1: proj = (0, 1, 1) vs (0, 0, 1): 1/3
    assert torch.allclose(loss.hidden_loss(hs, ht), torch.tensor(3.0 + 1.0 / 3))
    per = DistillLoss(align_, 2, 3, projection="per-layer")
    assert len(per.proj) == 2


def test_heads_that_differ_are_compared_as_head_means():
    align_ = align(slot_pair_layers("AF"), transformer_layers(1))
    loss = DistillLoss(align_, 4, 4)
    a_s = (torch.ones(1, 2, 3, 3),)
    a_t = (torch.cat([torch.zeros(1, 2, 3, 3), 2 * torch.ones(1, 2, 3, 3)], 1),)  # 4 heads, mean 1
    assert torch.allclose(loss.attention_loss(a_s, a_t), torch.tensor(0.0))


# ----------------------------------------------------------------------------- students whose width changes

NAS_ARCH = "P(hidden=32) C A P(hidden=64) F A F"  # 4 pairs: (P C) (A P) (F A) (F), width 64 -> 32 -> 64


def test_hidden_widths_are_the_shapes_of_the_hidden_states():
    from lvbert.modeling_lvbert import LvBertConfig, LvBertForMaskedLM

    config = LvBertConfig.from_size("tiny", arch=NAS_ARCH, vocab_size=50)
    assert hidden_widths(config) == [64, 32, 32, 32, 64, 64, 64, 64]
    torch.manual_seed(0)
    out = LvBertForMaskedLM(config).eval()(input_ids=torch.randint(5, 50, (2, 7)), output_hidden_states=True)
    assert [h.shape[-1] for h in out.hidden_states] == hidden_widths(config)
    assert hidden_widths(LvBertConfig.from_size("tiny", arch="CAFA", vocab_size=50)) == [64] * 5


def test_a_student_of_changing_width_gets_per_layer_projections_of_its_widths():
    from lvbert.modeling_lvbert import LvBertConfig, LvBertForMaskedLM

    config = LvBertConfig.from_size("tiny", arch=NAS_ARCH, vocab_size=50)
    alignment = align(slot_pair_layers(config.arch), transformer_layers(4))
    assert [s for s, _ in alignment.hidden] == [0, 2, 4, 6, 7]
    loss = DistillLoss(alignment, hidden_widths(config), 48, projection="per-layer")
    assert [p.in_features for p in loss.proj] == [64, 32, 64, 64, 64] and {p.out_features for p in loss.proj} == {48}
    torch.manual_seed(0)
    ids = torch.randint(5, 50, (2, 7))
    student = LvBertForMaskedLM(config)
    out = student(input_ids=ids, output_hidden_states=True, output_attentions=True)
    teacher = TeacherOutputs(tuple(torch.randn(2, 7, 48) for _ in range(5)),
                             tuple(torch.randn(2, 2, 7, 7) for _ in range(4)))  # fmt: skip
    res = loss(out, teacher)
    res["loss"].backward()
    assert torch.isfinite(res["loss"]) and float(res["hidden_loss"]) > 0 and float(res["attention_loss"]) > 0
    assert all(p.weight.grad is not None for p in loss.proj)
    assert all(q.grad is not None for q in student.lvbert.encoder.slots[0].parameters())  # through the P slot
    with pytest.raises(ValueError, match="per-layer"):
        DistillLoss(alignment, hidden_widths(config), 48, projection="shared")
    with pytest.raises(ValueError, match="equal widths"):
        DistillLoss(alignment, hidden_widths(config), 64, projection="none")


def test_equal_widths_as_a_list_are_bit_identical_to_one_width():
    alignment = align(slot_pair_layers("CAFA"), transformer_layers(2))
    for projection in ("shared", "per-layer", "none"):
        torch.manual_seed(3)
        a, after_a = DistillLoss(alignment, 64, 64, projection), torch.rand(1)
        torch.manual_seed(3)
        b, after_b = DistillLoss(alignment, [64] * 5, 64, projection), torch.rand(1)
        sa, sb = a.state_dict(), b.state_dict()
        assert list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)
        assert torch.equal(after_a, after_b)  # the same random draws: the run after it is unchanged too


# ----------------------------------------------------------------------------- a Hugging Face teacher


def _hf_bert(vocab: int, layers: int = 4, hidden: int = 32, heads: int = 2, labels: int | None = None):
    from transformers import BertConfig, BertForSequenceClassification, BertModel

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                     intermediate_size=2 * hidden, max_position_embeddings=64, num_labels=labels or 2)  # fmt: skip
    return (BertForSequenceClassification(cfg) if labels else BertModel(cfg)).eval()


def test_attention_capture_from_an_hf_teacher_equals_a_manual_computation():
    model = _hf_bert(100)
    teacher = Teacher(model)
    ids = torch.randint(5, 100, (2, 9))
    mask = torch.ones_like(ids)
    mask[0, 6:] = 0
    out = teacher(ids, mask)
    assert len(out.attentions) == 4 and len(out.hidden_states) == 5
    # by hand: layer 2's query/key on its input hidden state
    attn = model.encoder.layer[2].attention.self
    x = out.hidden_states[2]
    q = attn.query(x).view(2, 9, 2, 16).transpose(1, 2)
    k = attn.key(x).view(2, 9, 2, 16).transpose(1, 2)
    scores = q @ k.transpose(-1, -2) / 4.0
    keep = mask.bool()[:, None, None, :].expand_as(scores)
    assert torch.allclose(out.attentions[2][keep], scores[keep], atol=1e-5)
    # and the softmax of the captured scores is what eager attention returns
    eager = _hf_bert(100)
    eager.config._attn_implementation = "eager"
    probs = eager(input_ids=ids, attention_mask=mask, output_attentions=True).attentions[2]
    assert torch.allclose(out.attentions[2].softmax(-1), probs, atol=1e-5)


# ----------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def teachers(real_data, real_tokenizer, tmp_path_factory):
    """A tiny lvbert MLM teacher pre-trained on the real corpus, and a random HF BERT with the same tokenizer."""
    from transformers import AutoTokenizer

    from lvbert.recipes.pretrain import PretrainConfig, pretrain

    root = tmp_path_factory.mktemp("teachers")
    lv = pretrain(PretrainConfig(data=str(real_data), out=str(root / "lv"), arch="AFAFAFAF", size="tiny",
                                 objective="mlm", steps=30, batch_size=16, lr=2e-3, warmup_steps=3, eval_every=100,
                                 eval_sequences=8, progress=False))  # fmt: skip
    tok = AutoTokenizer.from_pretrained(real_tokenizer)
    hf = _hf_bert(len(tok), layers=4, hidden=64)
    hf.save_pretrained(root / "hf")
    tok.save_pretrained(root / "hf")
    return {"lv": lv, "hf": root / "hf"}


def _general(teacher, data, out, *extra):
    return ["distill", "--teacher", str(teacher), "--arch", "CA FC", "--size", "tiny", "--data", str(data), "--steps",
            "6", "--batch-size", "8", "--save-every", "3", "--log-every", "1", "--eval-every", "100",
            "--eval-sequences", "8", "--lr", "1e-3", "--no-progress", "--out", str(out), *extra]  # fmt: skip


@pytest.mark.parametrize("which", ["lv", "hf"])
def test_general_distillation_lowers_the_losses_and_the_output_loads(teachers, real_data, tmp_path, which):
    from transformers import AutoModel

    out = tmp_path / "student"
    assert main(_general(teachers[which], real_data, out, "--steps", "25", "--save-every", "25")) == 0
    recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in recs if "loss" in r]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5  # learns the teacher's states
    model = AutoModel.from_pretrained(out)
    assert model.config.arch == "CAFC"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["alignment"]["hidden"][0] == [0, 0]


def test_general_distillation_resume_is_bit_identical(teachers, real_data, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    import lvbert.training.loop as loop

    straight = tmp_path / "a"
    assert main(_general(teachers["lv"], real_data, straight)) == 0
    real_save = loop.save_checkpoint

    def save_then_die(out_dir, step, *a, **k):
        path = real_save(out_dir, step, *a, **k)
        if step == 3:
            raise KeyboardInterrupt
        return path

    monkeypatch.setattr(loop, "save_checkpoint", save_then_die)
    assert main(_general(teachers["lv"], real_data, tmp_path / "b")) == 130
    monkeypatch.setattr(loop, "save_checkpoint", real_save)
    assert main(_general(teachers["lv"], real_data, tmp_path / "b", "--resume")) == 0

    def losses(run):
        return [(r["step"], r["loss"]) for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in r]

    assert losses(straight) == losses(tmp_path / "b")
    a, b = load_file(straight / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_task_distillation_beats_its_starting_point(tmp_path):
    """A teacher fine-tuned on a synthetic task, a student of another arch with the same tokenizer:
    after task distillation the student scores well above its own starting point."""
    from test_finetune_recipe import make_model_dir, write_synthetic

    from lvbert.recipes.finetune import finetune

    data = write_synthetic(tmp_path / "task", n_train=256, n_dev=64)
    teacher = tmp_path / "teacher"
    finetune(make_model_dir(tmp_path / "t0", arch="AFAF"), "good-word", data, teacher, lr=1e-3, batch_size=16,
             epochs=3, progress=False, text_column="text", layer_decay=1.0)  # fmt: skip
    t_acc = json.loads((teacher / "results.json").read_text())["summary"]["dev/accuracy"]["median"]
    student = make_model_dir(tmp_path / "student", arch="CAFC", seed=1)
    # the starting point: the student's classifier before task distillation, scored on dev
    start = finetune(student, "good-word", data, tmp_path / "start", max_steps=1, lr=1e-9, batch_size=16,
                     progress=False, text_column="text")  # fmt: skip
    start_acc = start["summary"]["dev/accuracy"]["median"]
    argv = ["distill", "--teacher", str(teacher), "--student", str(student), "--task", "good-word", "--data-dir",
            str(data), "--text-column", "text", "--epochs", "2", "--pred-epochs", "3", "--batch-size", "16",
            "--lr", "1e-3", "--no-progress", "--out", str(tmp_path / "task-student")]  # fmt: skip
    assert main(argv) == 0
    res = json.loads((tmp_path / "task-student" / "results.json").read_text())
    acc = res["summary"]["dev/accuracy"]["median"]
    assert t_acc > 0.85, t_acc
    assert acc > start_acc + 0.2, (start_acc, acc, t_acc)
    written = main(["predict", "--model", str(tmp_path / "task-student"), "--task", "good-word", "--data-dir",
                    str(data), "--text-column", "text", "--out", str(tmp_path / "sub")])  # fmt: skip
    assert written == 0 and (tmp_path / "sub" / "good-word.tsv").exists()


def test_bad_teachers_are_one_line(teachers, real_data, other_vocab_data, tmp_path, capsys):
    (tmp_path / "not-a-model").mkdir()  # beside --out: an --out inside the teacher's folder is refused first
    cases = [
        (_general(tmp_path / "not-a-model", real_data, tmp_path / "o1"), "not a model directory"),
        (_general(teachers["lv"], other_vocab_data, tmp_path / "o2"), "vocabulary"),
        (["distill", "--teacher", str(teachers["lv"]), "--student", str(teachers["lv"]), "--task", "polarity",
          "--out", str(tmp_path / "o3")], "not fine-tuned on a task"),  # fmt: skip
        (["distill", "--teacher", str(teachers["lv"]), "--out", str(tmp_path / "o4")], "give --data"),
    ]
    for argv, words in cases:
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and err.startswith("lvbert: error:") and words in err, err
    assert not any((tmp_path / f"o{i}").exists() for i in range(1, 5))


def test_a_student_larger_than_its_teacher_is_allowed_with_a_warning(teachers, real_data, tmp_path, capsys):
    argv = _general(teachers["lv"], real_data, tmp_path / "big", "--steps", "1")
    argv[argv.index("--arch") + 1] = "CAFCAFCAFCAFCAFC"
    assert main(argv) == 0
    assert "larger than the teacher" in capsys.readouterr().err


def _nas_student(path, tokenizer, seed: int = 1):
    """A random tiny MLM model of :data:`NAS_ARCH` (width 64 -> 32 -> 64) saved with ``tokenizer``."""
    from lvbert.modeling_lvbert import LvBertConfig, LvBertForMaskedLM

    config = LvBertConfig.from_size("tiny", arch=NAS_ARCH, vocab_size=len(tokenizer),
                                    pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    torch.manual_seed(seed)
    LvBertForMaskedLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_general_distillation_starts_from_a_student_folder_of_changing_width(teachers, real_data, real_tokenizer,
                                                                             tmp_path, capsys):  # fmt: skip
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    student = _nas_student(tmp_path / "nas", AutoTokenizer.from_pretrained(real_tokenizer))
    out = tmp_path / "general"
    argv = _general(teachers["hf"], real_data, out, "--student", str(student), "--steps", "3", "--lr", "1e-9",
                    "--weight-decay", "0")  # fmt: skip
    argv[argv.index("--arch") + 1] = "AFAF"  # ignored with --student
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "per-layer" in printed and f"from {student}" in printed
    written = json.loads((out / "config.json").read_text())
    assert written["arch"] == NAS_ARCH and written["hidden_size"] == 64
    before, after = load_file(student / "model.safetensors"), load_file(out / "model.safetensors")
    assert set(before) == set(after)
    assert all(torch.allclose(before[k], after[k], atol=1e-6) for k in before)  # the folder's weights, barely moved
    ckpt = sorted((out / "checkpoints").glob("step-*"))[-1]
    proj = {k: v for k, v in load_file(ckpt / "model.safetensors").items() if k.startswith("loss.proj.")}
    assert [proj[f"loss.proj.{i}.weight"].shape[1] for i in range(5)] == [64, 32, 64, 64, 64]
    run_config = (out / "run_config.yaml").read_text()
    assert f"student: {student}" in run_config and "projection: per-layer" in run_config


def test_task_distillation_into_a_student_of_changing_width(tmp_path, capsys):
    from test_finetune_recipe import make_model_dir, write_synthetic

    from lvbert.recipes.finetune import finetune

    data = write_synthetic(tmp_path / "task", n_train=48, n_dev=16)
    teacher = tmp_path / "teacher"
    finetune(make_model_dir(tmp_path / "t0", arch="AFAF"), "good-word", data, teacher, lr=1e-3, batch_size=16,
             epochs=1, progress=False, text_column="text", layer_decay=1.0)  # fmt: skip
    student = make_model_dir(tmp_path / "student", arch=NAS_ARCH, seed=1)
    capsys.readouterr()
    argv = ["distill", "--teacher", str(teacher), "--student", str(student), "--task", "good-word", "--data-dir",
            str(data), "--text-column", "text", "--epochs", "1", "--pred-epochs", "1", "--batch-size", "16",
            "--lr", "1e-3", "--no-progress", "--out", str(tmp_path / "task-student")]  # fmt: skip
    assert main(argv) == 0
    assert "per-layer" in capsys.readouterr().out
    res = json.loads((tmp_path / "task-student" / "results.json").read_text())
    assert 0.0 <= res["summary"]["dev/accuracy"]["median"] <= 1.0
    assert json.loads((tmp_path / "task-student" / "config.json").read_text())["arch"] == NAS_ARCH


def test_a_student_folder_of_another_vocabulary_is_one_line(teachers, real_data, other_vocab_data, tmp_path, capsys):
    from lvbert.data.packed import open_data

    student = _nas_student(tmp_path / "nas", open_data(other_vocab_data).tokenizer)
    capsys.readouterr()
    argv = _general(teachers["lv"], real_data, tmp_path / "o", "--student", str(student))
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("lvbert: error:") and "the student's vocabulary" in err, err
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------- augmentation


def test_augmentation_is_deterministic_and_keeps_the_layout(teachers, tmp_path, capsys):
    from test_finetune_recipe import write_synthetic

    data = write_synthetic(tmp_path / "task", n_train=12, n_dev=6)
    (data / "test.tsv").write_text("text\nsome words here\n")
    argv = ["augment", "--model", str(teachers["lv"]), "--task", "good-word", "--data-dir", str(data), "--text-column",
            "text", "--copies", "3", "--top-k", "5", "--no-progress"]  # fmt: skip
    assert main([*argv, "--out", str(tmp_path / "a1")]) == 0
    assert main([*argv, "--out", str(tmp_path / "a2")]) == 0
    a1, a2 = (tmp_path / "a1" / "train.tsv").read_text(), (tmp_path / "a2" / "train.tsv").read_text()
    assert a1 == a2  # the same seed: the same file
    assert main([*argv, "--seed", "1", "--out", str(tmp_path / "a3")]) == 0
    assert (tmp_path / "a3" / "train.tsv").read_text() != a1
    original = (data / "train.tsv").read_text().splitlines()
    lines = a1.splitlines()
    assert lines[: len(original)] == original  # the original rows first, unchanged
    assert len(original) < len(lines) <= len(original) + 3 * (len(original) - 1)
    header = original[0].split("\t")
    label = header.index("label")
    by_text = {row.split("\t")[header.index("text")]: row.split("\t")[label] for row in original[1:]}
    assert all(len(row.split("\t")) == len(header) for row in lines)
    for f in ("dev.tsv", "test.tsv"):  # never augmented
        assert (tmp_path / "a1" / f).read_bytes() == (data / f).read_bytes()
    assert len(set(by_text.values())) >= 2


def test_augmentation_bad_input(teachers, tmp_path, capsys):
    from test_finetune_recipe import write_synthetic

    data = write_synthetic(tmp_path / "task", n_train=8, n_dev=4)
    base = ["augment", "--task", "good-word", "--data-dir", str(data), "--text-column", "text", "--no-progress"]
    for extra, words in (
        (["--model", str(data), "--out", str(tmp_path / "o")], "not a model directory"),
        (["--model", str(teachers["lv"]), "--out", str(tmp_path / "o"), "--copies", "0"], "at least 1"),
        (["--model", str(teachers["lv"]), "--out", str(data)], "is also the input --data-dir"),
    ):
        capsys.readouterr()
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("lvbert: error:") and words in err, err
    assert not (tmp_path / "o").exists()
