"""``lvbert convert``: TF1 checkpoints of the official LV-BERT / ELECTRA code into lvbert folders, no TensorFlow.

The parity fixture (tests/fixtures/official_tiny, made by scripts/make_official_fixture.py with
TensorFlow and the official code) holds a real checkpoint and the official forward pass's outputs.
The reader's edge cases use checkpoints written here byte by byte (LevelDB table + bundle protos)."""

from __future__ import annotations

import json
import shutil
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from lvbert.cli import main
from lvbert.convert.tf_bundle import crc32c, masked_crc32c, read_checkpoint
from lvbert.errors import LvBertError

FIXTURE = Path(__file__).parent / "fixtures" / "official_tiny"
PREFIX = FIXTURE / "model.ckpt-1000"


def _one_line(err: str, *words: str) -> None:
    lines = err.strip().splitlines()
    assert lines and lines[-1].startswith("lvbert: error: ") and "Traceback" not in err, err
    for w in words:
        assert w in lines[-1], (w, lines[-1])


# ============================================================================ writing a TF1 bundle by hand


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, value) -> bytes:
    if isinstance(value, bytes):
        return _varint(number << 3 | 2) + _varint(len(value)) + value
    return _varint(number << 3) + _varint(value)


def _block(entries: list[tuple[bytes, bytes]]) -> bytes:
    body, restarts = bytearray(), []
    for key, value in entries:  # a restart at every entry: no shared prefixes
        restarts.append(len(body))
        body += _varint(0) + _varint(len(key)) + _varint(len(value)) + key + value
    restarts = restarts or [0]
    return bytes(body) + b"".join(struct.pack("<I", r) for r in restarts) + struct.pack("<I", len(restarts))


DT = {torch.float32: 1, torch.int32: 3, torch.int64: 9, torch.bfloat16: 14, torch.float16: 19}


