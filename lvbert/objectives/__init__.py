"""Training objectives and the one masked-LM evaluation. Each objective returns a dict with
``loss`` (a tensor) and scalar metrics, and is called by the one training loop as
``objective(model, batch, **context)``.

- :mod:`~lvbert.objectives.mlm`: masked LM (plain models and the supernet, which also takes
  ``arch``), and :func:`evaluate_mlm`, the masked-LM accuracy and loss on a fixed-mask set used
  by pre-training, supernet validation, the search fitness and ``lvbert eval``;
- :mod:`~lvbert.objectives.electra`: ELECTRA replaced-token detection (Clark et al. 2020);
- :mod:`~lvbert.objectives.classification`: fine-tuning (the head's own loss);
- :mod:`~lvbert.objectives.distill`: TinyBERT distillation (teachers, layer mapping, losses).

A new objective is a new module here with the same calling convention.
"""

from lvbert.objectives.classification import classification_objective
from lvbert.objectives.electra import ElectraPretrainer, electra_objective, generator_config, sample_tokens
from lvbert.objectives.mlm import MODEL_KEYS, evaluate_mlm, masked_accuracy, mlm_objective, unigram_accuracy

__all__ = [
    "MODEL_KEYS",
    "ElectraPretrainer",
    "classification_objective",
    "electra_objective",
    "evaluate_mlm",
    "generator_config",
    "masked_accuracy",
    "mlm_objective",
    "sample_tokens",
    "unigram_accuracy",
]
