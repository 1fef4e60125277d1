"""The nine GLUE tasks as laid out in the official GLUE download (``glue_data/<Task>/*.tsv``).

Layouts, from the files written by GLUE's ``download_glue_data.py``:

| task | train / dev columns | test columns |
|---|---|---|
| CoLA | no header: source, label, original-label mark, sentence | ``index sentence`` |
| SST-2 | ``sentence label`` | ``index sentence`` |
| MRPC | ``Quality #1 ID #2 ID #1 String #2 String`` | ``index #1 ID #2 ID #1 String #2 String`` |
| STS-B | ``index genre filename year old_index source1 source2 sentence1 sentence2 score`` | same without ``score`` |
| QQP | ``id qid1 qid2 question1 question2 is_duplicate`` | ``id question1 question2`` |
| MNLI | ``index promptID pairID genre ... sentence1 sentence2 label1 [label2..5] gold_label`` | ``index ... sentence1 sentence2`` |
| QNLI | ``index question sentence label`` | ``index question sentence`` |
| RTE, WNLI | ``index sentence1 sentence2 label`` | ``index sentence1 sentence2`` |

MNLI has ``dev_matched``/``dev_mismatched`` and ``test_matched``/``test_mismatched``.
Files are tab separated without quoting. Label names and orders follow the
Hugging Face ``glue`` processors, so submission files use the names GLUE expects.
"""

from __future__ import annotations

from dataclasses import replace

from lvbert.tasks.task import Layout, Split, Task

BINARY = ("0", "1")
NLI2 = ("entailment", "not_entailment")
NLI3 = ("contradiction", "entailment", "neutral")


def _splits(labelled: Layout, test: Layout, dev: tuple[str, ...] = ("dev",), test_names: tuple[str, ...] = ("test",)):
    splits = {"train": Split("train.tsv", labelled)}
    splits.update({d: Split(f"{d}.tsv", labelled) for d in dev})
    splits.update({t: Split(f"{t}.tsv", test) for t in test_names})
    return splits


def _pair(text: str, pair: str, label: str, index: str | None = "index") -> tuple[Layout, Layout]:
    return Layout(text=text, pair=pair, label=label, index=index), Layout(text=text, pair=pair, index=index)


GLUE_TASKS: dict[str, Task] = {}


def _add(task: Task) -> None:
    GLUE_TASKS[task.name] = task


_add(
    Task(
        name="cola",
        labels=BINARY,
        metrics=("mcc",),
        splits=_splits(Layout(text=3, label=1, header=False), Layout(text="sentence", index="index")),
        test_splits={"test": "CoLA.tsv"},
        glue_dir="CoLA",
        description="grammatical acceptability (Matthews correlation)",
    )
)
_add(
    Task(
        name="sst2",
        labels=BINARY,
        metrics=("accuracy",),
        splits=_splits(Layout(text="sentence", label="label"), Layout(text="sentence", index="index")),
        test_splits={"test": "SST-2.tsv"},
        glue_dir="SST-2",
        description="sentiment of movie-review sentences",
    )
)
_add(
    Task(
        name="mrpc",
        labels=BINARY,
        metrics=("f1", "accuracy"),
        splits=_splits(
            Layout(text="#1 String", pair="#2 String", label="Quality"),
            Layout(text="#1 String", pair="#2 String", index="index"),
        ),
        test_splits={"test": "MRPC.tsv"},
        both_orders=True,
        glue_dir="MRPC",
        description="paraphrase detection (F1 of 'paraphrase', accuracy)",
    )
)
_add(
    Task(
        name="stsb",
        labels=None,
        metrics=("pearson", "spearman"),
        splits=_splits(*_pair("sentence1", "sentence2", "score")),
        test_splits={"test": "STS-B.tsv"},
        epochs=10,
        both_orders=True,
        glue_dir="STS-B",
        description="semantic similarity 0-5 (regression; Pearson, Spearman)",
    )
)
_qqp, _qqp_test = _pair("question1", "question2", "is_duplicate", index="id")
_add(
    Task(
        name="qqp",
        labels=BINARY,
        metrics=("f1", "accuracy"),
        splits=_splits(replace(_qqp, skip_malformed=True), replace(_qqp_test, skip_malformed=True)),
        test_splits={"test": "QQP.tsv"},
        both_orders=True,
        glue_dir="QQP",
        description="duplicate questions (F1 of 'duplicate', accuracy)",
    )
)
_add(
    Task(
        name="mnli",
        labels=NLI3,
        metrics=("accuracy",),
        splits=_splits(
            *_pair("sentence1", "sentence2", "gold_label"),
            dev=("dev_matched", "dev_mismatched"),
            test_names=("test_matched", "test_mismatched"),
        ),
        dev_splits=("dev_matched", "dev_mismatched"),
        test_splits={"test_matched": "MNLI-m.tsv", "test_mismatched": "MNLI-mm.tsv"},
        glue_dir="MNLI",
        description="natural language inference, matched and mismatched genres",
    )
)
_add(
    Task(
        name="qnli",
        labels=NLI2,
        metrics=("accuracy",),
        splits=_splits(*_pair("question", "sentence", "label")),
        test_splits={"test": "QNLI.tsv"},
        glue_dir="QNLI",
        description="does the sentence answer the question",
    )
)
_add(
    Task(
        name="rte",
        labels=NLI2,
        metrics=("accuracy",),
        splits=_splits(*_pair("sentence1", "sentence2", "label")),
        test_splits={"test": "RTE.tsv"},
        epochs=10,
        glue_dir="RTE",
        description="textual entailment",
    )
)
_add(
    Task(
        name="wnli",
        labels=BINARY,
        metrics=("accuracy",),
        splits=_splits(*_pair("sentence1", "sentence2", "label")),
        test_splits={"test": "WNLI.tsv"},
        glue_dir="WNLI",
        description="Winograd-schema entailment",
    )
)

# GLUE's diagnostic set (AX) is predicted with the MNLI model; the download puts
# it at glue_data/diagnostic/diagnostic.tsv.
DIAGNOSTIC = Split("diagnostic.tsv", Layout(text="sentence1", pair="sentence2", index="index"))
DIAGNOSTIC_DIR = "diagnostic"
DIAGNOSTIC_FILE = "AX.tsv"
