"""NAS-BERT: the P op and width changes in the notation and counting, the space, adapters, block-wise
training, progressive shrinking, extraction, selection under budgets, resume and bad input."""

from __future__ import annotations

import itertools
import json
import random

import pytest
import torch

from lvbert.arch import Arch, ArchError, count_macs, count_params, get_size
from lvbert.cli import main
from lvbert.modeling_lvbert import LvBertConfig, LvBertForMaskedLM, LvBertModel
from lvbert.nas.select import k_best, pareto_front, parse_budget
from lvbert.nas.space import Block, get_space
from lvbert.nas.supernet import NasBlock, TeacherBlocks, chain_forward, extract, sublayer_config, teacher_boundaries
from lvbert.nas.shrink import assign_bins, rounds_needed, shrink_steps

# ----------------------------------------------------------------------------- notation and counting


def test_projection_op_notation_and_widths():
    a = Arch.parse("C(kernel=3) A P(hidden=48) A(heads=3) F(ffn=96) I P(hidden=32) F")
    size = get_size("tiny")
    assert a.widths(size) == [64, 64, 64, 48, 48, 48, 48, 32]
    assert a.output_width(size) == 32
    assert str(Arch.parse(str(a))) == str(a)
    assert Arch.parse(a.to_json()) == a
    with pytest.raises(ArchError, match="P\\(hidden=192\\)"):
        Arch.parse("A P F")
    with pytest.raises(ArchError, match="divisible"):
        Arch.parse("P(hidden=48) A(heads=5)").resolve(size)


@pytest.mark.parametrize("arch", [
    "P(hidden=48) C(kernel=3,heads=3) A(heads=3) F(ffn=96) I",
    "C A P(hidden=32) C(kernel=5,heads=2) I I P(hidden=96) F(ffn=384) A(heads=6)",
    "P(hidden=64) P(hidden=16) A(heads=1) C(kernel=7,heads=1)",
])  # fmt: skip
def test_counting_with_width_changes_equals_the_built_model(arch):
    size = get_size("tiny")
    model = LvBertForMaskedLM(LvBertConfig.from_size("tiny", arch=arch))
    assert sum(p.numel() for p in model.lvbert.parameters()) == count_params(arch, size)
    assert sum(p.numel() for p in model.parameters()) == count_params(arch, size, head="mlm")
    x = torch.randint(0, 100, (2, 9))
    out = model(x)
    assert out.logits.shape == (2, 9, size.vocab_size)
    assert count_macs(arch, size) > 0


def test_space_sizes_match_nas_bert():
    small = get_space("small")
    assert len(small.block_candidates()) == 97_650  # NAS-BERT: 97,650 paths per block after identity dedup
    assert len(get_space("tiny").block_candidates()) == 2 * (4 + 4**2 + 4**3)
    for b in get_space("tiny").block_candidates():
        ops = list(b.ops)
        assert ops != ["I"] * len(ops)
        first_i = ops.index("I") if "I" in ops else len(ops)
        assert all(t == "I" for t in ops[first_i:])  # identities only at the end


def test_every_nas_arch_counts_exactly_and_adapters_have_their_shapes():
    space = get_space("tiny")
    size = space.student_size(32, 500, 64)
    cands = space.block_candidates()
    rng = random.Random(0)
    for _ in range(6):
        blocks = [rng.choice(cands) for _ in range(space.num_blocks)]
        model = LvBertModel(LvBertConfig.from_size(size, arch=str(space.arch(blocks))))
        assert sum(p.numel() for p in model.parameters()) == space.arch_params(blocks, size)
        projections = [s for s in model.encoder.slots if type(s).__name__ == "ProjectionLayer"]
        widths = [32] + [b.width for b in blocks]
        assert [tuple(p.dense.weight.shape) for p in projections] == [(w1, w0) for w0, w1 in zip(widths, widths[1:])]
    net = NasBlock(space, 64, sublayer_config(LvBertConfig.from_size("tiny", arch="AF")))
    for w in space.widths:
        assert tuple(net.inputs[f"w{w}"].weight.shape) == (w, 64)
        assert tuple(net.outputs[f"w{w}"].weight.shape) == (64, w)


