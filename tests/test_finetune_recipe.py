"""The fine-tuning recipe end to end on a tiny randomly initialised model (CPU, seconds)."""

from __future__ import annotations

import json
import random

import pytest

from lvbert.errors import LvBertError

torch = pytest.importorskip("torch")

WORDS = ("good bad the a movie film plot actor scene story was is very quite rather not never always "
         "today long short red blue green house tree river stone cloud light dark").split()  # fmt: skip


def make_model_dir(path, arch: str = "CAFA", max_positions: int = 128, seed: int = 0):
    """A random tiny lvbert model (``arch`` slots) with a WordPiece tokenizer over :data:`WORDS`."""
    from lvbert.data.tokenizer import build_wordpiece, wrap_tokenizer
    from lvbert.modeling_lvbert import LvBertConfig, LvBertModel

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {w: i for i, w in enumerate(specials + list(WORDS))}
    tokenizer = wrap_tokenizer(build_wordpiece(vocab))
    config = LvBertConfig.from_size("tiny", arch=arch, vocab_size=len(vocab), max_position_embeddings=max_positions)
    torch.manual_seed(seed)
    LvBertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def synthetic_rows(n: int, seed: int, pair: bool = False):
    """Label "yes" when the text holds the word "good" (half the rows), else "no"."""
    rng = random.Random(seed)
    filler = [w for w in WORDS if w != "good"]
    rows = []
    for i in range(n):
        words = rng.choices(filler, k=rng.randint(3, 10))
        if i % 2:
            words.insert(rng.randrange(len(words) + 1), "good")
        rows.append((" ".join(words), " ".join(rng.choices(filler, k=3)), "yes" if i % 2 else "no"))
    return rows


def write_synthetic(folder, n_train: int = 256, n_dev: int = 64, pair: bool = False):
    folder.mkdir(parents=True, exist_ok=True)
    for split, n, seed in (("train", n_train, 1), ("dev", n_dev, 2), ("test", n_dev, 3)):
        lines = ["text\tother\tlabel"] + ["\t".join(r) for r in synthetic_rows(n, seed)]
        (folder / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_model_dir(tmp_path_factory.mktemp("model") / "tiny")


def test_finetune_learns_synthetic_task(tmp_path, model_dir):
    from transformers import AutoModelForSequenceClassification

    from lvbert.recipes.finetune import finetune

    data = write_synthetic(tmp_path / "data")
    out = tmp_path / "run"
    res = finetune(model_dir, "good-word", data, out, lr=1e-3, batch_size=16, epochs=3, progress=False, text_column="text")
    acc = res["summary"]["dev/accuracy"]["median"]
    assert acc >= 0.85, res["runs"][0]["history"]  # chance is 0.5
    assert res["task"]["labels"] == ["no", "yes"] and res["config"]["epochs"] == 3
    assert [h["epoch"] for h in res["runs"][0]["history"]] == [1.0, 2.0, 3.0]
    saved = json.loads((out / "results.json").read_text())
    assert saved["summary"] == res["summary"] and saved["best_seed"] == 0
    for f in ("config.json", "model.safetensors", "tokenizer.json", "results.json"):
        assert (out / f).is_file(), f
    assert not list(tmp_path.glob(".run*")), "staging folders must be gone"
    assert not (out / "logs" / "seed0" / "checkpoints").exists()
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.id2label == {0: "no", 1: "yes"}


def test_seeds_report_median_and_spread(tmp_path, model_dir, capsys):
    from lvbert.recipes.finetune import finetune

    data = write_synthetic(tmp_path / "data", n_train=32, n_dev=16)
    res = finetune(model_dir, "good-word", data, tmp_path / "run", batch_size=16, epochs=1, seeds=3, seed=5,
                   progress=False, text_column="text", text_pair_column="other", regression=False)  # fmt: skip
    assert [r["seed"] for r in res["runs"]] == [5, 6, 7]
    s = res["summary"]["dev/accuracy"]
    vals = sorted(r["dev"]["dev"]["accuracy"] for r in res["runs"])
    assert (s["min"], s["median"], s["max"]) == (vals[0], vals[1], vals[2])
    assert res["best_seed"] in (5, 6, 7)
    table = capsys.readouterr().out
    assert "dev/accuracy" in table and "good-word" in table


def test_default_learning_rate_from_hidden_size():
    from lvbert.recipes.finetune import FinetuneConfig
    from lvbert.tasks import GLUE_TASKS

    rte = GLUE_TASKS["rte"]
    assert FinetuneConfig().resolve(rte, 256, 512).lr == 3e-4
    assert FinetuneConfig().resolve(rte, 384, 512).lr == 3e-4
    assert FinetuneConfig().resolve(rte, 768, 512).lr == 1e-4
    r = FinetuneConfig().resolve(GLUE_TASKS["stsb"], 256, 512)
    assert (r.epochs, r.both_orders, r.layer_decay, r.batch_size, r.warmup, r.weight_decay) == (10, True, 0.8, 32, 0.1, 0.01)
    assert FinetuneConfig(epochs=2, lr=1e-5).resolve(rte, 256, 512).epochs == 2
    with pytest.raises(LvBertError, match="--warmup"):
        FinetuneConfig(warmup=1.5)
    with pytest.raises(LvBertError, match="--batch-size"):
        FinetuneConfig(batch_size=0)


def test_dropout_replaces_the_pretrained_models(tmp_path):
    """--dropout sets the fine-tuned model's hidden and attention dropout, whatever pre-training used."""
    from lvbert.model_dir import load_classifier
    from lvbert.modeling_lvbert import Dropout, LvBertModel
    from lvbert.recipes.finetune import FinetuneConfig, finetune

    folder = make_model_dir(tmp_path / "no-dropout")
    config = json.loads((folder / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)  # as pre-trained without dropout
    (folder / "config.json").write_text(json.dumps(config))
    assert isinstance(LvBertModel.from_pretrained(folder), LvBertModel)

    kept = load_classifier(folder, ("no", "yes"), seed=0)
    assert {m.p for m in kept.modules() if isinstance(m, Dropout)} == {0.0, kept.config.classifier_dropout}
    replaced = load_classifier(folder, ("no", "yes"), seed=0, dropout=0.1)
    assert replaced.config.hidden_dropout_prob == replaced.config.attention_probs_dropout_prob == 0.1
    assert {m.p for m in replaced.modules() if isinstance(m, Dropout)} == {0.1}
    assert all(a.attention_dropout == 0.1 for a in replaced.modules() if hasattr(a, "attention_dropout"))

    data = write_synthetic(tmp_path / "data", n_train=32, n_dev=16)
    res = finetune(folder, "good-word", data, tmp_path / "run", batch_size=16, epochs=1, dropout=0.1, progress=False,
                   text_column="text")  # fmt: skip
    assert res["config"]["dropout"] == 0.1
    assert json.loads((tmp_path / "run" / "config.json").read_text())["hidden_dropout_prob"] == 0.1
    with pytest.raises(LvBertError, match="--dropout"):
        FinetuneConfig(dropout=1.0)
