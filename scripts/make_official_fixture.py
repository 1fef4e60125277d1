"""Write tests/fixtures/official_tiny/: a real TF1 checkpoint made by the official LV-BERT code, and
the official forward pass's outputs on fixed inputs (what ``lvbert convert`` must reproduce).

NOT run by the tests, and not a dependency of lvbert: it needs TensorFlow and the official code.
In a throw-away environment::

    python3 -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu tf-keras numpy
    git clone https://github.com/yuweihao/LV-BERT /tmp/LV-BERT
    /tmp/tfvenv/bin/python scripts/make_official_fixture.py --official /tmp/LV-BERT --out tests/fixtures/official_tiny

The official code is TF1 (1.15). It runs here unchanged under ``tensorflow.compat.v1`` with
two run-time patches and no edited file: ``tf.layers`` needs the legacy Keras
(``TF_USE_LEGACY_KERAS=1`` + the ``tf-keras`` package), and ``tensorflow.contrib`` (gone in
TF2) is replaced by a module whose ``layers.layer_norm`` is contrib's layer_norm as TF 1.15
wrote it (variables ``LayerNorm/beta`` and ``LayerNorm/gamma``, moments over the last axis,
``batch_normalization`` with epsilon 1e-12); ``tf.estimator`` (imported, never used here) gets a stub.

The model is built with the official ``modeling.BertModel`` and the official pre-training
heads (``PretrainingModel._get_masked_lm_output`` / ``_get_discriminator_output``, called on a
bare instance so that no masking or sampling runs), the official optimizer creates the
``adam_m`` / ``adam_v`` slots and ``global_step``. Every variable (LayerNorm and biases
included) is then moved away from its initial value, the checkpoint saved with
``tf.train.Saver`` and the forward pass run on fixed inputs with padding and two segments.

``--size base`` writes a base-size checkpoint of random weights (no forward outputs, no
optimizer slots) to time the converter on a release-sized file.
"""

from __future__ import annotations

import argparse
import os
import sys
import types
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow.compat.v1 as tf  # noqa: E402

# Layer list of the fixture: C A | F C | A F -- every type in both the first and the second submodule.
TINY_LAYERS = [0, 1, 2, 0, 1, 2]
TINY = dict(vocab=48, hidden=32, heads=2, inner=64, embedding=16, positions=16, generator_fraction=0.25)
# Base: the LV-BERT-base sizes (the layer list is the published small one; a base release has its own).
BASE_LAYERS = [0, 0, 1, 2, 2, 1, 0, 2, 2, 1, 0, 0, 1, 2, 0, 2, 1, 0, 2, 0, 1, 1, 2, 1]
BASE = dict(vocab=30522, hidden=768, heads=12, inner=3072, embedding=768, positions=512, generator_fraction=1 / 3)


def contrib_layer_norm(inputs, begin_norm_axis=-1, begin_params_axis=-1, scope=None, **_):
    """``tf.contrib.layers.layer_norm`` of TF 1.15 for the arguments the official code passes."""
    with tf.variable_scope(scope, default_name="LayerNorm"):
        shape = inputs.shape[-1:]
        beta = tf.get_variable("beta", shape=shape, dtype=inputs.dtype, initializer=tf.zeros_initializer())
        gamma = tf.get_variable("gamma", shape=shape, dtype=inputs.dtype, initializer=tf.ones_initializer())
        mean, variance = tf.nn.moments(inputs, [inputs.shape.ndims - 1], keep_dims=True)
        return tf.nn.batch_normalization(inputs, mean, variance, offset=beta, scale=gamma, variance_epsilon=1e-12)


def install_tf1_shims() -> None:
    """``tensorflow.contrib`` (layer_norm) and ``tf.estimator.SessionRunHook`` (a base class the
    official training utilities subclass at import; never used here) are gone from TF 2.16+."""
    contrib = types.ModuleType("tensorflow.contrib")
    contrib.layers = types.SimpleNamespace(layer_norm=contrib_layer_norm)
    sys.modules["tensorflow.contrib"] = contrib
    if not hasattr(tf, "estimator"):
        tf.estimator = types.SimpleNamespace(SessionRunHook=object)


def vocab_words(n: int) -> list[str]:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = ["the", "a", "model", "layer", "convolution", "attention", "feed", "forward", "is", "good",
             "bad", "movie", "##s", "##ing", "##ed", ".", ",", "not", "very", "it", "was", "and", "of", "to"]
    words += [f"w{i}" for i in range(n)]
    return (specials + words)[:n]