def test_lvbert_space_refuses_projections():
    from lvbert.errors import LvBertError
    from lvbert.space import normalize_choices

    with pytest.raises(LvBertError, match="NAS-BERT"):
        normalize_choices("C A P(hidden=32)", 4)


def test_block_parse_and_budgets():
    assert Block.parse("w64:C3,A,I") == Block(64, ("C3", "A", "I"))
    assert parse_budget("5M") == 5_000_000 and parse_budget("800K") == 800_000 and parse_budget("1200") == 1200
    from lvbert.errors import LvBertError

    with pytest.raises(LvBertError, match="5M"):
        parse_budget("five")


# ----------------------------------------------------------------------------- selection


def test_k_best_equals_brute_force_under_a_constraint():
    rng = random.Random(1)
    losses = [sorted(rng.random() for _ in range(5)) for _ in range(3)]
    costs = [[rng.randint(1, 9) for _ in range(5)] for _ in range(3)]

    def feasible(c):
        return sum(costs[n][i] for n, i in enumerate(c)) <= 14

    got, _ = k_best(losses, 7, feasible)
    every = sorted((sum(losses[n][i] for n, i in enumerate(c)), c) for c in itertools.product(range(5), repeat=3) if feasible(c))
    assert got == [c for _, c in every[:7]]


def test_pareto_front():
    pts = [{"loss": 1, "params": 5, "latency_ms": 1}, {"loss": 2, "params": 4, "latency_ms": 1},
           {"loss": 2, "params": 6, "latency_ms": 2}, {"loss": 0.5, "params": 9, "latency_ms": 3}]  # fmt: skip
    front = pareto_front(pts)
    assert pts[2] not in front and len(front) == 3


def test_bins_and_shrinking_schedule():
    assert assign_bins([10, 50, 100], None, 2) == [0, 0, 1]
    assert assign_bins([10, 50, 100], [9.0, 1.0, 10.0], 2) == [-1, 0, 1]  # slow for its size: dropped
    assert shrink_steps(100, 0.3, 3) == [30, 65, 100]
    assert rounds_needed([40, 7], sample=20, keep=3) == 5  # 40 -> 30 -> 20 -> 10 -> 5 -> 3 (never below keep)
    assert rounds_needed([3], 20, 3) == 0


# ----------------------------------------------------------------------------- with a trained teacher


@pytest.fixture(scope="module")
def nas_teacher(real_data, tmp_path_factory):
    from lvbert.recipes.pretrain import PretrainConfig, pretrain

    root = tmp_path_factory.mktemp("nas_teacher")
    return pretrain(PretrainConfig(data=str(real_data), out=str(root / "t"), arch="AFAFAFAF", size="tiny",
                                   objective="mlm", steps=30, batch_size=16, lr=2e-3, warmup_steps=3, eval_every=100,
                                   eval_sequences=8, progress=False))  # fmt: skip


def _train_argv(teacher, data, out, *extra):
    return ["nas", "train", "--teacher", str(teacher), "--data", str(data), "--size", "tiny", "--steps", "40",
            "--batch-size", "16", "--bins", "3", "--sample", "20", "--keep", "3", "--dev-batches", "2",
            "--eval-sequences", "32", "--latency-repeats", "2", "--latency-seq-len", "64", "--latency-calibrate", "6",
            "--save-every", "20",
            "--log-every", "1", "--out", str(out), "--no-progress", *extra]  # fmt: skip


