"""Export a checkpoint as ONNX graphs for onnxruntime (or any ONNX runtime).

DiffPose becomes four graphs in DIR: backbone.onnx (frames -> features), strl.onnx (clip features ->
condition), decoder_prepare.onnx (condition -> the decoder's per-clip pyramid) and decoder_step.onnx (one
denoising step for B clips x K hypotheses; the pyramid is broadcast over K). The DDIM loop, the ensemble
and the heatmap decoding stay in Python, so `diffpose infer --onnx DIR` runs exactly the PyTorch inference
code with these graphs in place of the network. A baseline checkpoint becomes one graph, baseline.onnx.
Every batch axis is dynamic. DIR/diffpose_onnx.json holds the config and, when onnxruntime is installed,
the largest difference to PyTorch measured on random inputs (the command fails if one exceeds --tolerance).

Needs the optional dependencies: pip install 'diffpose[onnx]' (onnx; onnxruntime for the check and for
running).

examples:
  diffpose export runs/tiny/final.pt --onnx exported/tiny
  diffpose infer clip.mp4 --onnx exported/tiny --boxes dets.json --json clip.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

from diffpose.errors import DiffPoseError

HELP = "export a checkpoint as ONNX graphs (backbone, STRL, decoder step) for onnxruntime"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="a diffpose checkpoint (final.pt), DiffPose or baseline")
    p.add_argument("--onnx", required=True, type=Path, metavar="DIR", help="folder to write the graphs to")
    p.add_argument("--no-check", action="store_true", help="skip the onnxruntime parity check")
    p.add_argument("--tolerance", type=float, default=1e-4, help="largest allowed difference to PyTorch (1e-4)")


def run(args: argparse.Namespace) -> int:
    from diffpose.engine.tester import load_model
    from diffpose.export import export_onnx

    if args.onnx.resolve() == Path(args.checkpoint).resolve():
        raise DiffPoseError("refusing to write over the checkpoint", args.onnx)
    model, cfg = load_model(args.checkpoint, "cpu")
    manifest = export_onnx(model, cfg, args.onnx, check=not args.no_check)
    for file in manifest["graphs"].values():
        size = (args.onnx / file).stat().st_size / 2**20
        print(f"wrote {args.onnx / file} ({size:.1f} MiB)")
    parity = manifest.get("parity_max_abs")
    if parity is None and not args.no_check:
        print("onnxruntime is not installed: parity not checked (pip install onnxruntime)")
    elif parity:
        print("largest difference to PyTorch: " + ", ".join(f"{k} {v:.2e}" for k, v in parity.items()))
        worst = max(parity.values())
        if worst > args.tolerance:
            raise DiffPoseError(f"ONNX graphs differ from PyTorch by {worst:.2e} > --tolerance {args.tolerance:g}",
                                args.onnx)
    return 0
