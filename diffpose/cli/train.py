"""Train DiffPose (or the single-frame baseline) on a PoseTrack-layout dataset (real or SynthTrack).

The config is a preset, then an optional YAML file, then `section.key=value` overrides, in that order;
unknown keys and wrong types are errors. The resolved config is saved as OUT/config.yaml and inside every
checkpoint. OUT/last.pt is rewritten atomically every train.checkpoint_every steps and at every epoch end;
--resume continues from it exactly (same weights as an uninterrupted run). Metrics go to
OUT/metrics.jsonl (and OUT/tensorboard when tensorboard is installed). The finished weights are written
to OUT/final.pt (model + config, EMA weights when train.ema > 0), the file `diffpose test` and
`diffpose infer` take.

Several GPUs or nodes: launch with torchrun, e.g.
  torchrun --nproc_per_node=8 -m diffpose train --preset paper --data /data/posetrack18 --out runs/pt18
train.batch_size is the global batch, split evenly over the processes. On CPU, torchrun with gloo works too.

examples:
  diffpose train --preset tiny --data synthtrack --out runs/tiny
  diffpose train --preset tiny --data synthtrack --out runs/tiny-base model.kind=baseline
  diffpose train --preset tiny --data synthtrack --out runs/tiny --resume
"""

from __future__ import annotations

import argparse

HELP = "train DiffPose or the single-frame baseline"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. train.lr=1e-4")
    p.add_argument("--preset", default="tiny", help="config preset: tiny (CPU-sized, default) or paper")
    p.add_argument("--config", metavar="YAML", help="YAML file of config values (applied after the preset)")
    p.add_argument("--data", metavar="ROOT", help="dataset root with images/ and annotations/ (= data.root)")
    p.add_argument("--out", required=True, metavar="DIR", help="run folder: config, checkpoints, metrics")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--val", action="store_true", help="score the validation split at the end (AP table)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from diffpose.config import load_config
    from diffpose.engine.distributed import shutdown_distributed
    from diffpose.engine.run import train_and_finish

    overrides = list(args.overrides)
    if args.data:
        overrides.append(f"data.root={args.data}")
    cfg = load_config(args.preset, args.config, overrides)
    try:
        train_and_finish(cfg, args.out, resume=args.resume, validate=args.val, progress=not args.no_progress)
    finally:
        shutdown_distributed()
    return 0
