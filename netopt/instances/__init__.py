"""Instance generators with known ground truth: 3SAT reductions, expansive nets, random MLPs."""

from netopt.instances._onnx import mlp_onnx

__all__ = ["mlp_onnx"]
