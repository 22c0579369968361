"""Fit a DiffPose checkpoint's joint score and uncertainty on training data, and write the calibrated checkpoint.

The checkpoint is sampled as it will be used (its own sampling settings unless ``--steps`` / ``--ensemble`` say
otherwise) on ``--persons`` GT person boxes drawn evenly from the **training** split (never the split it will be
scored on). For every labelled joint it records the features of :mod:`diffpose.estimators.calibration` and the
error in crop pixels, fits the two models (probability of a joint within half a head size; expected error) and
writes ``OUT`` = the checkpoint with the fit in its ``calibration`` section and those sampling settings as its
defaults. Then ``diffpose test`` / ``infer`` write the calibrated score and uncertainty.

    python scripts/calibrate.py runs/dp/final.pt runs/dp/calibrated.pt --data data/st_big --persons 3000
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from diffpose.checkpoint import load_checkpoint, save_checkpoint
from diffpose.config import CalibrationConfig, SamplingConfig, config_from_dict, config_to_dict
from diffpose.data.clip_dataset import ClipDataset, gt_items, load_split
from diffpose.estimators import load_estimator
from diffpose.estimators.calibration import FEATURES, calibrated_joints, fit_calibration, joint_features
from diffpose.evaluation.uncertainty import auroc, crop_thresholds


def collect(est, root: str, split: str, persons: int, sampling: SamplingConfig, seed: int, progress: bool):
    """Features ``(N, F)``, joint ``(N,)``, correct ``(N,)``, error ``(N,)`` over the labelled joints of
    ``persons`` evenly spaced GT boxes of ``split``."""
    videos = load_split(root, split)
    items = gt_items(videos)
    if persons and persons < len(items):
        items = [items[int(i)] for i in np.linspace(0, len(items) - 1, persons).round()]
    dataset = ClipDataset(videos, root, items, est.codec, est.offsets, est.cfg.data.box_enlarge, None)
    gen = torch.Generator().manual_seed(seed)
    rows = {"features": [], "joint": [], "correct": [], "error": []}
    loader = DataLoader(dataset, batch_size=32, shuffle=False)
    for batch in tqdm(loader, desc="calibrate", unit="batch", disable=not progress):
        out = est.predict(batch["frames"], sampling, gen)
        feats = joint_features(out).numpy()  # (B, J, F)
        err = np.linalg.norm(out.keypoints.numpy() - batch["keypoints"].numpy(), axis=-1)  # (B, J) crop px
        thr = crop_thresholds(videos, batch["video"].numpy(), batch["frame"].numpy(), batch["person"].numpy(),
                              batch["matrix"].numpy())  # (B,)
        keep = (batch["weights"].numpy() > 0) & np.isfinite(thr)[:, None]  # (B, J) labelled, with a head box
        b, j = np.nonzero(keep)
        rows["features"].append(feats[b, j])
        rows["joint"].append(j)
        rows["correct"].append(err[b, j] <= thr[b])
        rows["error"].append(err[b, j])
    return (np.concatenate(rows["features"]), np.concatenate(rows["joint"]), np.concatenate(rows["correct"]),
            np.concatenate(rows["error"]), len(items))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="a DiffPose checkpoint")
    parser.add_argument("out", type=Path, help="the calibrated checkpoint to write")
    parser.add_argument("--data", required=True, help="dataset root whose training split is used")
    parser.add_argument("--split", default="train", help="split to fit on (default train; never the scored one)")
    parser.add_argument("--persons", type=int, default=3000, help="GT person boxes used (default %(default)s)")
    parser.add_argument("--steps", type=int, help="DDIM steps (default: the checkpoint's)")
    parser.add_argument("--ensemble", type=int, help="hypotheses K (default: the checkpoint's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    if args.out.resolve() == args.checkpoint.resolve():
        raise SystemExit("calibrate.py: error: OUT must differ from the checkpoint it reads")
    est = load_estimator(args.checkpoint, "cpu")
    if not est.samples:
        raise SystemExit(f"calibrate.py: error: {args.checkpoint} is {est.describe()}; "
                         "calibration is for sampled models")
    s = est.cfg.sampling
    sampling = SamplingConfig(steps=args.steps or s.steps, eta=s.eta, ensemble=args.ensemble or s.ensemble,
                              combine=s.combine)
    est.cfg.calibration = CalibrationConfig()  # fit on the raw features
    with torch.inference_mode():
        feats, joint, correct, error, n = collect(est, args.data, args.split, args.persons, sampling, args.seed,
                                                  not args.no_progress)
    note = f"{args.split} split of {Path(args.data).name}, {n} persons, {len(joint)} joints, S{sampling.steps} " \
           f"K{sampling.ensemble}"
    cal = fit_calibration(feats, joint, correct, error, est.net.num_joints, note)
    score, unc = calibrated_joints(feats, joint, cal)
    wrong = ~correct
    fit = {"joints": int(len(joint)), "wrong_rate": float(wrong.mean()),
           "auroc_uncalibrated_one_minus_score": auroc(1 - feats[:, 0], wrong),
           "auroc_uncalibrated_spread": auroc(feats[:, 1], wrong),
           "auroc_one_minus_score": auroc(1 - score, wrong), "auroc_uncertainty": auroc(unc, wrong),
           "mean_error_px": float(error.mean()), "mean_uncertainty_px": float(unc.mean())}
    ckpt = load_checkpoint(args.checkpoint)
    config = config_to_dict(config_from_dict(ckpt["config"]))
    config["sampling"].update(steps=sampling.steps, ensemble=sampling.ensemble)
    config["calibration"] = config_to_dict(cal)
    config_from_dict(config)  # the written config must load
    save_checkpoint({**ckpt, "config": config}, args.out)
    print(f"features: {', '.join(FEATURES)}; fitted on the {note}")
    print(json.dumps(fit, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
