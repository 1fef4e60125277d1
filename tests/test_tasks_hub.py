"""GLUE and SQuAD through ``datasets``, offline: small datasets written in the hub's layout (a local
folder laid out as the ``nyu-mll/glue`` / ``rajpurkar/squad`` repositories, with their columns,
splits and ``ClassLabel`` names) and a ``DatasetDict.save_to_disk`` folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from lvbert.errors import LvBertError
from lvbert.tasks.hub import glue_from_hub, is_saved_dataset, load_dataset_dict, parse_dataset_spec, squad_from_hub
from lvbert.tasks.squad import read_squad

datasets = pytest.importorskip("datasets")
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value  # noqa: E402

SST2 = Features({"sentence": Value("string"), "label": ClassLabel(names=["negative", "positive"]), "idx": Value("int32")})
MNLI = Features({"premise": Value("string"), "hypothesis": Value("string"),
                 "label": ClassLabel(names=["entailment", "neutral", "contradiction"]), "idx": Value("int32")})  # fmt: skip
STSB = Features({"sentence1": Value("string"), "sentence2": Value("string"), "label": Value("float32"),
                 "idx": Value("int32")})  # fmt: skip


def _sst2(split: str, n: int) -> Dataset:
    labels = [-1] * n if split == "test" else [i % 2 for i in range(n)]
    texts = [("a fine film " if i % 2 else "a dull film ") + str(i) for i in range(n)]
    return Dataset.from_dict({"sentence": texts, "label": labels, "idx": list(range(n))}, features=SST2)


def _mnli(split: str, n: int) -> Dataset:
    labels = [-1] * n if split.startswith("test") else [i % 3 for i in range(n)]
    return Dataset.from_dict({"premise": [f"p {i}" for i in range(n)], "hypothesis": [f"h {i}" for i in range(n)],
                              "label": labels, "idx": list(range(n))}, features=MNLI)  # fmt: skip


def _stsb(split: str, n: int) -> Dataset:
    labels = [-1.0] * n if split == "test" else [i * 0.5 for i in range(n)]
    return Dataset.from_dict({"sentence1": [f"a {i}" for i in range(n)], "sentence2": [f"b {i}" for i in range(n)],
                              "label": labels, "idx": list(range(n))}, features=STSB)  # fmt: skip


def write_hub_repo(root: Path, configs: dict[str, dict[str, Dataset]]) -> Path:
    """A folder laid out as a hub dataset repository: ``<config>/<split>-00000-of-00001.parquet`` and the
    README's ``configs`` list that ``datasets.load_dataset(folder, config)`` reads."""
    lines = ["---", "configs:"]
    for config, splits in configs.items():
        (root / config).mkdir(parents=True, exist_ok=True)
        lines += [f"- config_name: {config}", "  data_files:"]
        for split, ds in splits.items():
            ds.to_parquet(str(root / config / f"{split}-00000-of-00001.parquet"))
            lines += [f"  - split: {split}", f"    path: {config}/{split}-*"]
    (root / "README.md").write_text("\n".join(lines + ["---", ""]), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def glue_repo(tmp_path_factory) -> Path:
    return write_hub_repo(tmp_path_factory.mktemp("hub") / "glue", {
        "sst2": {"train": _sst2("train", 12), "validation": _sst2("validation", 6), "test": _sst2("test", 4)},
        "mnli": {"train": _mnli("train", 9), "validation_matched": _mnli("v", 3), "validation_mismatched": _mnli("v", 3),
                 "test_matched": _mnli("test_matched", 2), "test_mismatched": _mnli("test_mismatched", 2)},
        "stsb": {"train": _stsb("train", 6), "validation": _stsb("validation", 3), "test": _stsb("test", 2)},
    })  # fmt: skip


def test_sst2_from_a_hub_layout(glue_repo, tmp_path):
    dd = load_dataset_dict(str(glue_repo), "sst2")
    task, folder = glue_from_hub("sst2", dd, cache=tmp_path, source="local")
    assert sorted(p.name for p in folder.glob("*.jsonl")) == ["dev.jsonl", "test.jsonl", "train.jsonl"]
    train = task.read(folder, "train")
    assert len(train) == 12 and train[1].text == "a fine film 1" and train[1].label == "1" and train[0].index == "0"
    assert task.label_ids(task.read(folder, "dev")) == [0, 1, 0, 1, 0, 1]
    assert all(ex.label is None for ex in task.read(folder, "test")) and task.test_splits == {"test": "SST-2.tsv"}
    again, folder2 = glue_from_hub("sst2", dd, cache=tmp_path, source="local")
    assert folder2 == folder and again == task  # written once, read back


def test_mnli_names_map_to_lvbert_label_order(glue_repo, tmp_path):
    task, folder = glue_from_hub("mnli", load_dataset_dict(str(glue_repo), "mnli"), cache=tmp_path)
    assert task.dev_splits == ("dev_matched", "dev_mismatched")
    train = task.read(folder, "train")
    assert [ex.label for ex in train[:3]] == ["entailment", "neutral", "contradiction"]
    assert task.label_ids(train[:3]) == [1, 2, 0]  # lvbert's order: contradiction, entailment, neutral
    assert train[0].text_pair == "h 0"
    assert set(task.test_splits) == {"test_matched", "test_mismatched"}


def test_stsb_is_regression_and_test_rows_are_unlabelled(glue_repo, tmp_path):
    task, folder = glue_from_hub("stsb", load_dataset_dict(str(glue_repo), "stsb"), cache=tmp_path)
    assert task.label_ids(task.read(folder, "train")) == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert all(ex.label is None for ex in task.read(folder, "test"))


def test_save_to_disk_folder(tmp_path):
    folder = tmp_path / "saved"
    DatasetDict({"train": _sst2("train", 8), "validation": _sst2("validation", 4)}).save_to_disk(str(folder))
    assert is_saved_dataset(folder) and not is_saved_dataset(tmp_path)
    task, data = glue_from_hub("sst2", load_dataset_dict(str(folder)), cache=tmp_path / "cache")
    assert len(task.read(data, "train")) == 8 and "test" not in task.splits


def test_missing_split_and_column_are_one_line(tmp_path):
    with pytest.raises(LvBertError, match="needs train and validation"):
        glue_from_hub("sst2", DatasetDict({"train": _sst2("train", 4)}), cache=tmp_path)
    other = DatasetDict({"train": _stsb("train", 3), "validation": _stsb("validation", 3)})
    with pytest.raises(LvBertError, match="no column 'sentence'"):
        glue_from_hub("sst2", other, cache=tmp_path)


def test_unreachable_hub_is_one_line_that_points_at_data_dir(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the suite's setting; said here so the test states it
    with pytest.raises(LvBertError, match="--data-dir") as e:
        load_dataset_dict("nyu-mll/glue", "sst2")
    assert "\n" not in str(e.value)


def test_dataset_spec():
    assert parse_dataset_spec(None, "sst2") == ("nyu-mll/glue", "sst2")
    assert parse_dataset_spec(None, "squad2") == ("rajpurkar/squad_v2", None)
    assert parse_dataset_spec("me/glue-copy", "rte") == ("me/glue-copy", "rte")
    assert parse_dataset_spec("me/other:plain_text", "squad") == ("me/other", "plain_text")
    with pytest.raises(LvBertError, match="--data-dir"):
        parse_dataset_spec(None, "polarity")


SQUAD = Features({"id": Value("string"), "title": Value("string"), "context": Value("string"),
                  "question": Value("string"),
                  "answers": {"text": [Value("string")], "answer_start": [Value("int32")]}})  # fmt: skip


def _squad(n: int, impossible: bool) -> Dataset:
    ctx = "The cat sat on the mat. The dog ran in the park."
    rows = {"id": [], "title": [], "context": [], "question": [], "answers": []}
    for i in range(n):
        rows["id"].append(f"q{i}")
        rows["title"].append("Pets" if i < n // 2 else "More pets")
        rows["context"].append(ctx)
        rows["question"].append("Where did the dog run?" if i % 2 else "Where did the cat sit?")
        empty = impossible and i == n - 1
        text, start = ("the park", ctx.index("the park")) if i % 2 else ("the mat", ctx.index("the mat"))
        rows["answers"].append({"text": [] if empty else [text], "answer_start": [] if empty else [start]})
    return Dataset.from_dict(rows, features=SQUAD)


@pytest.mark.parametrize("version", ["1.1", "2.0"])
def test_squad_from_a_hub_layout(tmp_path, version):
    # each version its own config name: datasets caches a local folder's build by config and file names
    config = "squad_v2" if version == "2.0" else "plain_text"
    repo = write_hub_repo(tmp_path / "squad", {config: {"train": _squad(6, version == "2.0"),
                                                        "validation": _squad(4, version == "2.0")}})  # fmt: skip
    train_file, dev_file = squad_from_hub(load_dataset_dict(str(repo), config), version, cache=tmp_path / "c")
    train = read_squad(train_file, version)
    assert len(train) == 6 and train[1].answers == [("the park", train[1].context.index("the park"))]
    dev = read_squad(dev_file, version)
    assert [ex.is_impossible for ex in dev] == ([False, False, False, True] if version == "2.0" else [False] * 4)


def test_finetune_and_predict_read_glue_from_a_hub_layout(glue_repo, tmp_path, capsys):
    """The commands a user types: `--dataset FOLDER:sst2` (a hub copy), a save_to_disk folder as
    --data-dir, and no data option at all (the hub, unreachable here: one line naming --data-dir)."""
    import json

    from lvbert.cli import main
    from test_finetune_recipe import make_model_dir

    model = make_model_dir(tmp_path / "pre")
    common = ["--model", str(model), "--task", "sst2", "--epochs", "1", "--no-progress", "--batch-size", "4"]
    assert main(["finetune", *common, "--dataset", f"{glue_repo}:sst2", "--out", str(tmp_path / "a")]) == 0
    res = json.loads((tmp_path / "a" / "results.json").read_text())
    assert res["num_train"] == 12 and res["num_dev"] == {"dev": 6}
    saved = tmp_path / "saved"
    load_dataset_dict(str(glue_repo), "sst2").save_to_disk(str(saved))
    assert main(["finetune", *common, "--data-dir", str(saved), "--out", str(tmp_path / "b")]) == 0
    assert json.loads((tmp_path / "b" / "results.json").read_text())["num_train"] == 12
    capsys.readouterr()
    assert main(["finetune", *common, "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "nyu-mll/glue" in err and "--data-dir" in err and "Traceback" not in err
    assert not (tmp_path / "c").exists()
    # the GLUE submission file from the hub copy's test split
    assert main(["predict", "--model", str(tmp_path / "a"), "--task", "sst2", "--dataset", f"{glue_repo}:sst2",
                 "--out", str(tmp_path / "sub")]) == 0  # fmt: skip
    lines = (tmp_path / "sub" / "SST-2.tsv").read_text().splitlines()
    assert lines[0] == "index\tprediction" and len(lines) == 5 and {ln.split("\t")[1] for ln in lines[1:]} <= {"0", "1"}
