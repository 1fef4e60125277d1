"""LV-BERT: layer-variety BERT encoders in PyTorch and the Hugging Face ecosystem.

``import lvbert`` registers the model with transformers' Auto classes (model_type ``lvbert``).
"""

__version__ = "0.1.0"


def _register_auto_classes() -> None:
    from transformers import (
        AutoConfig,
        AutoModel,
        AutoModelForMaskedLM,
        AutoModelForPreTraining,
        AutoModelForSequenceClassification,
    )

    from lvbert.modeling_lvbert import (
        LvBertConfig,
        LvBertForMaskedLM,
        LvBertForPreTraining,
        LvBertForSequenceClassification,
        LvBertModel,
    )

    AutoConfig.register("lvbert", LvBertConfig, exist_ok=True)
    AutoModel.register(LvBertConfig, LvBertModel, exist_ok=True)
    AutoModelForMaskedLM.register(LvBertConfig, LvBertForMaskedLM, exist_ok=True)
    AutoModelForPreTraining.register(LvBertConfig, LvBertForPreTraining, exist_ok=True)
    AutoModelForSequenceClassification.register(LvBertConfig, LvBertForSequenceClassification, exist_ok=True)


try:
    _register_auto_classes()
except ImportError:  # torch/transformers missing: plain-Python parts (arch, space) still work
    pass
