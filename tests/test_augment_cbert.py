"""Conditional BERT augmentation (and the random floor): label embeddings in place of segment
embeddings, resizing for 3+ labels, masks never on special tokens, determinism, dev and test
untouched, a tiny augment + fine-tune run, and bad input."""

from __future__ import annotations

import json

import pytest
import torch

from lvbert.cli import main
from lvbert.augment import generate_cbert, make_conditional


def _mlm(vocab: int = 300, types: int = 2):
    from lvbert.modeling_lvbert import LvBertConfig, LvBertForMaskedLM

    torch.manual_seed(0)
    return LvBertForMaskedLM(LvBertConfig.from_size("tiny", arch="CAFA", vocab_size=vocab, type_vocab_size=types)).eval()


def test_label_embeddings_replace_segment_embeddings_and_resize_for_three_labels():
    model = _mlm()
    ids = torch.randint(5, 300, (1, 8))
    with torch.no_grad():
        a = model(input_ids=ids, token_type_ids=torch.zeros_like(ids)).logits
        b = model(input_ids=ids, token_type_ids=torch.ones_like(ids)).logits
    assert not torch.allclose(a, b)  # the label (as token type) changes the prediction
    make_conditional(model, 3)
    assert model.config.type_vocab_size == 3 and model.lvbert.embeddings.token_type_embeddings.num_embeddings == 3
    with torch.no_grad():
        c = model(input_ids=ids, token_type_ids=torch.full_like(ids, 2)).logits
    assert c.shape == a.shape and not torch.allclose(a, c)
    two = _mlm()
    before = two.lvbert.embeddings.token_type_embeddings.weight.clone()
    make_conditional(two, 2)  # binary tasks reuse the two segment rows
    assert torch.equal(two.lvbert.embeddings.token_type_embeddings.weight, before)


def test_generation_never_masks_special_tokens_and_is_deterministic(real_tokenizer, monkeypatch):
    from lvbert.data.tokenizer import load_tokenizer

    tok = load_tokenizer(real_tokenizer)
    model = _mlm(len(tok))
    seen_inputs = []
    real_forward = model.forward

    def spy(**kw):
        seen_inputs.append(kw["input_ids"].clone())
        return real_forward(**kw)

    monkeypatch.setattr(model, "forward", spy)
    texts = ["the parser reads a file and returns a list of strings", "a socket sends bytes"]
    a = generate_cbert(model, tok, texts, [0, 1], 3, mask_ratio=1)
    for inputs in seen_inputs:  # mask_ratio 1: every piece masked, never [CLS] or [SEP]
        for row in inputs:
            real = row[row != tok.pad_token_id]
            assert real[0] == tok.cls_token_id and real[-1] == tok.sep_token_id
            assert (real[1:-1] == tok.mask_token_id).all()
    monkeypatch.setattr(model, "forward", real_forward)
    assert generate_cbert(model, tok, texts, [0, 1], 3, mask_ratio=1) == a
    assert generate_cbert(model, tok, texts, [0, 1], 3, seed=1) != a
    assert all(t not in texts for versions in a for t in versions)  # copies equal to the original are dropped


def test_only_resampled_pieces_change_the_text(real_tokenizer):
    from lvbert.data.tokenizer import load_tokenizer
    from lvbert.augment import rebuild_text

    tok = load_tokenizer(real_tokenizer)
    text = "It's Thought-provoking,  really : a  Parser!"
    enc = tok(text, return_offsets_mapping=True)
    pieces = tok.convert_ids_to_tokens(enc["input_ids"])
    assert rebuild_text(text, enc["offset_mapping"], pieces, set()) == text  # nothing re-sampled: byte for byte
    words = [i for i, p in enumerate(pieces) if p.isalpha()]
    first, last = words[0], words[-1]  # "it" and "parser" (lower-cased pieces)
    new = list(pieces)
    new[first], new[last] = "she", "##s"
    out = rebuild_text(text, enc["offset_mapping"], new, {first, last})
    # the rest as written (case, double spaces); a "##" piece is glued to the word before it
    assert out == "she's Thought-provoking,  really : as!"


@pytest.fixture(scope="module")
def lm(real_data, tmp_path_factory):
    from lvbert.recipes.pretrain import PretrainConfig, pretrain

    return pretrain(PretrainConfig(data=str(real_data), out=str(tmp_path_factory.mktemp("cb") / "lm"), arch="CAFA",
                                   size="tiny", objective="mlm", steps=4, batch_size=8, eval_every=100,
                                   eval_sequences=8, progress=False, warmup_steps=1))  # fmt: skip


def test_cbert_augment_then_finetune_end_to_end(lm, tmp_path):
    from test_finetune_recipe import write_synthetic

    data = write_synthetic(tmp_path / "task", n_train=24, n_dev=8)
    argv = ["augment", "--method", "cbert", "--model", str(lm), "--task", "good-word", "--data-dir", str(data),
            "--text-column", "text", "--epochs", "1", "--copies", "2", "--no-progress"]  # fmt: skip
    assert main([*argv, "--out", str(tmp_path / "aug")]) == 0
    original = (data / "train.tsv").read_text().splitlines()
    lines = (tmp_path / "aug" / "train.tsv").read_text().splitlines()
    assert lines[: len(original)] == original and len(lines) > len(original)
    for f in ("dev.tsv", "test.tsv"):  # never augmented
        assert (tmp_path / "aug" / f).read_bytes() == (data / f).read_bytes()
    assert (tmp_path / "aug" / "cmlm" / "model" / "config.json").exists()  # the C-MLM is saved, reusable
    again = [*argv, "--cmlm", str(tmp_path / "aug" / "cmlm" / "model"), "--out", str(tmp_path / "aug2")]
    assert main(again) == 0
    assert (tmp_path / "aug2" / "train.tsv").read_text() == (tmp_path / "aug" / "train.tsv").read_text()  # same seed
    flip = [*argv, "--cmlm", str(tmp_path / "aug" / "cmlm" / "model"), "--flip-label", "--out", str(tmp_path / "flip")]
    assert main(flip) == 0
    rows = [line.split("\t") for line in (tmp_path / "flip" / "train.tsv").read_text().splitlines()[len(original):]]
    by_other = {r[1]: r[2] for r in (line.split("\t") for line in original[1:])}  # the untouched second column
    assert rows and len(by_other) == len(original) - 1
    for _, other, label in rows:  # style transfer: every generated row carries the other label
        assert {label, by_other[other]} == {"yes", "no"}, (other, label)
    res = main(["finetune", "--model", str(lm), "--task", "good-word", "--data-dir", str(tmp_path / "aug"), "--text-column",
                "text", "--max-steps", "2", "--no-progress", "--out", str(tmp_path / "ft")])  # fmt: skip
    assert res == 0 and json.loads((tmp_path / "ft" / "results.json").read_text())["num_train"] > 24


