"""Train DiffPose (or another model kind, e.g. the single-frame baseline) on a PoseTrack-layout dataset.

The config is a preset, then an optional YAML file, then --set KEY=VALUE overrides, in that order; unknown
keys and wrong types are errors. model.kind chooses the model (the kinds are listed at the end). The
resolved config is saved as OUT/config.yaml and inside every checkpoint. OUT/last.pt is rewritten atomically
every train.checkpoint_every steps and at every epoch end; --resume continues from it exactly (same weights as
an uninterrupted run). Metrics go to OUT/metrics.jsonl (and OUT/tensorboard when tensorboard is installed).
The finished weights are written to OUT/final.pt (model + config, EMA weights when train.ema > 0), the file
`diffpose test` and `diffpose infer` take.

A run folder belongs to one run: while it trains, OUT/train.lock holds its PID and a second `diffpose train`
on OUT is refused (a lock whose process is gone is taken over with a note). A folder that already holds a
run (checkpoints, metrics) is refused unless --resume continues it or --overwrite starts over; resuming a
finished run does nothing and says so. A --config file that the run would write over (OUT/config.yaml) is
refused before any work; another file in OUT (OUT/my.yaml) is never written and may be the config.

Several GPUs or nodes: launch with torchrun, e.g.
  torchrun --nproc_per_node=8 -m diffpose train --preset paper --data /data/posetrack18 --out runs/pt18
train.batch_size is the global batch, split evenly over the processes. On CPU, torchrun with gloo works too.

examples:
  diffpose train --data synthtrack --out runs/tiny
  diffpose train --data synthtrack --out runs/tiny-base --set model.kind=baseline
  diffpose train --data synthtrack --out runs/tiny --resume
"""

from __future__ import annotations

import argparse

from diffpose.cli.args import add_config, add_progress, config_from_args
from diffpose.config import ModelConfig
from diffpose.engine.distributed import shutdown_distributed
from diffpose.engine.run import train_and_finish
from diffpose.engine.run_folder import check_run_inputs
from diffpose.estimators import KINDS


def kinds_help() -> str:
    """The model kinds of :data:`~diffpose.estimators.KINDS`, one line each, for the end of ``--help``."""
    default = ModelConfig().kind
    width = max(len(name) for name in KINDS)
    lines = [f"  {name:<{width}}  {kind.summary}{' (default)' if name == default else ''}"
             for name, kind in KINDS.items()]
    return "model kinds (--set model.kind=KIND):\n" + "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = kinds_help()
    add_config(p, positional_alias=True)
    p.add_argument("--data", metavar="ROOT", help="dataset root with images/ and annotations/ (= data.root)")
    p.add_argument("--out", required=True, metavar="DIR", help="run folder: config, checkpoints, metrics")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt (a finished run: nothing to do)")
    p.add_argument("--overwrite", action="store_true", help="start a new run in OUT, deleting the run it holds "
                   "(without --resume or --overwrite, a folder holding a run is refused)")
    p.add_argument("--val", action="store_true", help="score the validation split at the end (AP table)")
    add_progress(p)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args, [f"data.root={args.data}"] if args.data else [])
    check_run_inputs(args.out, [cfg.data.root or None, args.config], "--out")  # never over the --config YAML
    try:
        train_and_finish(cfg, args.out, resume=args.resume, validate=args.val, progress=not args.no_progress,
                         overwrite=args.overwrite)
    finally:
        shutdown_distributed()
    return 0
