"""What does a trained DiffPose model do with x_t? Probes of one checkpoint on a split, ground-truth boxes.

PCKh@0.5 accuracy (a joint is right when its error is at most half the poseval head size, 0.6 x the head-box
diagonal) of labelled joints, per joint group and for the left and right ankle, for:

* ``from GT noised to t``: one denoising step from ``x_t = q_sample(encode(GT), t, eps)``, for ``t`` across the
  schedule. High accuracy at small ``t`` means the decoder reads ``x_t``; a flat curve means it ignores it.
* ``sampled S/K``: the model sampled as at test time (the ensemble combined), and the **best-of-K oracle**
  (per joint, the hypothesis closest to the ground truth): how much the hypotheses cover the answer, and how far
  the chosen answer is from the best one. Also the mean spread of the hypotheses (RMS, crop pixels).
* ``mirrored clips``: the model sampled at the first setting on horizontally mirrored clips, its keypoints
  mirrored back and its left/right channels exchanged. If a weak left ankle stays weak here (where the left
  ankle's answer comes from the right-ankle channel, looking at the mirrored image), the weakness is in the
  image content; if it moves to the right ankle, it is the network's left-ankle channel.

    python scripts/diffusion_probe.py -c diffpose/assets/tiny_diffpose.pt --data data/st_big --out runs/probe

Writes ``OUT/probe.json`` and prints the tables.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from diffpose.config import SamplingConfig
from diffpose.data.clip_dataset import ClipDataset, gt_items, load_split
from diffpose.estimators import load_estimator
from diffpose.evaluation.uncertainty import crop_thresholds
from diffpose.keypoints import POSETRACK18_JOINTS, POSETRACK18_UNLABELED

GROUPS = {"Head": ["nose", "head_bottom", "head_top"], "Shoulder": ["left_shoulder", "right_shoulder"],
          "Elbow": ["left_elbow", "right_elbow"], "Wrist": ["left_wrist", "right_wrist"],
          "Hip": ["left_hip", "right_hip"], "Knee": ["left_knee", "right_knee"],
          "Ankle": ["left_ankle", "right_ankle"]}


class Tally:
    """Correct / labelled counts per joint."""

    def __init__(self, num_joints: int):
        self.right = np.zeros(num_joints)
        self.total = np.zeros(num_joints)

    def add(self, err: np.ndarray, thr: np.ndarray, vis: np.ndarray) -> None:
        ok = vis & np.isfinite(thr)[:, None]
        self.right += ((err <= thr[:, None]) & ok).sum(0)
        self.total += ok.sum(0)

    def summary(self) -> dict[str, float]:
        acc = self.right / np.maximum(self.total, 1)
        names = list(POSETRACK18_JOINTS)
        out = {g: 100 * float(np.mean([acc[names.index(n)] for n in js])) for g, js in GROUPS.items()}
        keep = [k for k in range(len(names)) if k not in POSETRACK18_UNLABELED]
        out["Total"] = 100 * float(self.right[keep].sum() / max(self.total[keep].sum(), 1))
        out["L ankle"] = 100 * float(acc[names.index("left_ankle")])
        out["R ankle"] = 100 * float(acc[names.index("right_ankle")])
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--checkpoint", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--t", type=int, nargs="+", default=[0, 50, 100, 250, 500, 750, 900, 999])
    parser.add_argument("--settings", nargs="+", default=["1x8", "2x8", "4x8"], help="SxK sampling settings")
    parser.add_argument("--eta", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=0, help="at most this many persons (0: all)")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    est = load_estimator(args.checkpoint, "cpu")
    net, diffusion, codec = est.net.eval(), est.diffusion, est.codec
    videos = load_split(args.data, args.split)
    items = gt_items(videos)
    if args.limit:
        items = items[: args.limit]
    dataset = ClipDataset(videos, args.data, items, codec, est.offsets, est.cfg.data.box_enlarge, None)
    loader = DataLoader(dataset, batch_size=64, shuffle=False)
    gen = torch.Generator().manual_seed(args.seed)
    j = net.num_joints
    per_t = {t: Tally(j) for t in args.t}
    settings = [tuple(int(x) for x in s.split("x")) for s in args.settings]
    combined = {s: Tally(j) for s in settings}
    oracle = {s: Tally(j) for s in settings}
    spread = {s: [] for s in settings}
    mirrored, prior_tally = Tally(j), Tally(j)
    perm = torch.as_tensor(dataset.videos[0].layout.flip_permutation()) if dataset.videos else None
    crop_w = codec.input_size[0]
    with torch.inference_mode():
        for batch in loader:
            frames, hm, kp = batch["frames"], batch["heatmaps"], batch["keypoints"].numpy()
            vis = batch["weights"].numpy() > 0
            thr = crop_thresholds(videos, batch["video"].numpy(), batch["frame"].numpy(), batch["person"].numpy(),
                                  batch["matrix"].numpy())
            cond = net.encode_condition(frames)  # (B, C, h, w)
            pyr = net.prepare(cond)
            prior = net.heatmaps(cond).clamp(0, 1) if getattr(net, "prior_head", None) is not None else None
            if prior is not None:  # the prior head alone, and the prev every first step sees
                prior_tally.add(np.linalg.norm(codec.decode(prior)[0].numpy() - kp, axis=-1), thr, vis)
            x0 = diffusion.signal.encode(hm)  # (B, J, H, W)
            for t in args.t:
                tt = torch.full((len(frames),), t, dtype=torch.long)
                x_t = diffusion.q_sample(x0, tt, torch.randn(x0.shape, generator=gen))
                out = net.denoise(x_t, tt, pyr, prior)
                heat = out.clamp(0, 1) if est.predicts == "heatmap" else diffusion.signal.decode(out, clamp=True)
                pred, _ = codec.decode(heat)
                per_t[t].add(np.linalg.norm(pred.numpy() - kp, axis=-1), thr, vis)
            for s, k in settings:
                res = est.predict_condition(cond, SamplingConfig(steps=s, eta=args.eta, ensemble=k), gen)
                err_c = np.linalg.norm(res.keypoints.numpy() - kp, axis=-1)  # (B, J)
                err_h = np.linalg.norm(res.hypotheses_keypoints.numpy() - kp[:, None], axis=-1)  # (B, K, J)
                combined[(s, k)].add(err_c, thr, vis)
                oracle[(s, k)].add(err_h.min(1), thr, vis)
                spread[(s, k)].append(res.spread.numpy()[vis])
            s, k = settings[0]
            res = est.predict(frames.flip(-1), SamplingConfig(steps=s, eta=args.eta, ensemble=k), gen)
            kp_m = res.keypoints[:, perm].clone()  # (B, J, 2): the mirror joint's channel answers for each joint
            kp_m[..., 0] = crop_w - 1 - kp_m[..., 0]  # pixel centres: x -> W - 1 - x
            mirrored.add(np.linalg.norm(kp_m.numpy() - kp, axis=-1), thr, vis)
    report = {"checkpoint": args.checkpoint, "persons": len(items),
              "from_gt_noised": {str(t): per_t[t].summary() for t in args.t},
              "sampled": {f"S{s}K{k}": {"combined": combined[(s, k)].summary(), "oracle": oracle[(s, k)].summary(),
                                        "spread_px": float(np.concatenate(spread[(s, k)]).mean())}
                          for s, k in settings},
              "mirrored": mirrored.summary(), "prior_head": prior_tally.summary() if prior_tally.total.any() else None}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "probe.json").write_text(json.dumps(report, indent=2) + "\n")
    cols = [*GROUPS, "Total", "L ankle", "R ankle"]
    print(f"PCKh@0.5 (%), {len(items)} persons of {args.data} {args.split}")
    print(f"{'':26s}" + "".join(f"{c:>9s}" for c in cols))
    if report["prior_head"]:
        print(f"{'prior head alone':26s}" + "".join(f"{report['prior_head'][c]:9.1f}" for c in cols))
    for t in args.t:
        print(f"{'one step from GT, t=' + str(t):26s}" + "".join(f"{report['from_gt_noised'][str(t)][c]:9.1f}"
                                                              for c in cols))
    for name, r in report["sampled"].items():
        print(f"{name + ' combined':26s}" + "".join(f"{r['combined'][c]:9.1f}" for c in cols))
        print(f"{name + ' best-of-K oracle':26s}" + "".join(f"{r['oracle'][c]:9.1f}" for c in cols)
              + f"   spread {r['spread_px']:.2f} px")
    first = f"S{settings[0][0]}K{settings[0][1]}"
    print(f"{first + ' on mirrored clips':26s}" + "".join(f"{report['mirrored'][c]:9.1f}" for c in cols))


if __name__ == "__main__":
    main()