def build(official: Path, sizes: dict, layers: list[int], with_optimizer: bool):
    """The official graph: discriminator (+ its head), generator (+ its head), optimizer slots."""
    install_tf1_shims()
    sys.path.insert(0, str(official))
    from model import modeling, optimization  # noqa: E402  (the official code)
    import run_pretraining  # noqa: E402

    tf.disable_v2_behavior()
    bert_config = modeling.BertConfig(
        vocab_size=sizes["vocab"], hidden_size=sizes["hidden"], num_hidden_layers=len(layers) // 2,
        num_attention_heads=sizes["heads"], intermediate_size=sizes["inner"], max_position_embeddings=sizes["positions"],
    )
    config = types.SimpleNamespace(use_tpu=False, uniform_generator=False, generator_layers=1.0,
                                   generator_hidden_size=sizes["generator_fraction"])
    model = run_pretraining.PretrainingModel.__new__(run_pretraining.PretrainingModel)
    model._config, model._bert_config = config, bert_config

    B, L = 2, 12
    input_ids = tf.placeholder(tf.int32, [B, L], name="input_ids")
    input_mask = tf.placeholder(tf.int32, [B, L], name="input_mask")
    segment_ids = tf.placeholder(tf.int32, [B, L], name="segment_ids")
    inputs = types.SimpleNamespace(
        input_ids=input_ids, input_mask=input_mask, segment_ids=segment_ids,
        masked_lm_positions=tf.tile(tf.range(L)[None], [B, 1]),  # every position: logits [B, L, V]
        masked_lm_ids=tf.zeros([B, L], tf.int32), masked_lm_weights=tf.ones([B, L]),
    )
    # Same order and arguments as PretrainingModel.__init__ (untied generator, tied embeddings).
    generator = model._build_transformer(
        inputs, False, bert_config=run_pretraining.get_generator_config(config, bert_config),
        embedding_size=sizes["embedding"], untied_embeddings=False, custom_layer_list=layers, name="generator")
    mlm = model._get_masked_lm_output(inputs, generator)
    discriminator = model._build_transformer(inputs, False, reuse=False, embedding_size=sizes["embedding"],
                                             custom_layer_list=layers)
    disc = model._get_discriminator_output(inputs, discriminator, tf.zeros([B, L], tf.int32))
    assert disc.probs.op.inputs[0].name == "discriminator_predictions/Squeeze:0"  # the logits' tensor
    if with_optimizer:
        loss = mlm.loss + tf.reduce_mean(disc.loss)
        optimization.create_optimizer(loss, 1e-3, 10, warmup_steps=1)
    outputs = {
        "disc_hidden": tf.concat([discriminator.embedding_output[None], discriminator.all_layer_outputs], 0),
        "disc_logits": tf.get_default_graph().get_tensor_by_name("discriminator_predictions/Squeeze:0"),
        "gen_hidden": tf.concat([generator.embedding_output[None], generator.all_layer_outputs], 0),
        "gen_logits": mlm.logits,
    }
    return (input_ids, input_mask, segment_ids), outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", type=Path, required=True, help="checkout of github.com/yuweihao/LV-BERT")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--size", choices=("tiny", "base"), default="tiny")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    tiny = args.size == "tiny"
    sizes, layers = (TINY, TINY_LAYERS) if tiny else (BASE, BASE_LAYERS)
    rng = np.random.default_rng(args.seed)
    tf.set_random_seed(args.seed)
    placeholders, outputs = build(args.official, sizes, layers, with_optimizer=tiny)
    args.out.mkdir(parents=True, exist_ok=True)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for var in tf.global_variables():  # move every value (LayerNorm, biases, slots) off its initial value
            value = sess.run(var)
            if var.dtype.base_dtype == tf.int64:
                var.load(np.full_like(value, 1000), sess)
            elif tiny:
                var.load((value + rng.normal(0.0, 0.1, value.shape)).astype(value.dtype), sess)
            else:
                var.load((value + rng.normal(0.0, 0.02, value.shape)).astype(value.dtype), sess)
        step = 1000
        tf.train.Saver().save(sess, str(args.out / "model.ckpt"), global_step=step, write_meta_graph=False)
        (args.out / "vocab.txt").write_text("\n".join(vocab_words(sizes["vocab"])) + "\n")
        if not tiny:
            return
        V, L = sizes["vocab"], 12
        ids = rng.integers(5, V, size=(2, L)).astype(np.int32)
        ids[:, 0] = 2  # [CLS]
        ids[0, 6], ids[0, L - 1] = 3, 3  # [SEP] a [SEP] b [SEP]
        ids[1, 5], ids[1, 7] = 3, 3
        mask = np.ones((2, L), np.int32)
        mask[1, 8:] = 0  # the second row is padded
        ids[1, 8:] = 0
        segments = np.zeros((2, L), np.int32)
        segments[0, 7:] = 1
        segments[1, 6:8] = 1
        values = sess.run(outputs, dict(zip(placeholders, (ids, mask, segments))))
    np.savez_compressed(args.out / "expected.npz", input_ids=ids, attention_mask=mask, token_type_ids=segments,
                        **{k: v.astype(np.float32) for k, v in values.items()})
    print("wrote", args.out, {k: v.shape for k, v in values.items()})


if __name__ == "__main__":
    main()
