"""LV-BERT: layer-variety BERT encoders in PyTorch and the Hugging Face ecosystem.

``import lvbert`` registers the model with transformers' Auto classes (model_type ``lvbert``).

Before torch loads (when ``import lvbert`` comes first, as in the ``lvbert`` command), it sets
``OMP_WAIT_POLICY=PASSIVE`` unless you set it: OpenMP's default spinning makes a training
step many times slower as soon as another job uses the CPU (measured: docs/benchmarks.md,
``bench_threads.py``). ``LVBERT_THREAD_DEFAULTS=0`` turns this off.
"""

import os as _os
import sys as _sys

__version__ = "0.1.0"

if _os.environ.get("LVBERT_THREAD_DEFAULTS", "1") != "0" and "torch" not in _sys.modules:
    _os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _quiet_torchao_import() -> None:
    """transformers imports torchao when it is installed (the deploy extra); torchao then logs that its
    CUDA kernels do not load on a CPU machine and torch warns about its enums: noise in every command."""
    import logging

    for name in ("torchao", "torch.utils._pytree"):
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.ERROR)


_quiet_torchao_import()


def _register_auto_classes() -> None:
    from transformers import (
        AutoConfig,
        AutoModel,
        AutoModelForMaskedLM,
        AutoModelForPreTraining,
        AutoModelForQuestionAnswering,
        AutoModelForSequenceClassification,
    )

    from lvbert.modeling_lvbert import (
        LvBertConfig,
        LvBertForMaskedLM,
        LvBertForPreTraining,
        LvBertForQuestionAnswering,
        LvBertForSequenceClassification,
        LvBertModel,
    )

    AutoConfig.register("lvbert", LvBertConfig, exist_ok=True)
    AutoModel.register(LvBertConfig, LvBertModel, exist_ok=True)
    AutoModelForMaskedLM.register(LvBertConfig, LvBertForMaskedLM, exist_ok=True)
    AutoModelForPreTraining.register(LvBertConfig, LvBertForPreTraining, exist_ok=True)
    AutoModelForSequenceClassification.register(LvBertConfig, LvBertForSequenceClassification, exist_ok=True)
    AutoModelForQuestionAnswering.register(LvBertConfig, LvBertForQuestionAnswering, exist_ok=True)


try:
    _register_auto_classes()
except ImportError:  # torch/transformers missing: plain-Python parts (arch, space) still work
    pass
