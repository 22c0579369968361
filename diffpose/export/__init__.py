"""Exporting trained models for other runtimes: :func:`export_onnx` writes ONNX graphs (``diffpose export``)."""

from diffpose.export.onnx_export import MANIFEST, OPSET, STEP_FIELDS, check_parity, example_inputs, export_onnx

__all__ = ["MANIFEST", "OPSET", "STEP_FIELDS", "check_parity", "example_inputs", "export_onnx"]
