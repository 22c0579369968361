"""DiffPose AP over a grid of DDIM steps S and ensemble sizes K, from one checkpoint, without retraining.

For every clip of the split the condition (backbone + STRL) is computed once and reused for every
(S, K) in the grid; each configuration's predictions are written as PoseTrack files and scored with the
poseval-exact evaluator (Total AP and, when the ground truth flags them, AP on occluded joints).

    python benchmarks/steps_ensemble_grid.py runs/tiny/final.pt --data SYNTH_ROOT \
        [--steps 1 2 4 8] [--ensemble 1 2 4 8] [--out runs/tiny/grid] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from diffpose.config import SamplingConfig
from diffpose.data.clip_dataset import ClipDataset, gt_items, load_split
from diffpose.data.posetrack18 import write_posetrack18
from diffpose.engine.tester import prediction_videos
from diffpose.estimators import PersonPose, Predictor, load_estimator
from diffpose.evaluation import evaluate_dirs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--ensemble", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--out", default="grid_out")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eta", type=float, help="DDIM eta (default: the checkpoint's, 1.0 unless changed)")
    parser.add_argument("--combine", help="how hypotheses combine (default: the checkpoint's)")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    estimator = load_estimator(args.checkpoint, "cpu")
    if not estimator.samples:
        raise SystemExit(f"the grid needs a model that samples; {args.checkpoint} is {estimator.describe()}")
    cfg = estimator.cfg
    videos = load_split(args.data, args.split)
    items = gt_items(videos)
    dataset = ClipDataset(videos, args.data, items, estimator.codec, estimator.offsets, cfg.data.box_enlarge, None)
    grid = [(s, k) for s in args.steps for k in args.ensemble]
    eta = cfg.sampling.eta if args.eta is None else args.eta
    combine = args.combine or cfg.sampling.combine
    preds: dict[tuple[int, int], list[PersonPose]] = {c: [] for c in grid}
    seconds = dict.fromkeys(grid, 0.0)
    gens = {c: torch.Generator().manual_seed(args.seed) for c in grid}
    prior_row = bool(getattr(cfg.model.decoder, "prior_head", False))  # also score the prior head alone (S = 0)
    prior_preds: list[PersonPose] = []
    cond_seconds = 0.0
    with torch.no_grad():
        for batch in DataLoader(dataset, batch_size=args.batch_size, shuffle=False):
            t0 = time.perf_counter()
            cond = estimator.net.encode_condition(batch["frames"])  # (B, C, h, w), once per clip for the whole grid
            cond_seconds += time.perf_counter() - t0
            first = len(preds[grid[0]])
            if prior_row:  # the regression head the sampler starts from, decoded as it is
                kp, sc = estimator.codec.decode(estimator.net.heatmaps(cond).clamp(0, 1))
                for i in range(kp.shape[0]):
                    item = items[first + i]
                    prior_preds.append(Predictor.to_image(kp[i].double().numpy(), sc[i].double().numpy(),
                                                          torch.zeros(kp.shape[1]).double().numpy(),
                                                          batch["matrix"][i].numpy(), item.box, item.score))
            for s, k in grid:
                t0 = time.perf_counter()
                sampling = SamplingConfig(steps=s, eta=eta, ensemble=k, combine=combine)
                out = estimator.predict_condition(cond, sampling, gens[(s, k)])
                seconds[(s, k)] += time.perf_counter() - t0
                kp, sc, unc = (x.double().numpy() for x in (out.keypoints, out.scores, out.uncertainty))
                for i in range(kp.shape[0]):
                    item = items[first + i]
                    preds[(s, k)].append(Predictor.to_image(kp[i], sc[i], unc[i], batch["matrix"][i].numpy(),
                                                            item.box, item.score))
    rows = []
    gt_dir = Path(args.data) / "annotations" / args.split
    if prior_row:
        preds[(0, 1)], seconds[(0, 1)] = prior_preds, 0.0
    for s, k in ([(0, 1)] if prior_row else []) + grid:
        pred_dir = Path(args.out) / f"S{s}_K{k}"
        for video in prediction_videos(videos, items, preds[(s, k)]):
            write_posetrack18(video, pred_dir / f"{video.name}.json")
        r = evaluate_dirs(gt_dir, pred_dir, occluded=True)
        rows.append({"steps": s, "ensemble": k, "combine": combine, "total": r.total,
                     "occluded_total": r.occluded.groups()["Total"],
                     "groups": r.groups, "decoder_ms_per_clip": 1000 * seconds[(s, k)] / len(items)})
    print(f"eta = {eta}, combine = {combine}; {len(items)} clips; condition (backbone + STRL) "
          f"{1000 * cond_seconds / len(items):.1f} ms per clip, computed once for the whole grid")
    print(f"{'S':>3} {'K':>3} {'Total':>7} {'Occl.':>7} {'sampling ms/clip':>17}"
          + ("   (S = 0: the prior head alone, no diffusion step)" if prior_row else ""))
    for r in rows:
        print(f"{r['steps']:>3} {r['ensemble']:>3} {r['total']:>7.1f} {r['occluded_total']:>7.1f} "
              f"{r['decoder_ms_per_clip']:>17.1f}")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "grid.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
