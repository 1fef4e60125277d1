"""GLUE submission files from fine-tuned tiny models, and ``--task glue`` for both commands."""

from __future__ import annotations

import pytest

from lvbert.errors import LvBertError

pytest.importorskip("torch")

from test_finetune_recipe import make_model_dir  # noqa: E402  (sibling test module)
from test_tasks_glue import write_glue  # noqa: E402

QUICK = {"batch_size": 8, "max_steps": 2, "progress": False}


@pytest.fixture(scope="module")
def glue(tmp_path_factory):
    """A tiny model, GLUE fixtures for four layouts, and ``finetune --task glue`` over them."""
    from lvbert.recipes.finetune import finetune

    root = tmp_path_factory.mktemp("glue")
    model = make_model_dir(root / "model")
    expected = write_glue(root / "data", n=8, tasks=["cola", "stsb", "mnli", "rte"])
    (root / "data" / "diagnostic").mkdir()
    (root / "data" / "diagnostic" / "diagnostic.tsv").write_text(
        "index\tsentence1\tsentence2\n0\tthe movie was good\tthe film was bad\n1\ta plot\ta story\n"
    )
    res = finetune(model, "glue", root / "data", root / "runs", **QUICK)
    return root, expected, res


def _read(path):
    lines = path.read_text().splitlines()
    return lines[0], [line.split("\t") for line in lines[1:]]


def test_finetune_glue_runs_every_found_task(glue, capsys):
    root, _, res = glue
    assert list(res["tasks"]) == ["cola", "stsb", "mnli", "rte"]
    for name in res["tasks"]:
        assert (root / "runs" / name / "model.safetensors").is_file()
        assert (root / "runs" / name / "results.json").is_file()
    assert res["tasks"]["stsb"]["config"]["both_orders"] is True
    assert res["tasks"]["stsb"]["num_train"] == 16  # 8 rows in both orders
    assert set(res["tasks"]["mnli"]["summary"]) == {"dev_matched/accuracy", "dev_mismatched/accuracy", "score"}
    import json

    table = json.loads((root / "runs" / "results.json").read_text())["table"]
    assert any(line.startswith("stsb") and "dev/spearman" in line for line in table)


def test_predict_glue_writes_submission_files(glue):
    from lvbert.recipes.predict import predict

    root, expected, _ = glue
    written = predict(root / "runs", "glue", root / "data", root / "sub")
    assert sorted(p.name for p in written) == ["AX.tsv", "CoLA.tsv", "MNLI-m.tsv", "MNLI-mm.tsv", "RTE.tsv", "STS-B.tsv"]
    for name, task, split, allowed in [
        ("CoLA.tsv", "cola", "test", {"0", "1"}),
        ("RTE.tsv", "rte", "test", {"entailment", "not_entailment"}),
        ("MNLI-m.tsv", "mnli", "test_matched", {"entailment", "neutral", "contradiction"}),
        ("MNLI-mm.tsv", "mnli", "test_mismatched", {"entailment", "neutral", "contradiction"}),
    ]:
        header, rows = _read(root / "sub" / name)
        assert header == "index\tprediction"
        assert [r[0] for r in rows] == [e[3] for e in expected[task][split]], name
        assert {r[1] for r in rows} <= allowed, name
    header, rows = _read(root / "sub" / "STS-B.tsv")
    assert len(rows) == 8 and all(len(r[1].split(".")[1]) == 3 and float(r[1]) == float(r[1]) for r in rows)
    assert [r[0] for r in _read(root / "sub" / "AX.tsv")[1]] == ["0", "1"]


def test_predict_single_task_and_label_check(glue):
    from lvbert.recipes.predict import predict

    root, expected, _ = glue
    (written,) = predict(root / "runs" / "rte", "rte", root / "data" / "RTE", root / "sub-rte")
    assert written.name == "RTE.tsv" and len(_read(written)[1]) == 8
    with pytest.raises(LvBertError, match=r"has labels \['entailment', 'not_entailment'\] but task mnli needs"):
        predict(root / "runs" / "rte", "mnli", root / "data" / "MNLI", root / "sub-bad")
    with pytest.raises(LvBertError, match="one regression output"):
        predict(root / "runs" / "stsb", "cola", root / "data" / "CoLA", root / "sub-bad")
    assert not (root / "sub-bad").exists()


def test_predict_file_task_uses_model_labels(tmp_path, glue):
    from lvbert.recipes.finetune import finetune
    from lvbert.recipes.predict import predict

    root, _, _ = glue
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text("".join(f'{{"t": "the movie {w}", "y": "{w}"}}\n' for w in ["good", "bad"] * 4))
    (data / "dev.jsonl").write_text('{"t": "good", "y": "good"}\n{"t": "bad", "y": "bad"}\n')
    (data / "test.jsonl").write_text('{"t": "good good"}\n{"t": "bad"}\n')
    finetune(root / "model", "reviews", data, tmp_path / "run", text_column="t", label_column="y", **QUICK)
    (written,) = predict(tmp_path / "run", "reviews", data, tmp_path / "sub", text_column="t")
    header, rows = _read(written)
    assert written.name == "reviews.tsv" and [r[0] for r in rows] == ["0", "1"] and {r[1] for r in rows} <= {"bad", "good"}
