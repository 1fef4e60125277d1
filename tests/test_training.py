"""The one training loop through its recipes: resume equality, atomic checkpoints,
falling losses on real text, bad input, and two processes under torchrun (gloo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lvbert.errors import LvBertError
from lvbert.recipes.pretrain import PretrainConfig, pretrain
from lvbert.recipes.supernet import SupernetTrainConfig, train_supernet
from lvbert.space import ArchSampler
from lvbert.training.checkpoint import latest_checkpoint, list_checkpoints


def _losses(run: Path) -> list[tuple[int, float]]:
    recs = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in recs if "loss" in r]


def _supernet_cfg(data, out, **kw):
    base = dict(data=str(data), out=str(out), size="tiny", num_slots=6, steps=6, batch_size=8, log_every=1,
                save_every=2, eval_every=100, eval_sequences=16, progress=False, warmup_steps=2)
    base.update(kw)
    return SupernetTrainConfig(**base)


def test_supernet_resume_equals_uninterrupted_run(real_data, tmp_path, monkeypatch):
    straight = train_supernet(_supernet_cfg(real_data, tmp_path / "a"))

    calls = {"n": 0}
    real_call = ArchSampler.__call__

    def killed_at_step_5(self, step):
        if step == 5 and calls["n"] == 0:
            calls["n"] += 1
            raise KeyboardInterrupt  # killed after the step-4 checkpoint, mid-run
        return real_call(self, step)

    monkeypatch.setattr(ArchSampler, "__call__", killed_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        train_supernet(_supernet_cfg(real_data, tmp_path / "b"))
    assert latest_checkpoint(tmp_path / "b").name == "step-00000004"
    resumed = train_supernet(_supernet_cfg(real_data, tmp_path / "b"), resume=True)

    assert _losses(straight) == _losses(resumed)
    assert [s for s, _ in _losses(resumed)] == [1, 2, 3, 4, 5, 6]
    a, b = load_file(straight / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert len(list_checkpoints(resumed)) == 2  # keep_last


def test_fresh_run_refuses_to_overwrite_and_resume_checks_identity(real_data, tmp_path):
    out = train_supernet(_supernet_cfg(real_data, tmp_path / "r", steps=2, save_every=1))
    with pytest.raises(LvBertError, match="--resume"):
        train_supernet(_supernet_cfg(real_data, out, steps=2))
    with pytest.raises(LvBertError, match="allowed"):
        train_supernet(_supernet_cfg(real_data, out, steps=2, allowed="AF"), resume=True)
    with pytest.raises(LvBertError, match="holds no run"):
        train_supernet(_supernet_cfg(real_data, tmp_path / "empty", steps=2), resume=True)
    # a checkpoint folder cut by a kill is ignored
    (out / "checkpoints" / "step-00000009.tmp-1").mkdir()
    assert latest_checkpoint(out).name == "step-00000002"


def test_supernet_loss_falls_for_every_probe(real_data, tmp_path):
    out = train_supernet(_supernet_cfg(real_data, tmp_path / "s", num_slots=24, steps=60, batch_size=16,
                                       lr=2e-3, warmup_steps=5, eval_every=10, save_every=60, eval_sequences=32))
    evals = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [e for e in evals if any(k.startswith("eval/") for k in e)]
    first, last = evals[0], evals[-1]
    probes = [k for k in first if k.endswith("/mlm_loss")]
    assert len(probes) == 4
    for key in probes:
        assert last[key] < first[key] - 0.2, (key, first[key], last[key])
    from lvbert.supernet import LvBertSupernet

    net = LvBertSupernet.from_pretrained(out)
    assert (out / "space.json").exists() and net.num_slots == 24


@pytest.mark.parametrize("objective", ["electra", "mlm"])
def test_pretrain_loss_falls_and_output_loads(real_data, tmp_path, objective):
    from transformers import AutoModel, AutoTokenizer

    cfg = PretrainConfig(data=str(real_data), out=str(tmp_path / objective), arch="AFCAFCAF", size="tiny",
                         objective=objective, steps=40, batch_size=16, lr=2e-3, warmup_steps=4, log_every=1,
                         save_every=40, eval_every=40, eval_sequences=32, progress=False)
    out = pretrain(cfg)
    losses = [l for _, l in _losses(out)]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.3
    backbone = AutoModel.from_pretrained(out)
    assert type(backbone).__name__ == "LvBertModel" and backbone.config.arch == "AFCAFCAF"
    assert len(AutoTokenizer.from_pretrained(out)) == backbone.config.vocab_size
    assert (out / "generator" / "config.json").exists() == (objective == "electra")


def test_pretrain_electra_resume_equality(real_data, tmp_path, monkeypatch):
    def cfg(out):
        return PretrainConfig(data=str(real_data), out=str(out), arch="CAFFAC", size="tiny", objective="electra",
                              steps=4, batch_size=8, log_every=1, save_every=2, eval_every=100, eval_sequences=8,
                              progress=False, warmup_steps=1)

    straight = pretrain(cfg(tmp_path / "a"))
    import lvbert.training.loop as loop

    real_save = loop.save_checkpoint

    def save_then_die(out_dir, step, *a, **k):
        path = real_save(out_dir, step, *a, **k)
        if step == 2:
            raise KeyboardInterrupt
        return path

    monkeypatch.setattr(loop, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        pretrain(cfg(tmp_path / "b"))
    monkeypatch.setattr(loop, "save_checkpoint", real_save)
    resumed = pretrain(cfg(tmp_path / "b"), resume=True)
    assert _losses(straight) == _losses(resumed)


def test_bad_input_is_one_line_exit_2(real_data, tmp_path, capsys):
    from lvbert.cli import main

    cases = [
        ["supernet", "train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o1"), "--size", "tiny"],
        ["supernet", "train", "--data", str(real_data), "--out", str(tmp_path / "o2"), "--sampling", "greedy"],
        ["pretrain", "--data", str(real_data), "--out", str(tmp_path / "o3"), "--arch", "CAX", "--size", "tiny"],
        ["pretrain", "--data", str(real_data), "--out", str(tmp_path / "o4"), "--objective", "clm"],
        ["pretrain", "--data", str(real_data), "--out", str(tmp_path / "o5"), "--size", "tiny", "--steps", "0"],
    ]
    for argv in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and err.startswith("lvbert: error:"), err
    assert not any((tmp_path / f"o{i}").exists() for i in range(1, 6))


def test_data_prepared_with_longer_sequences_than_positions(real_corpus, real_tokenizer, tmp_path):
    from lvbert.data.prepare import prepare_data

    data = prepare_data(real_corpus, real_tokenizer, tmp_path / "d256", 256, valid_fraction=0.05, progress=False)
    with pytest.raises(LvBertError, match="positions"):
        train_supernet(_supernet_cfg(data, tmp_path / "o"))  # tiny has 128 positions
    assert not (tmp_path / "o").exists()


_DIST_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, torch
    from lvbert.data.masking import MaskingConfig
    from lvbert.objectives import mlm_objective
    from lvbert.space import ArchSampler
    from lvbert.supernet import LvBertSupernet
    from lvbert.training.batches import PretrainBatches
    from lvbert.training.distributed import setup_distributed, all_gather_objects, cleanup
    from lvbert.training.loop import LoopConfig, train_loop
    from lvbert.training.optim import build_optimizer, linear_schedule

    data, out, global_batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
    info = setup_distributed("cpu")
    torch.manual_seed(0)
    model = LvBertSupernet.from_size("tiny", num_slots=6, vocab_size=2000, hidden_dropout_prob=0.0,
                                     attention_probs_dropout_prob=0.0)
    init = torch.cat([p.detach().flatten() for p in model.parameters()])[:20000].clone()
    opt = build_optimizer(model, 1e-3)
    sched = linear_schedule(opt, 1, 4)
    micro = global_batch // info.world_size
    batches = PretrainBatches(data, micro, 1, info.rank, info.world_size, MaskingConfig(), seed=0)
    sampler = ArchSampler(["CAF"] * 6, seed=0)
    archs = []
    def before(step):
        archs.append(sampler(step))
        return {"arch": archs[-1]}
    res = train_loop(model, mlm_objective, batches, opt, sched,
                     LoopConfig(out_dir=out, max_steps=4, log_every=1, progress=False, tensorboard=False),
                     dist_info=info, before_step=before, find_unused_parameters=True)
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    gathered = all_gather_objects({"archs": archs, "sum": float(flat.double().sum()),
                                   "first": flat[:20000].tolist(), "init": init.tolist()}, info)
    if info.rank == 0:
        losses = [json.loads(l)["loss"] for l in open(os.path.join(out, "metrics.jsonl")) if '"loss"' in l]
        json.dump({"ranks": gathered, "losses": losses}, open(os.path.join(out, "result.json"), "w"))
    cleanup(info)
    """
)