@pytest.fixture(scope="module")
def nas_run(nas_teacher, real_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("nas") / "run"
    assert main(_train_argv(nas_teacher, real_data, out)) == 0
    return out


def test_extracted_model_equals_the_chain_of_blocks(nas_teacher):
    from lvbert.model_dir import load_mlm

    teacher = load_mlm(nas_teacher)[0].double()  # float64: the comparison measures the algebra, not round-off
    space = get_space("tiny")
    torch.manual_seed(0)
    nets = [NasBlock(space, 64, sublayer_config(teacher.config, 0.0)).eval().double() for _ in range(4)]
    cands = space.block_candidates()
    rng = random.Random(3)
    ids = torch.randint(5, 1900, (3, 20))
    mask = torch.ones_like(ids)
    mask[1, 14:] = 0
    labels = torch.full_like(ids, -100)
    labels[:, 2] = ids[:, 2]
    labels[0, 9] = ids[0, 9]
    batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    for _ in range(3):
        blocks = [rng.choice(cands) for _ in range(4)]
        model = extract(space, blocks, nets, teacher)
        assert torch.allclose(model(**batch).logits, chain_forward(blocks, nets, teacher, batch), atol=1e-6, rtol=0)


def test_block_training_lowers_its_loss_and_shrinking_keeps_m_per_bin(nas_run):
    for n in range(4):
        rows = [json.loads(x) for x in (nas_run / f"block-{n}" / "metrics.jsonl").read_text().splitlines()]
        losses = [r["loss"] for r in rows if "loss" in r and "eval/alive" not in r]
        assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
        cands = json.loads((nas_run / f"block-{n}" / "candidates.json").read_text())["candidates"]
        per_bin = {}
        for c in cands:
            per_bin[c["bin"]] = per_bin.get(c["bin"], 0) + 1
        assert per_bin and all(v <= 3 for v in per_bin.values())
        assert sorted(c["dev_loss"] for c in cands) == [c["dev_loss"] for c in cands]
        shrink = [json.loads(x) for x in (nas_run / f"block-{n}" / "shrink.jsonl").read_text().splitlines()]
        assert shrink and all(s["dropped"] >= 1 for s in shrink)


def test_search_meets_every_target_and_the_models_load(nas_run, real_data, tmp_path):
    from transformers import AutoModel

    import lvbert  # noqa: F401  (registers the Auto classes)

    out = tmp_path / "search"
    assert main(["nas", "search", "--supernet", str(nas_run), "--data", str(real_data), "--targets", "190K,300K",
                 "--max-latency", "50", "--top", "6", "--eval-sequences", "16", "--measure", "3", "--out", str(out)]) == 0  # fmt: skip
    res = json.loads((out / "results.json").read_text())
    for name, budget in (("190K", 190_000), ("300K", 300_000)):
        t = res["targets"][name]
        assert t["params"] <= budget and t["latency_ms"] <= 50
        model = AutoModel.from_pretrained(out / "models" / name)
        assert sum(p.numel() for p in model.parameters()) == t["params"]
        assert model.config.arch == t["arch"]
    assert (out / "pareto.png").stat().st_size > 0 and "Pareto" in (out / "pareto.md").read_text()
    assert len((out / "evaluated.jsonl").read_text().splitlines()) == res["evaluated"]


def test_nas_train_resume_is_bit_identical(nas_teacher, real_data, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    import lvbert.training.loop as loop

    # bins by parameters only: latency bins follow this run's timings, so two fresh runs may differ (a
    # resumed run reads the latency table its folder holds)
    args = ("--blocks", "1", "--bin-by", "params")
    straight = tmp_path / "a"
    assert main(_train_argv(nas_teacher, real_data, straight, *args)) == 0
    real_save = loop.save_checkpoint

    def save_then_die(out_dir, step, *a, **k):
        path = real_save(out_dir, step, *a, **k)
        if step == 20:
            raise KeyboardInterrupt
        return path

    monkeypatch.setattr(loop, "save_checkpoint", save_then_die)
    assert main(_train_argv(nas_teacher, real_data, tmp_path / "b", *args)) == 130
    monkeypatch.setattr(loop, "save_checkpoint", real_save)
    assert main(["nas", "train", "--blocks", "1", "--resume", str(tmp_path / "b"), "--no-progress"]) == 0  # options read back

    def losses(run):
        rows = map(json.loads, (run / "block-1" / "metrics.jsonl").read_text().splitlines())
        return [(r["step"], r["loss"], r["arch"]) for r in rows if "loss" in r]

    assert losses(straight) == losses(tmp_path / "b")
    a, b = load_file(straight / "block-1" / "block.safetensors"), load_file(tmp_path / "b" / "block-1" / "block.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((straight / "block-1" / "candidates.json").read_text())["candidates"] == \
        json.loads((tmp_path / "b" / "block-1" / "candidates.json").read_text())["candidates"]  # fmt: skip


def test_bad_input_is_one_line(nas_teacher, nas_run, real_data, tmp_path, capsys):
    from lvbert.errors import LvBertError

    with pytest.raises(LvBertError, match="fewer than the 9 blocks"):
        teacher_boundaries(8, 9)
    cases = [
        (_train_argv(nas_teacher, real_data, tmp_path / "x", "--num-blocks", "9"), "fewer than the 9 blocks"),
        (_train_argv(nas_teacher, real_data, tmp_path / "y", "--space", "lv-bert"), "lvbert supernet train"),
        (_train_argv(nas_teacher, real_data, tmp_path / "z", "--widths", "30,64"), "head_dim"),
        (["nas", "search", "--supernet", str(nas_run), "--data", str(real_data), "--targets", "1K", "--out",
          str(tmp_path / "s")], "no combination"),  # fmt: skip
        (["nas", "search", "--supernet", str(real_data), "--data", str(real_data), "--targets", "1M", "--out",
          str(tmp_path / "s2")], "not a NAS run"),  # fmt: skip
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "s").exists()


def test_teacher_blocks_cover_the_teacher(nas_teacher):
    from lvbert.model_dir import load_mlm

    tb = TeacherBlocks(load_mlm(nas_teacher)[0], 3)
    assert tb.bounds == [0, 3, 5, 8]
    ids = torch.randint(5, 1000, (2, 12))
    out = tb.outputs({"input_ids": ids})
    full = tb.model.lvbert(ids, output_hidden_states=True).hidden_states
    assert len(out) == 4 and all(torch.allclose(o, full[b]) for o, b in zip(out, tb.bounds))


def test_pretraining_with_prediction_layer_kd(nas_teacher, real_data, other_vocab_data, tmp_path, capsys):
    """NAS-BERT's second stage: a chosen arch pre-trained from scratch with KL to the teacher's MLM logits."""
    space = get_space("tiny")
    cands = space.block_candidates()
    arch = str(space.arch([cands[0], cands[90], cands[5], cands[150]]))
    size = "tiny(hidden_size=32,embedding_size=32,num_attention_heads=1,conv_heads=1,intermediate_size=128)"
    out = tmp_path / "kd"
    argv = ["pretrain", "--data", str(real_data), "--arch", arch, "--size", size, "--objective", "mlm", "--teacher",
            str(nas_teacher), "--kd-weight", "0.5", "--steps", "30", "--batch-size", "16", "--lr", "3e-3",
            "--log-every", "1", "--eval-every", "100", "--eval-sequences", "8", "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    rows = [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "kd_loss" in r]
    assert len(rows) == 30
    assert sum(r["kd_loss"] for r in rows[-5:]) < sum(r["kd_loss"] for r in rows[:5])
    assert all(r["loss"] == pytest.approx(0.5 * r["mlm_loss"] + 0.5 * r["kd_loss"], rel=1e-4) for r in rows)
    capsys.readouterr()
    for bad, message in (([*argv[:-1], str(tmp_path / "e"), "--objective", "electra"], "--objective mlm"),
                         ([*argv[:2], str(other_vocab_data), *argv[3:-1], str(tmp_path / "v")], "vocabulary")):  # fmt: skip
        assert main(bad) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