def write_bundle(prefix: Path, tensors: dict, shards: int = 1, *, dtype_enum: dict | None = None, sliced=(),
                 corrupt=()) -> None:  # fmt: skip
    """A TF1 tensor bundle: tensors spread round-robin over ``shards`` data files."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    data = [bytearray() for _ in range(shards)]
    entries = []
    for i, name in enumerate(sorted(tensors)):
        t = tensors[name]
        raw = t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        shard = i % shards
        crc = masked_crc32c(raw) ^ (1 if name in corrupt else 0)
        shape = b"".join(_field(2, _field(1, d)) for d in t.shape)
        proto = (_field(1, (dtype_enum or {}).get(name, DT[t.dtype])) + _field(2, shape) + _field(3, shard)
                 + _field(4, len(data[shard])) + _field(5, len(raw)) + _varint(6 << 3 | 5) + struct.pack("<I", crc))  # fmt: skip
        if name in sliced:
            proto += _field(7, _field(1, b""))
        data[shard] += raw
        entries.append((name.encode(), proto))
    header = _field(1, shards) + _field(2, 0) + _field(3, _field(1, 1))
    table = bytearray()

    def put(block: bytes) -> bytes:
        handle = _varint(len(table)) + _varint(len(block))
        table.extend(block + b"\0" + struct.pack("<I", masked_crc32c(block + b"\0")))
        return handle

    data_handle = put(_block([(b"", header)] + entries))
    meta_handle = put(_block([]))
    index_handle = put(_block([(entries[-1][0] + b"\xff", data_handle)]))
    footer = (meta_handle + index_handle).ljust(40, b"\0") + struct.pack("<Q", 0xDB4775248B80FB57)
    prefix.with_name(prefix.name + ".index").write_bytes(bytes(table) + footer)
    for k in range(shards):
        prefix.with_name(f"{prefix.name}.data-{k:05d}-of-{shards:05d}").write_bytes(bytes(data[k]))


# ============================================================================ the reader


def test_crc32c_known_values():
    assert crc32c(b"123456789") == 0xE3069283  # the Castagnoli check value
    assert crc32c(b"") == 0 and crc32c(bytes(32)) == 0x8A9136AA  # RFC 3720 B.4: 32 bytes of zeros
    data = np.random.default_rng(0).integers(0, 256, 100_003, dtype=np.uint8)
    reg = 0xFFFFFFFF  # the vectorised path against the plain bitwise definition
    for b in data.tobytes():
        reg ^= b
        for _ in range(8):
            reg = (reg >> 1) ^ 0x82F63B78 if reg & 1 else reg >> 1
    assert crc32c(data) == reg ^ 0xFFFFFFFF


def test_reader_reads_shards_dtypes_and_empty_tensors(tmp_path):
    g = torch.Generator().manual_seed(0)
    tensors = {
        "a/float": torch.randn(3, 5, generator=g),
        "b/half": torch.randn(7, generator=g).half(),
        "c/bf16": torch.randn(2, 3, generator=g).bfloat16(),
        "d/int64": torch.tensor(1000, dtype=torch.int64),
        "e/int32": torch.arange(6, dtype=torch.int32).reshape(2, 3),
        "f/empty": torch.zeros(0, 4),
        "g/big": torch.randn(300, 300, generator=g),
    }
    write_bundle(tmp_path / "m.ckpt-1", tensors, shards=3)
    assert len(list(tmp_path.glob("m.ckpt-1.data-*-of-00003"))) == 3
    got = read_checkpoint(tmp_path / "m.ckpt-1")
    assert set(got) == set(tensors)
    for name, t in tensors.items():
        assert got[name].dtype == t.dtype and got[name].shape == t.shape and torch.equal(got[name], t), name
    assert set(read_checkpoint(tmp_path / "m.ckpt-1", skip=lambda n: n.startswith("g/"))) == set(tensors) - {"g/big"}


def test_reader_reads_the_real_tensorflow_checkpoint():
    t = read_checkpoint(PREFIX)
    assert t["global_step"].item() == 1000 and t["global_step"].dtype == torch.int64
    assert t["electra/embeddings/word_embeddings"].shape == (48, 16)
    assert any(n.endswith("/adam_m") for n in t)


@pytest.mark.parametrize("case, words", [
    ("crc", ["'w'", "crc32c"]),
    ("truncated", ["truncated", "data-00001-of-00002"]),
    ("missing", ["data-00001-of-00002", "missing"]),
    ("dtype", ["string", "cannot read"]),
    ("sliced", ["sliced", "partitioned"]),
    ("index", ["not a readable TensorFlow checkpoint index"]),
])  # fmt: skip
def test_reader_errors_are_one_line(tmp_path, case, words):
    prefix = tmp_path / "m.ckpt-1"
    tensors = {"v": torch.randn(4, 4), "w": torch.randn(8)}
    write_bundle(prefix, tensors, shards=2, corrupt={"w"} if case == "crc" else (),
                 dtype_enum={"w": 7} if case == "dtype" else None, sliced={"w"} if case == "sliced" else ())  # fmt: skip
    shard = tmp_path / "m.ckpt-1.data-00001-of-00002"  # holds "w"
    if case == "truncated":
        shard.write_bytes(shard.read_bytes()[:-3])
    elif case == "missing":
        shard.unlink()
    elif case == "index":
        index = tmp_path / "m.ckpt-1.index"
        index.write_bytes(index.read_bytes()[:-1] + b"\0")
    with pytest.raises(LvBertError) as e:
        read_checkpoint(prefix)
    assert "\n" not in str(e.value)
    for w in words:
        assert w in str(e.value), (w, str(e.value))


def test_convert_writes_nothing_for_a_broken_checkpoint(tmp_path, capsys):
    broken = tmp_path / "rel"
    shutil.copytree(FIXTURE, broken)
    data = broken / "model.ckpt-1000.data-00000-of-00001"
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    data.write_bytes(bytes(raw))
    assert main(["convert", str(broken), "--out", str(tmp_path / "out")]) == 2
    _one_line(capsys.readouterr().err, "crc32c")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))


# ============================================================================ parity with the official code


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    out = tmp_path_factory.mktemp("convert") / "both"
    assert main(["convert", str(FIXTURE), "--out", str(out), "--part", "both"]) == 0
    return out


def _outputs(model, expected):
    ids, mask, types = (torch.from_numpy(expected[k]).long() for k in ("input_ids", "attention_mask", "token_type_ids"))
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, token_type_ids=types, output_hidden_states=True)
    return torch.stack(out.hidden_states).numpy(), out.logits.numpy()


def test_converted_models_reproduce_the_official_outputs(converted):
    from transformers import AutoModelForMaskedLM, AutoModelForPreTraining

    expected = np.load(FIXTURE / "expected.npz")
    disc = AutoModelForPreTraining.from_pretrained(converted / "discriminator").eval()
    gen = AutoModelForMaskedLM.from_pretrained(converted / "generator").eval()
    assert type(disc).__name__ == "LvBertForPreTraining" and type(gen).__name__ == "LvBertForMaskedLM"
    for model, key in ((disc, "disc"), (gen, "gen")):
        hidden, logits = _outputs(model, expected)
        assert hidden.shape == expected[f"{key}_hidden"].shape  # the embeddings' output, then every slot's
        np.testing.assert_allclose(hidden, expected[f"{key}_hidden"], atol=1e-5, rtol=0)
        np.testing.assert_allclose(logits, expected[f"{key}_logits"], atol=1e-5, rtol=0)
    assert np.abs(expected["disc_logits"]).max() > 0.1  # not a trivially small target
    from transformers import AutoModel

    backbone = AutoModel.from_pretrained(converted / "discriminator").eval()  # the encoder alone, as AutoModel reads it
    hidden, _ = _outputs(disc, expected)
    with torch.no_grad():
        last = backbone(**{k: torch.from_numpy(expected[k]).long() for k in ("input_ids", "attention_mask", "token_type_ids")})
    np.testing.assert_allclose(last.last_hidden_state.numpy(), hidden[-1], atol=1e-6, rtol=0)
    # Masking padding (lvbert's default) moves real tokens next to the padding: the official code does not mask.
    disc.config.conv_mask_padding = True
    masked = type(disc)(disc.config)
    masked.load_state_dict(disc.state_dict())
    _, logits = _outputs(masked.eval(), expected)
    real = expected["attention_mask"].astype(bool)
    assert np.abs(logits - expected["disc_logits"])[real].max() > 1e-3


def test_arch_and_sizes_come_from_the_checkpoint(converted):
    disc = json.loads((converted / "discriminator" / "config.json").read_text())
    gen = json.loads((converted / "generator" / "config.json").read_text())
    assert disc["arch"] == gen["arch"] == "CAFCAF"  # the fixture's layer list [0, 1, 2, 0, 1, 2]
    assert (disc["hidden_size"], disc["embedding_size"], disc["intermediate_size"], disc["num_attention_heads"],
            disc["conv_heads"], disc["conv_kernel_size"], disc["vocab_size"], disc["max_position_embeddings"]) == (
            32, 16, 64, 2, 2, 9, 48, 16)  # fmt: skip
    assert (gen["hidden_size"], gen["intermediate_size"], gen["num_attention_heads"]) == (8, 32, 1)
    assert disc["conv_mask_padding"] is False and gen["conv_mask_padding"] is False


def test_converted_parameters_are_the_checkpoint_tensors(converted):
    ckpt = read_checkpoint(PREFIX)
    disc = load_file(str(converted / "discriminator" / "model.safetensors"))
    gen = load_file(str(converted / "generator" / "model.safetensors"))
    # Attention by position: rows q, k, v of the fused projection (a dropped key bias changes no output).
    for model, scope in ((disc, "electra"), (gen, "generator")):
        for slot, tf in ((1, "layer_0/second_submodule"), (4, "layer_2/first_submodule")):
            w, b = model[f"lvbert.encoder.slots.{slot}.qkv.weight"], model[f"lvbert.encoder.slots.{slot}.qkv.bias"]
            H = w.shape[1]
            for i, n in enumerate(("query", "key", "value")):
                assert torch.equal(w[i * H : (i + 1) * H], ckpt[f"{scope}/encoder/{tf}/attention/self/{n}/kernel"].t())
                assert torch.equal(b[i * H : (i + 1) * H], ckpt[f"{scope}/encoder/{tf}/attention/self/{n}/bias"])
    assert torch.equal(gen["mlm_head.decoder.bias"], ckpt["generator_predictions/output_bias"])
    # Every model tensor of the checkpoint is somewhere in the converted weights (values are all distinct).
    pieces = [t for sd in (disc, gen) for name, t in sd.items()
              for t in (t.chunk(3) if ".qkv." in name else (t,))]  # fmt: skip
    have = {tuple(sorted(t.flatten().tolist())) for t in pieces}
    model_tensors = [n for n in ckpt if n != "global_step" and not n.endswith(("adam_m", "adam_v"))]
    assert len(model_tensors) == 134
    for name in model_tensors:
        assert tuple(sorted(ckpt[name].flatten().tolist())) in have, name


def test_paths_zip_folder_prefix_and_output_rules(converted, tmp_path, capsys):
    ref = load_file(str(converted / "discriminator" / "model.safetensors"))
    archive = tmp_path / "lv-bert-tiny.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in FIXTURE.iterdir():
            if f.name != "expected.npz":
                z.write(f, f"lv-bert-tiny/{f.name}")
    for i, path in enumerate((archive, PREFIX)):
        assert main(["convert", str(path), "--out", str(tmp_path / f"o{i}")]) == 0
        got = load_file(str(tmp_path / f"o{i}" / "model.safetensors"))
        assert got.keys() == ref.keys() and all(torch.equal(got[k], ref[k]) for k in ref)
    out = capsys.readouterr().out
    assert "arch CAFCAF" in out and "(269 optimizer / step tensors skipped)" in out
    assert main(["convert", str(PREFIX), "--out", str(tmp_path / "o1")]) == 2
    _one_line(capsys.readouterr().err, "--overwrite")
    assert main(["convert", str(PREFIX), "--out", str(tmp_path / "o1"), "--overwrite", "--part", "generator"]) == 0
    assert json.loads((tmp_path / "o1" / "config.json").read_text())["architectures"] == ["LvBertForMaskedLM"]
    assert main(["convert", str(FIXTURE), "--out", str(FIXTURE / "sub")]) == 2
    _one_line(capsys.readouterr().err, "destroy the input")
    assert main(["convert", str(tmp_path / "nothing"), "--out", str(tmp_path / "o3")]) == 2
    _one_line(capsys.readouterr().err, "neither a checkpoint prefix")


# ============================================================================ other checkpoints


def _electra_checkpoint(model, prefix: Path, task_head: torch.nn.Linear | None = None) -> None:
    """Write an lvbert ``AF`` x n model under google-research/electra's variable names."""
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    out = {}

    def dense(tf, lv):
        out[f"{tf}/kernel"], out[f"{tf}/bias"] = sd[f"{lv}.weight"].t().contiguous(), sd[f"{lv}.bias"]

    def norm(tf, lv):
        out[f"{tf}/gamma"], out[f"{tf}/beta"] = sd[f"{lv}.weight"], sd[f"{lv}.bias"]

    for n in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        out[f"electra/embeddings/{n}"] = sd[f"lvbert.embeddings.{n}.weight"]
    norm("electra/embeddings/LayerNorm", "lvbert.embeddings.LayerNorm")
    dense("electra/embeddings_project", "lvbert.embeddings.project")
    for i in range(model.config.num_slots // 2):
        a, f, tf = f"lvbert.encoder.slots.{2 * i}", f"lvbert.encoder.slots.{2 * i + 1}", f"electra/encoder/layer_{i}"
        H = model.config.hidden_size
        for j, n in enumerate(("query", "key", "value")):
            out[f"{tf}/attention/self/{n}/kernel"] = sd[f"{a}.qkv.weight"][j * H : (j + 1) * H].t().contiguous()
            out[f"{tf}/attention/self/{n}/bias"] = sd[f"{a}.qkv.bias"][j * H : (j + 1) * H].contiguous()
        dense(f"{tf}/attention/output/dense", f"{a}.dense")
        norm(f"{tf}/attention/output/LayerNorm", f"{a}.LayerNorm")
        dense(f"{tf}/intermediate/dense", f"{f}.intermediate")
        dense(f"{tf}/output/dense", f"{f}.output")
        norm(f"{tf}/output/LayerNorm", f"{f}.LayerNorm")
    if task_head is None:
        dense("discriminator_predictions/dense", "discriminator_head.dense")
        dense("discriminator_predictions/dense_1", "discriminator_head.out")
    else:
        out["task_specific/mrpc/dense/kernel"] = task_head.weight.detach().t().contiguous()
        out["task_specific/mrpc/dense/bias"] = task_head.bias.detach()
        out["task_specific/mrpc/dense/kernel/adam_m"] = torch.zeros_like(out["task_specific/mrpc/dense/kernel"])
    out["global_step"] = torch.tensor(5, dtype=torch.int64)
    write_bundle(prefix, out)
    (prefix.parent / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
                                                       + [f"w{i}" for i in range(model.config.vocab_size - 5)]) + "\n")  # fmt: skip


