"""What a fault and bad-input battery found, each as a test that failed before its fix: folders
never deleted, checkpoints never unpickled, broken checkpoints skipped, results kept on resume,
file-system failures as one line, umask permissions, staging folders cleaned, refusals where
the input is wrong; and a CLI-level battery (kill -9 mid-checkpoint, truncated files, a full and
a read-only file system, a planted pickle)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from fixtures_data import make_fake_archives
from lvbert.cli import main
from lvbert.errors import LvBertError
from lvbert.training.checkpoint import list_checkpoints

ROOT = Path(__file__).resolve().parents[1]


def _sn(real_data, out, *extra):
    return ["supernet", "train", "--size", "tiny", "--num-slots", "4", "--data", str(real_data), "--steps", "4",
            "--batch-size", "8", "--save-every", "2", "--keep-last", "3", "--eval-every", "100", "--eval-sequences", "8",
            "--warmup-steps", "1", "--log-every", "1", "--no-progress", "--out", str(out), *extra]  # fmt: skip


def _losses(run: Path) -> list:
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in recs if "loss" in r]


def _one_line(err: str, *words: str) -> None:
    lines = err.strip().splitlines()
    assert lines and lines[-1].startswith("lvbert: error: ") and "Traceback" not in err, err
    for w in words:
        assert w in lines[-1], (w, lines[-1])


# ----------------------------------------------------------------------------- 2. tokenizer train never deletes a folder


def test_tokenizer_train_refuses_a_folder_that_holds_more_than_a_tokenizer(real_corpus, real_data, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(_sn(real_data, run)) == 0
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    argv = ["tokenizer", "train", "--corpus", str(real_corpus), "--vocab-size", "500", "--out", str(run)]
    for extra in ([], ["--overwrite"]):
        capsys.readouterr()
        assert main(argv + extra) == 2
        _one_line(capsys.readouterr().err, "holds more than a tokenizer", "refusing")
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before  # the run is untouched
    tok = tmp_path / "tok"
    assert main(argv[:-1] + [str(tok)]) == 0
    assert main(argv[:-1] + [str(tok)]) == 2  # a tokenizer folder: only with --overwrite
    assert "--overwrite" in capsys.readouterr().err
    assert main(argv[:-1] + [str(tok), "--overwrite"]) == 0


# ----------------------------------------------------------------------------- 3. no unpickling on resume

_PAYLOAD = textwrap.dedent(
    """
    import os, torch
    class Planted:
        def __reduce__(self):
            return (os.system, ("touch {marker}",))
    torch.save({{"python": Planted(), "numpy": {{}}, "torch": torch.get_rng_state()}}, "{target}")
    """
)


@pytest.mark.parametrize("name", ["rng.pt", "optimizer.pt", "scheduler.pt"])
def test_resume_refuses_a_planted_pickle_and_runs_no_code(real_data, tmp_path, capsys, name, monkeypatch):
    from lvbert.training import loop

    real_save = loop.save_checkpoint

    def save_then_stop(*args, **kwargs):  # an interrupted run: killed right after its step-2 checkpoint
        path = real_save(*args, **kwargs)
        if path.name.endswith("2"):
            raise KeyboardInterrupt
        return path

    run = tmp_path / "run"
    monkeypatch.setattr(loop, "save_checkpoint", save_then_stop)
    assert main(_sn(real_data, run, "--steps", "3", "--save-every", "1", "--keep-last", "1")) == 130
    monkeypatch.setattr(loop, "save_checkpoint", real_save)
    marker = tmp_path / "code-ran"
    target = list_checkpoints(run)[-1] / name
    subprocess.run([sys.executable, "-c", _PAYLOAD.format(marker=marker, target=target)], check=True)
    capsys.readouterr()
    assert main(_sn(real_data, run, "--steps", "3", "--save-every", "1", "--keep-last", "1", "--resume")) == 2
    err = capsys.readouterr().err
    _one_line(err, "no checkpoint", "can be read")
    assert "refusing to load it" in err and name in err
    assert not marker.exists()


# ----------------------------------------------------------------------------- 4. a broken checkpoint is skipped


@pytest.mark.parametrize("broken", ["model.safetensors", "optimizer.pt", "trainer_state.json"])
def test_resume_skips_a_broken_latest_checkpoint(real_data, tmp_path, capsys, broken):
    straight = tmp_path / "straight"
    assert main(_sn(real_data, straight)) == 0
    run = tmp_path / "run"
    assert main(_sn(real_data, run, "--steps", "4")) == 0
    newest = list_checkpoints(run)[-1]
    assert newest.name == "step-00000004"
    path = newest / broken
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 3])  # cut, as by a full disk
    for f in ("model.safetensors", "summary.json"):
        (run / f).unlink()
    capsys.readouterr()
    assert main(_sn(real_data, run, "--resume")) == 0
    err = capsys.readouterr().err
    assert "checkpoint step-00000004 is broken" in err and broken in err and "trying the one before it" in err
    assert _losses(run) == _losses(straight)  # resumed from step 2: the same run
    a, b = load_file(straight / "model.safetensors"), load_file(run / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_with_every_checkpoint_broken_is_one_line(real_data, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(_sn(real_data, run)) == 0
    for ckpt in list_checkpoints(run):
        (ckpt / "trainer_state.json").write_text("{not json")
    capsys.readouterr()
    assert main(_sn(real_data, run, "--resume")) == 2
    _one_line(capsys.readouterr().err, "no checkpoint of", "can be read")


# ----------------------------------------------------------------------------- 5. resuming a finished run keeps its results


def test_resume_of_a_finished_run_keeps_its_validation(real_data, tmp_path):
    run = tmp_path / "run"
    assert main(_sn(real_data, run, "--eval-every", "2")) == 0
    before = json.loads((run / "summary.json").read_text())
    assert before["validation"]
    assert main(_sn(real_data, run, "--eval-every", "2", "--resume")) == 0
    assert json.loads((run / "summary.json").read_text()) == before


# ----------------------------------------------------------------------------- 6. file-system failures


def test_out_that_is_a_file_is_one_line(real_corpus, real_data, real_tokenizer, tmp_path, capsys):
    f = tmp_path / "a-file"
    f.write_text("keep me")
    supernet = tmp_path / "sn"
    assert main(_sn(real_data, supernet, "--steps", "1")) == 0
    for argv in (
        _sn(real_data, f),
        ["pretrain", "--size", "tiny", "--arch", "AFAF", "--objective", "mlm", "--data", str(real_data), "--out", str(f)],
        ["search", "--supernet", str(supernet), "--data", str(real_data), "--out", str(f)],
        ["tokenizer", "train", "--corpus", str(real_corpus), "--out", str(f)],
        ["data", "prepare", "--corpus", str(real_corpus), "--tokenizer", str(real_tokenizer), "--out", str(f)],
    ):
        capsys.readouterr()
        assert main(argv) == 2, argv
        _one_line(capsys.readouterr().err, "is a file, not a folder")
    assert f.read_text() == "keep me"


@pytest.fixture
def small_fs(tmp_path):
    """A 1 MB tmpfs (the run does not fit: its checkpoint write fails), or a skip where mounting is not allowed."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root); the full-disk test runs where it can")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_full_disk_is_one_line_and_leaves_no_staging_folder(real_data, small_fs, tmp_path):
    out = small_fs / "run"
    p = subprocess.run([sys.executable, "-m", "lvbert", *_sn(real_data, out, "--steps", "2", "--save-every", "1")],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert p.returncode == 1, p.stderr
    _one_line(p.stderr, "cannot write")
    assert not list((out / "checkpoints").glob("*.tmp*")) if (out / "checkpoints").exists() else True


def test_read_only_file_system_is_one_line(real_data, small_fs):
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    p = subprocess.run([sys.executable, "-m", "lvbert", *_sn(real_data, small_fs / "run")],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert p.returncode == 1, p.stderr
    _one_line(p.stderr, "read-only file system")


def test_failed_checkpoint_save_removes_its_temporary_folder(tmp_path, monkeypatch):
    from lvbert.training import checkpoint

    model = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters())

    def full_disk(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", full_disk)
    with pytest.raises(OSError):
        checkpoint.save_checkpoint(tmp_path, 3, model, opt, None, {})
    assert list((tmp_path / "checkpoints").iterdir()) == []


# ----------------------------------------------------------------------------- 7. a swapped tokenizer in the data folder


def test_data_folder_with_a_swapped_tokenizer_is_refused_when_opened(real_data, other_vocab_data, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(real_data, data)
    shutil.rmtree(data / "tokenizer")
    shutil.copytree(other_vocab_data / "tokenizer", data / "tokenizer")
    assert main(_sn(data, tmp_path / "run")) == 2
    _one_line(capsys.readouterr().err, "is not the one", "prepare the data again")
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- 8. finetune of a supernet folder


def test_finetune_refuses_a_supernet_and_says_to_extract(real_data, tmp_path, capsys):
    sn = tmp_path / "sn"
    assert main(_sn(real_data, sn, "--steps", "1")) == 0
    capsys.readouterr()
    assert main(["finetune", "--model", str(sn), "--task", "polarity", "--out", str(tmp_path / "ft")]) == 2
    _one_line(capsys.readouterr().err, "is a supernet", "lvbert supernet extract")
    assert main(["supernet", "extract", "--supernet", str(sn), "--arch", "CAFA", "--out", str(tmp_path / "x")]) == 0
    from lvbert.model_dir import load_model_config

    assert load_model_config(tmp_path / "x").arch == "CAFA"


# ----------------------------------------------------------------------------- 9. umask permissions


def test_written_files_follow_the_umask(real_corpus, real_tokenizer, real_data, tmp_path):
    old = os.umask(0o022)
    try:
        assert main(["data", "prepare", "--corpus", str(real_corpus), "--tokenizer", str(real_tokenizer), "--seq-len",
                     "64", "--out", str(tmp_path / "data")]) == 0  # fmt: skip
        assert main(["tokenizer", "train", "--corpus", str(real_corpus), "--vocab-size", "300", "--out",
                     str(tmp_path / "tok")]) == 0  # fmt: skip
        assert main(_sn(real_data, tmp_path / "run", "--steps", "2")) == 0
        archives = make_fake_archives(tmp_path / "archives")
        assert main(["data", "fetch", "demo", "--cache", str(tmp_path / "cache"), "--archives", str(archives)]) == 0
    finally:
        os.umask(old)
    for root in ("data", "tok", "run", "cache/demo"):
        for p in [tmp_path / root, *(tmp_path / root).rglob("*")]:
            mode = stat.S_IMODE(p.stat().st_mode)
            assert mode == (0o755 if p.is_dir() else 0o644), (p, oct(mode))


# ----------------------------------------------------------------------------- 10. staging folders of killed runs


def test_staging_folders_of_killed_runs_are_removed(real_corpus, real_tokenizer, tmp_path):
    dead = 2**22 + 12345  # above the default pid_max: no such process
    out = tmp_path / "data"
    for stale in (f".data.tmp-{dead}-abc123", f".data.old-{dead}-def456", ".data.tmpq8x1"):
        (tmp_path / stale).mkdir()
        (tmp_path / stale / "x.npy").write_bytes(b"0" * 100)
    live = tmp_path / f".data.tmp-{os.getppid()}-aaaaaa"  # a run still going: left alone
    live.mkdir()
    assert main(["data", "prepare", "--corpus", str(real_corpus), "--tokenizer", str(real_tokenizer), "--seq-len", "64",
                 "--out", str(out)]) == 0  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["data", live.name])


# ----------------------------------------------------------------------------- 11. search --resume, binary corpus


def test_search_resume_of_a_missing_folder_is_refused(real_data, tmp_path, capsys):
    sn = tmp_path / "sn"
    assert main(_sn(real_data, sn, "--steps", "1")) == 0
    capsys.readouterr()
    argv = ["search", "--supernet", str(sn), "--data", str(real_data), "--out", str(tmp_path / "nowhere"), "--resume"]
    assert main(argv) == 2
    _one_line(capsys.readouterr().err, "cannot resume", "holds no search")
    assert not (tmp_path / "nowhere").exists()


def test_binary_corpus_is_refused(real_tokenizer, tmp_path, capsys):
    binary = Path(sys.executable).resolve()
    for argv in (["tokenizer", "train", "--corpus", str(binary), "--out", str(tmp_path / "tok")],
                 ["data", "prepare", "--corpus", str(binary), "--tokenizer", str(real_tokenizer), "--out",
                  str(tmp_path / "d")]):  # fmt: skip
        assert main(argv) == 2
        _one_line(capsys.readouterr().err, "is not a text file")
    assert not (tmp_path / "tok").exists() and not (tmp_path / "d").exists()


# ----------------------------------------------------------------------------- the CLI battery: kill -9 mid-checkpoint

_KILL_DURING_SAVE = textwrap.dedent(
    """
    import os, signal, sys
    import lvbert.training.checkpoint as ck
    real = ck.save_model
    def killed(model, path, *a, **k):
        if "step-00000004" in str(path):  # half a checkpoint on disk, then the process dies
            with open(path, "wb") as f:
                f.write(b"partial")
            os.kill(os.getpid(), signal.SIGKILL)
        return real(model, path, *a, **k)
    ck.save_model = killed
    from lvbert.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def test_kill_during_a_checkpoint_write_then_resume_is_bit_identical(real_data, tmp_path):
    straight = tmp_path / "straight"
    assert main(_sn(real_data, straight, "--steps", "6")) == 0
    run = tmp_path / "run"
    p = subprocess.run([sys.executable, "-c", _KILL_DURING_SAVE, *_sn(real_data, run, "--steps", "6")],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert p.returncode == -signal.SIGKILL, p.stderr
    assert [c.name for c in list_checkpoints(run)] == ["step-00000002"]  # the half-written one is not trusted
    assert list((run / "checkpoints").glob("*.tmp*"))  # it is there, unfinished
    assert main(_sn(real_data, run, "--steps", "6", "--resume")) == 0
    assert _losses(run) == _losses(straight)
    a, b = load_file(straight / "model.safetensors"), load_file(run / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not list((run / "checkpoints").glob("*.tmp*"))  # cleaned by the next save


def test_python_api_errors_are_lvbert_errors(tmp_path):
    from lvbert.data.tokenizer import train_tokenizer

    (tmp_path / "tok").mkdir()
    (tmp_path / "tok" / "checkpoints").mkdir()
    with pytest.raises(LvBertError, match="holds more than a tokenizer"):
        train_tokenizer(tmp_path / "corpus.txt", tmp_path / "tok", overwrite=True)
