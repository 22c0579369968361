"""Exporting trained models for other runtimes: :func:`export_onnx` writes ONNX graphs (``diffpose export``)."""

from diffpose.export.onnx_export import MANIFEST, OPSET, check_parity, export_onnx

__all__ = ["MANIFEST", "OPSET", "check_parity", "export_onnx"]