def test_random_augmentation_needs_no_model(tmp_path):
    from test_finetune_recipe import write_synthetic

    data = write_synthetic(tmp_path / "task", n_train=10, n_dev=4)
    argv = ["augment", "--method", "random", "--task", "good-word", "--data-dir", str(data), "--text-column", "text",
            "--prob", "0.1", "--no-progress", "--out", str(tmp_path / "r")]  # fmt: skip
    assert main(argv) == 0
    assert len((tmp_path / "r" / "train.tsv").read_text().splitlines()) > 11


def test_cbert_bad_input(lm, tmp_path, capsys):
    from test_finetune_recipe import write_synthetic

    data = write_synthetic(tmp_path / "task", n_train=8, n_dev=4)
    reg = tmp_path / "reg"
    reg.mkdir()
    for split in ("train", "dev"):
        (reg / f"{split}.tsv").write_text("sentence1\tsentence2\tscore\nsome words\tother words\t0.5\n")
    from lvbert.model_dir import load_model_tokenizer, save_model_dir
    from lvbert.modeling_lvbert import LvBertConfig, LvBertForSequenceClassification

    classifier = tmp_path / "classifier"  # a model folder without a masked-LM head
    config = LvBertConfig.from_pretrained(lm)
    save_model_dir(LvBertForSequenceClassification(config), load_model_tokenizer(lm, config.vocab_size), classifier)
    base = ["augment", "--method", "cbert", "--text-column", "text", "--no-progress", "--out", str(tmp_path / "o")]
    cases = [
        (["--model", str(classifier), "--task", "good-word", "--data-dir", str(data)], "no masked-LM head"),
        (["--model", str(lm), "--task", "stsb", "--data-dir", str(reg)], "regression"),
        (["--model", str(lm), "--task", "good-word", "--data-dir", str(data), "--copies", "0"], "at least 1"),
        (["--task", "good-word", "--data-dir", str(data)], "needs --model"),
    ]
    for extra, words in cases:
        capsys.readouterr()
        rc = main([*base, *extra])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and err.startswith("lvbert: error:"), err
        if words:
            assert words in err, err
    assert not (tmp_path / "o").exists()


def test_cbert_killed_then_resumed_is_bit_identical(lm, tmp_path, monkeypatch, capsys):
    import torch
    from safetensors.torch import load_file
    from test_finetune_recipe import write_synthetic

    import lvbert.training.loop as loop

    data = write_synthetic(tmp_path / "task", n_train=24, n_dev=8)

    def argv(out, *extra):
        return ["augment", "--method", "cbert", "--model", str(lm), "--task", "good-word", "--data-dir", str(data),
                "--text-column", "text", "--epochs", "3", "--copies", "2", "--no-progress", "--out", str(out), *extra]  # fmt: skip

    straight, killed = tmp_path / "a", tmp_path / "b"
    assert main(argv(straight)) == 0
    real_save = loop.save_checkpoint
    saved = []

    def save_then_die(out_dir, step, *a, **k):
        path = real_save(out_dir, step, *a, **k)
        saved.append(step)
        if len(saved) == 2:
            raise KeyboardInterrupt
        return path

    monkeypatch.setattr(loop, "save_checkpoint", save_then_die)
    assert main(argv(killed)) == 130
    monkeypatch.setattr(loop, "save_checkpoint", real_save)
    import lvbert.objectives as objectives

    real_objective, trained = objectives.mlm_objective, []

    def counting(*a, **k):
        trained.append(1)
        return real_objective(*a, **k)

    import lvbert.augment as augment_module

    monkeypatch.setattr(augment_module, "mlm_objective", counting)  # steps the resumed run trains
    work = tmp_path / ".b.cmlm-run"
    assert not killed.exists() and (work / "checkpoints").is_dir()
    capsys.readouterr()
    assert main(argv(killed)) == 2  # the unfinished fine-tuning is not silently thrown away
    assert "--resume" in capsys.readouterr().err
    assert main(argv(killed, "--resume")) == 0
    assert not work.exists()

    def losses(run):
        rows = map(json.loads, (run / "cmlm" / "logs" / "metrics.jsonl").read_text().splitlines())
        return [(r["step"], r["loss"]) for r in rows if "loss" in r]

    assert losses(straight) and losses(straight) == losses(killed)
    assert len(trained) == losses(straight)[-1][0] - saved[1]  # it went on from the checkpoint, not from scratch
    a, b = (load_file(run / "cmlm" / "model" / "model.safetensors") for run in (straight, killed))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (straight / "train.tsv").read_text() == (killed / "train.tsv").read_text()
