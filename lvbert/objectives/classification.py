"""Fine-tuning objective: the sequence-classification head computes its own loss."""

from __future__ import annotations


def classification_objective(model, batch: dict) -> dict:
    """Cross-entropy (classification) or MSE (regression), computed by the model's head."""
    return {"loss": model(**batch).loss}
