"""Where the gain comes from: each variant trained with the same budget from the same start, scored side by side.

Every row starts from the same backbone (``--init``, the ``final.pt`` of a single-frame baseline run), gets
fresh layers on top, and trains for ``--steps`` optimiser steps of the ``tiny`` preset's batch with the same
seed and learning rates; ``scripts/learning_curve.py`` does the training (curve in ``OUT/<row>/curve.jsonl``).
Each trained row is then scored with ``diffpose test`` (ground-truth boxes) on every ``--eval`` dataset at
S=1/K=1 and, for the models that sample, at S=4/K=4; the no-image prior (``scripts/mean_pose_prior.py``,
the mean training pose pasted into each box) is the floor row. The table goes to ``OUT/table.md``.

Rows (``--rows``, default all):

* ``baseline``: single-frame ViTPose-style head;
* ``regression``: backbone + STRL + a plain heatmap head over the clip, no diffusion;
* ``diffpose``: the full model (LMSFI);
* ``concat``: DiffPose without LMSFI (x_t features concatenated to the condition);
* ``oneframe``: DiffPose with a 1-frame STRL (the key frame only);
* ``prior``: DiffPose whose sampling starts from its own regression head's heatmap noised to ``t = 600``
  (``diffusion.start=prior``), trained on ``x_t`` noised from the ground truth or from that prior;
* ``residual``: ``prior`` whose every denoising step predicts a correction of its previous estimate
  (``decoder.residual``), so that it starts as the prior and only learns changes;
* ``refine``: ``residual`` trained on ``x_t`` noised from its own prior only (never from the ground truth).

    python scripts/ablation.py --data data/st_big --init runs/tiny_baseline/final.pt --out runs/ablation \\
        --eval data/st_big data/st_heldout

Finished rows (``final.pt`` present) and finished evaluations (``ap.json`` present) are reused, so an
interrupted run continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROWS = {
    "baseline": ["model.kind=baseline"],
    "regression": ["model.kind=regression"],
    "diffpose": ["model.kind=diffpose"],
    "concat": ["model.kind=diffpose", "model.decoder.fusion=concat"],
    "oneframe": ["model.kind=diffpose", "model.num_frames=1", "data.frame_offsets=[0]"],
    "prior": ["model.kind=diffpose", "model.decoder.prior_head=true", "diffusion.start=prior", "diffusion.start_t=600",
              "diffusion.train_from_prior=0.5"],
    "residual": ["model.kind=diffpose", "model.decoder.prior_head=true", "model.decoder.residual=true",
                 "diffusion.start=prior", "diffusion.start_t=600", "diffusion.train_from_prior=0.5"],
    "refine": ["model.kind=diffpose", "model.decoder.prior_head=true", "model.decoder.residual=true",
               "diffusion.start=prior", "diffusion.start_t=600", "diffusion.train_from_prior=1.0"],
}
SAMPLES = {"baseline": False, "regression": False}  # the others sample (diffusion)
LABELS = {"baseline": "single-frame baseline", "regression": "temporal regression (STRL + heatmap head)",
          "diffpose": "DiffPose", "concat": "DiffPose without LMSFI (concatenation)",
          "oneframe": "DiffPose with a 1-frame STRL", "prior": "DiffPose, prior start (regression head + diffusion)",
          "residual": "DiffPose, prior start, residual steps",
          "refine": "DiffPose, prior start, residual steps, x_t always from the prior"}
SETTINGS = [(1, 1), (4, 4)]


def run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def train_row(args: argparse.Namespace, row: str) -> Path:
    out = args.out / row
    final = out / "final.pt"
    if final.exists():
        return final
    sets = [*ROWS[row], f"model.backbone.weights={args.init}", f"train.max_steps={args.steps}", "train.epochs=1000",
            f"train.lr={args.lr}", f"train.backbone_lr={args.backbone_lr}", f"train.warmup_steps={args.warmup}",
            f"train.seed={args.seed}", f"data.workers={args.workers}", *args.set]
    run([sys.executable, str(Path(__file__).with_name("learning_curve.py")), "--data", str(args.data),
         "--out", str(out), "--eval-every", str(args.eval_every), "--probe-split", args.probe_split,
         *(["--resume"] if (out / "last.pt").exists() else []), "--set", *sets])
    return final


def evaluate_row(args: argparse.Namespace, row: str, final: Path) -> None:
    for data in args.eval:
        for steps, ensemble in SETTINGS if SAMPLES.get(row, True) else SETTINGS[:1]:
            out = args.out / row / f"test_{data.name}_s{steps}k{ensemble}"
            if (out / "ap.json").exists():
                continue
            run([sys.executable, "-m", "diffpose", "test", "-c", str(final), "--data", str(data), "--out", str(out),
                 "--no-progress", "--seed", str(args.seed),
                 *(["--steps", str(steps), "--ensemble", str(ensemble)] if SAMPLES.get(row, True) else [])])


def prior(args: argparse.Namespace, data: Path) -> dict:
    out = args.out / f"prior_{data.name}"
    if not (out / "prior.json").exists():
        run([sys.executable, str(Path(__file__).with_name("mean_pose_prior.py")), "--data", str(data),
             "--train-data", str(args.data), "--out", str(out)])
    return json.loads((out / "prior.json").read_text())


def table(args: argparse.Namespace, rows: list[str]) -> str:
    groups = ["Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle"]
    lines = []
    for data in args.eval:
        lines += [f"**{data.name}** (ground-truth boxes)", "",
                  "| row | S/K | Total | occluded | " + " | ".join(groups) + " |",
                  "|---|---|---:|---:|" + "---:|" * len(groups)]
        p = prior(args, data)
        lines.append(f"| no-image prior (floor) | - | {p['total']:.1f} | {p['occluded']:.1f} | "
                     + " | ".join(f"{p['groups'][g]:.1f}" for g in groups) + " |")
        for row in rows:
            for steps, ensemble in SETTINGS if SAMPLES.get(row, True) else SETTINGS[:1]:
                path = args.out / row / f"test_{data.name}_s{steps}k{ensemble}" / "ap.json"
                if not path.exists():
                    continue
                r = json.loads(path.read_text())
                sk = f"{steps}/{ensemble}" if SAMPLES.get(row, True) else "-"
                lines.append(f"| {LABELS[row]} | {sk} | {r['groups']['Total']:.1f} | "
                             f"{r['occluded']['groups']['Total']:.1f} | "
                             + " | ".join(f"{r['groups'][g]:.1f}" for g in groups) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="training dataset root")
    parser.add_argument("--init", type=Path, required=True, help="checkpoint whose backbone every row starts from")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--eval", type=Path, nargs="+", required=True, help="dataset roots scored (split val)")
    parser.add_argument("--rows", nargs="+", choices=list(ROWS), default=list(ROWS))
    parser.add_argument("--steps", type=int, default=300, help="optimiser steps per row (default %(default)s)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--backbone-lr", type=float, default=2e-4)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="data loader processes per training run")
    parser.add_argument("--eval-every", type=int, default=150)
    parser.add_argument("--probe-split", default="", help="training videos copied to a split (default: none)")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="overrides for every row")
    parser.add_argument("--table-only", action="store_true", help="print the table of what is finished")
    args = parser.parse_args()
    if not args.table_only:
        for row in args.rows:
            evaluate_row(args, row, train_row(args, row))
    text = table(args, args.rows)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
