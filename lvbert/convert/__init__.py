"""TensorFlow checkpoints (the released LV-BERT and ELECTRA models) into lvbert models, without TensorFlow."""
