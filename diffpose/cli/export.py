"""Export a checkpoint as ONNX graphs for onnxruntime (or any ONNX runtime).

Each network method the model's prediction calls becomes one graph in DIR: backbone.onnx (frames ->
features) and condition.onnx (clip features -> condition) for every model, then decoder_prepare.onnx
(condition -> the decoder's per-clip pyramid) and decoder_step.onnx (one denoising step for B clips x K
hypotheses; the pyramid is broadcast over K) for a diffusion model, or head.onnx (condition -> heatmaps) for
a regression model such as the baseline. The DDIM loop, the ensemble and the heatmap decoding stay in
Python, so `diffpose infer --onnx DIR` runs exactly the PyTorch inference code with these graphs in place of
the network. Every batch axis is dynamic. DIR/diffpose_onnx.json holds the config and, when onnxruntime is
installed, the largest difference to PyTorch measured on random inputs. The graphs are checked in a temporary
folder and moved in only when no difference exceeds --tolerance (else the command fails and writes nothing);
the manifest, written last, lists each graph's size, so `infer --onnx` refuses an incomplete folder.

Needs the optional dependencies: pip install 'diffpose[onnx]' (onnx; onnxruntime for the check and for
running).

examples:
  diffpose export -c runs/tiny/final.pt --onnx exported/tiny
  diffpose infer clip.mp4 --onnx exported/tiny --boxes dets.json --json clip.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

from diffpose.cli.args import add_checkpoint, checkpoint_from_args, number
from diffpose.estimators import load_estimator
from diffpose.export import export_onnx
from diffpose.io_utils import check_not_input


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_checkpoint(p, positional_alias=True)
    p.add_argument("--onnx", required=True, type=Path, metavar="DIR", help="folder to write the graphs to")
    p.add_argument("--no-check", action="store_true", help="skip the onnxruntime parity check")
    p.add_argument("--tolerance", type=number(float, 0, lo_open=True), default=1e-4,
                   help="largest allowed difference to PyTorch (1e-4)")


def run(args: argparse.Namespace) -> int:
    checkpoint = checkpoint_from_args(args)
    check_not_input(args.onnx, [checkpoint], "--onnx")
    estimator = load_estimator(checkpoint, "cpu")
    manifest = export_onnx(estimator, args.onnx, check=not args.no_check, tolerance=args.tolerance)
    for file in manifest["graphs"].values():
        size = (args.onnx / file).stat().st_size / 2**20
        print(f"wrote {args.onnx / file} ({size:.1f} MiB)")
    parity = manifest.get("parity_max_abs")
    if parity is None and not args.no_check:
        print("onnxruntime is not installed: parity not checked (pip install onnxruntime)")
    elif parity:
        print("largest difference to PyTorch: " + ", ".join(f"{k} {v:.2e}" for k, v in parity.items()))
    return 0
