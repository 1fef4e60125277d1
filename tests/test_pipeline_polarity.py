"""Integration: a tiny model pre-trained on real text, fine-tuned on the demo ``polarity`` task,
lands clearly above chance. Needs the demo data (PyPI) and a few minutes: marked network + slow.

    pytest -m "network and slow" tests/test_pipeline_polarity.py
"""

from __future__ import annotations

import pytest

from lvbert.recipes.finetune import finetune
from lvbert.recipes.pretrain import PretrainConfig, pretrain


@pytest.mark.network
@pytest.mark.slow
def test_pretrained_tiny_model_learns_polarity(real_data, tmp_path):
    from lvbert.data.demo import fetch_demo

    demo = fetch_demo(tmp_path / "cache", progress=False, log=None)
    model = pretrain(PretrainConfig(data=str(real_data), out=str(tmp_path / "pt"), arch="CAFCAFAFAFAF", size="tiny",
                                    objective="mlm", steps=300, batch_size=32, lr=2e-3, warmup_steps=30,
                                    eval_every=300, save_every=300, eval_sequences=64, progress=False))
    result = finetune(model, "polarity", demo / "tasks" / "polarity", tmp_path / "ft", epochs=3, lr=1e-3,
                      max_seq_len=64, progress=False)
    accuracy = result["summary"]["dev/accuracy"]["median"]
    assert accuracy > 0.6, result["summary"]
