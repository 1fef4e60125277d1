"""LV-BERT: layer-variety BERT encoders in PyTorch and the Hugging Face ecosystem.

``import lvbert`` registers the model with transformers' Auto classes (model_type ``lvbert``).

Before torch loads (when ``import lvbert`` comes first, as in the ``lvbert`` command), it
shortens OpenMP's spinning unless you chose a wait policy yourself: idle worker threads spin
300,000 times by default before they sleep, which makes a training step 60-90x slower as soon as
another job uses the CPU, while not spinning at all (``OMP_WAIT_POLICY=PASSIVE``) costs 1.5x on
a quiet machine. ``GOMP_SPINCOUNT=1000`` (torch's Linux builds use GNU OpenMP) keeps the quiet
speed and stays within 1.3-1.6x of a one-thread step under a competing job (measured:
docs/benchmarks.md, ``bench_threads.py``); other platforms get ``OMP_WAIT_POLICY=PASSIVE``.
``LVBERT_THREAD_DEFAULTS=0`` turns this off, and the ``lvbert`` command's thread governor with it
(``lvbert/threads.py``: fewer torch threads while other processes keep the cores busy).
"""

import os as _os
import sys as _sys

__version__ = "0.1.0"

SPIN_COUNT = "1000"

if (_os.environ.get("LVBERT_THREAD_DEFAULTS", "1") != "0" and "torch" not in _sys.modules
        and "OMP_WAIT_POLICY" not in _os.environ and "GOMP_SPINCOUNT" not in _os.environ):  # fmt: skip
    if _sys.platform.startswith("linux"):
        _os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT
    else:
        _os.environ["OMP_WAIT_POLICY"] = "PASSIVE"


def _quiet_torchao_import() -> None:
    """transformers imports torchao when it is installed (the deploy extra); torchao then logs that its
    CUDA kernels do not load on a CPU machine and torch warns about its enums: noise in every command."""
    import logging

    for name in ("torchao", "torch.utils._pytree"):
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.ERROR)


_quiet_torchao_import()


class _WithoutTorchao:
    """While transformers loads, torchao looks absent (``None`` in ``sys.modules``), so transformers does not
    import it: torchao prints that its CUDA/MX kernels fail to load, and it takes seconds. lvbert imports
    torchao itself, only for ``--runtime torchao`` (lvbert/export/torchao.py). Nothing changes when torchao
    was imported already."""

    def __enter__(self):
        self.hidden = "torchao" not in _sys.modules
        if self.hidden:
            _sys.modules["torchao"] = None

    def __exit__(self, *exc):
        if self.hidden and _sys.modules.get("torchao", 0) is None:
            del _sys.modules["torchao"]


def _register_auto_classes() -> None:
    with _WithoutTorchao():
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