def _random(model):
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return model.eval()


@pytest.mark.parametrize("finetuned", [False, True])
def test_electra_checkpoints_become_af_models(tmp_path, capsys, finetuned):
    from transformers import AutoModelForPreTraining, AutoModelForSequenceClassification

    from lvbert.modeling_lvbert import LvBertConfig, LvBertForPreTraining

    # heads: an ELECTRA checkpoint does not record them; the official rule max(1, hidden // 64) gives 2 here
    config = LvBertConfig(arch="AFAF", vocab_size=40, hidden_size=128, num_attention_heads=2, conv_heads=2,
                          intermediate_size=96, embedding_size=16, max_position_embeddings=20, conv_mask_padding=False)  # fmt: skip
    source = _random(LvBertForPreTraining(config))
    head = torch.nn.Linear(128, 3) if finetuned else None
    _electra_checkpoint(source, tmp_path / "electra" / "model.ckpt-5", head)
    assert main(["convert", str(tmp_path / "electra"), "--out", str(tmp_path / "out")]) == 0
    assert "arch AFAF" in capsys.readouterr().out
    ids = torch.randint(0, 40, (2, 9), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        hidden = source.lvbert(ids).last_hidden_state
        if finetuned:
            model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "out").eval()
            assert model.config.num_labels == 3 and model.config.finetuning_task == "mrpc"
            torch.testing.assert_close(model(ids).logits, head(hidden[:, 0]), atol=1e-5, rtol=0)
        else:
            model = AutoModelForPreTraining.from_pretrained(tmp_path / "out").eval()
            torch.testing.assert_close(model(ids).logits, source(ids).logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(model.lvbert(ids).last_hidden_state, hidden, atol=1e-5, rtol=0)
    assert main(["convert", str(tmp_path / "electra"), "--out", str(tmp_path / "g"), "--part", "generator"]) == 2
    _one_line(capsys.readouterr().err, "no generator", "--part discriminator")


def test_unknown_variables_are_refused(tmp_path, capsys):
    tensors = read_checkpoint(PREFIX)
    tensors["electra/encoder/layer_0/second_submodule/attention/self/q_ghost_weights"] = torch.randn(32)
    write_bundle(tmp_path / "x" / "model.ckpt-1", tensors)
    shutil.copy(FIXTURE / "vocab.txt", tmp_path / "x" / "vocab.txt")
    assert main(["convert", str(tmp_path / "x"), "--out", str(tmp_path / "out")]) == 2
    _one_line(capsys.readouterr().err, "cannot map", "q_ghost_weights")
    assert not (tmp_path / "out").exists()


# ============================================================================ the existing commands take a converted model


def test_converted_model_finetunes_quantizes_and_evaluates(converted, tmp_path):
    words = [w for w in (FIXTURE / "vocab.txt").read_text().split() if not w.startswith(("[", "##"))]
    rng = np.random.default_rng(0)
    data = tmp_path / "task"
    data.mkdir()
    for split, n in (("train", 32), ("dev", 16)):
        rows = []
        for i in range(n):
            text = list(rng.choice([w for w in words if w != "good"], size=4))
            if i % 2:
                text.insert(2, "good")
            rows.append(f"{' '.join(text)}\t{'yes' if i % 2 else 'no'}")
        (data / f"{split}.tsv").write_text("text\tlabel\n" + "\n".join(rows) + "\n")
    task = ["--task", "good-word", "--data-dir", str(data), "--text-column", "text", "--no-progress"]
    ft = tmp_path / "ft"
    assert main(["finetune", "--model", str(converted / "discriminator"), *task, "--max-steps", "2", "--out", str(ft)]) == 0
    assert json.loads((ft / "config.json").read_text())["conv_mask_padding"] is False  # kept through fine-tuning
    assert main(["quantize", "--model", str(ft), *task, "--epochs", "1", "--out", str(tmp_path / "q")]) == 0
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(" ".join(rng.choice(words, size=12)) for _ in range(8)) + "\n")
    assert main(["eval", "--model", str(converted / "generator"), "--corpus", str(corpus), "--seq-len", "16",
                 "--sequences", "4", "--json"]) == 0  # fmt: skip