def test_two_processes_match_one_process(real_data, tmp_path):
    script = tmp_path / "dist_train.py"
    script.write_text(_DIST_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    two = tmp_path / "two"
    import socket

    with socket.socket() as sock:  # a free port, so parallel test runs do not collide
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
           str(script), str(real_data), str(two), "8"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    one = tmp_path / "one"
    proc = subprocess.run([sys.executable, str(script), str(real_data), str(one), "8"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r2 = json.loads((two / "result.json").read_text())
    r1 = json.loads((one / "result.json").read_text())
    rank0, rank1 = r2["ranks"]
    assert rank0["archs"] == rank1["archs"] == r1["ranks"][0]["archs"]  # same path on every rank
    assert rank0["first"] == rank1["first"] and rank0["sum"] == rank1["sum"]  # weights identical across ranks
    # same global batch. Each rank averages over its own masked tokens and DDP averages the
    # ranks, so the loss weights tokens slightly differently from one process (counts per
    # rank differ by a few tokens); Adam then amplifies float-order noise on tiny gradients.
    assert r2["losses"] == pytest.approx(r1["losses"], rel=1e-3)
    # weights: the two runs differ by far less than the training moved them
    one_w, two_w, init = (torch.tensor(x) for x in (r1["ranks"][0]["first"], rank0["first"], rank0["init"]))
    moved = (one_w - init).abs().mean()
    assert moved > 1e-4
    assert (two_w - one_w).abs().mean() < 0.05 * moved
