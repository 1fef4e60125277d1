"""Exports of fine-tuned models for runtimes without lvbert: ONNX (fp32, and int8 from a quantized model).

Needs the ``deploy`` extra (``pip install -e .[deploy]``: onnx, onnxscript, onnxruntime); nothing
here is imported with the package.
"""
