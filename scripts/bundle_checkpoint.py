"""Shrink a training run's final.pt into the checkpoint bundled with the package (``diffpose/assets``).

Keeps the resolved config and the model weights only, stores floating-point weights in float16 (they are
cast back to float32 when loaded), and optionally sets the default sampling (DDIM steps, ensemble size)
that ``diffpose demo`` / ``diffpose infer`` use for this checkpoint.

    python scripts/bundle_checkpoint.py runs/tiny_diffpose/final.pt diffpose/assets/tiny_diffpose.pt \
        --steps 2 --ensemble 4
"""

from __future__ import annotations

import argparse
from pathlib import Path

from diffpose.checkpoint import load_checkpoint, model_state, save_checkpoint
from diffpose.config import config_from_dict, config_to_dict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--ensemble", type=int)
    args = parser.parse_args()
    ckpt = load_checkpoint(args.checkpoint)
    config = config_to_dict(config_from_dict(ckpt["config"]))  # upgraded to this version's keys
    if args.steps is not None:
        config["sampling"]["steps"] = args.steps
    if args.ensemble is not None:
        config["sampling"]["ensemble"] = args.ensemble
    weights = {k: v.half() if v.is_floating_point() else v for k, v in model_state(ckpt, args.checkpoint).items()}
    save_checkpoint({"config": config, "model": weights, "step": ckpt.get("step"),
                     "source": str(args.checkpoint.name)}, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
