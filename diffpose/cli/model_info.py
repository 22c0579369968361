"""Print parameter counts and GFLOPs of a model preset, and check a backbone checkpoint against it.

Parts: the ViT backbone (GFLOPs per frame), the STRL (per clip), the Pose-Decoder (per denoising step;
its condition pyramid is built once per clip) and, for comparison, the single-frame baseline's ViTPose
head (per frame). GFLOPs are multiply-accumulates / 1e9 at batch 1, counted with
torch.utils.flop_counter.FlopCounterMode (whose count is halved), as the pose literature quotes them
(ViTPose-B: ~17.1 GFLOPs at 256x192).

With --time-train-step the command also times one training step (forward, backward and AdamW update) of
every model kind on --batch random clips (CUDA when available, else CPU with --threads threads), and prints
milliseconds per step and clips per second.

With --backbone-weights CKPT the checkpoint (a ViTPose .pth with a state_dict, or a raw state dict) is
loaded into the backbone and the missing / unexpected keys are listed. The exit status is 1 when
backbone keys are missing or a shape does not match.

--json prints exactly:
  {"params": {"backbone", "strl", "decoder", ["prior_head",] "total"},
   "gflops": {"backbone_per_frame", "strl_per_clip", "decoder_per_step", ["prior_head_per_clip"]},
   "weights": {"missing": [...], "unexpected": [...]}}

examples:
  diffpose model-info
  diffpose model-info --preset paper --backbone-weights vitpose-b.pth --json
  diffpose model-info --set model.strl.depth=4
  diffpose model-info --time-train-step --batch 16 --threads 2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from typing import Any

import torch
from torch import nn

from diffpose.checkpoint import load_checkpoint
from diffpose.cli.args import add_config, at_least, config_from_args
from diffpose.config import Config
from diffpose.estimators import KINDS, build_estimator
from diffpose.models import build_backbone, load_vitpose, model_complexity, param_groups
from diffpose.models.vitpose_io import extract_state_dict


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config(parser)
    parser.add_argument("--backbone-weights", metavar="CKPT", default=None,
                        help="ViTPose-style checkpoint to load into the backbone and report on")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON instead of a table")
    parser.add_argument("--time-train-step", action="store_true",
                        help="also time a training step (fwd + bwd + AdamW) on random data (not in --json)")
    parser.add_argument("--batch", type=int, default=16, help="clips per timed training step (default: 16)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for the timing (default: torch's)")


def time_train_step(cfg: Config, kind: str, batch: int, repeats: int = 5) -> float:
    """Mean seconds of one training step of ``kind`` on random inputs (after two warm-up steps)."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    m = cfg.model
    torch.manual_seed(0)
    estimator = build_estimator(dataclasses.replace(cfg, model=dataclasses.replace(m, kind=kind)),
                                load_weights=False).to(device)
    net = estimator.net.train()
    opt = torch.optim.AdamW(param_groups(net, lr=1e-4, weight_decay=1e-4))
    g = torch.Generator().manual_seed(0)
    data = {"frames": torch.randn(batch, estimator.num_frames, 3, *m.backbone.image_size, generator=g),
            "heatmaps": torch.rand(batch, m.num_joints, *m.heatmap_size, generator=g),
            "weights": torch.ones(batch, m.num_joints)}
    data = {k: v.to(device) for k, v in data.items()}
    noise = {k: v.to(device) for k, v in estimator.training_noise(g, batch).items()}

    def step() -> None:
        loss = estimator.loss(data, noise)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(2):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def _table(rows: list[tuple[str, str, str, str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = []
    for n, r in enumerate(rows):
        lines.append(f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]:<{widths[3]}}".rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _human(cfg: Any, preset: str, cx: Any, weights: str | None, report: Any) -> str:
    m, p, g = cfg.model, cx.params, cx.gflops
    h, w = m.backbone.image_size
    hh, hw = m.heatmap_size
    t = m.num_frames
    baseline_total = p["backbone"] + p["baseline_head"]
    rows = [
        ("part", "params", "GFLOPs", "per"),
        ("backbone (ViT)", f"{p['backbone']:,}", f"{g['backbone_per_frame']:.3f}", "frame"),
        ("STRL", f"{p['strl']:,}", f"{g['strl_per_clip']:.3f}", "clip"),
        ("Pose-Decoder: condition pyramid", "(in decoder)", f"{g['decoder_prepare_per_clip']:.3f}", "clip"),
        ("Pose-Decoder: denoising step", f"{p['decoder']:,}", f"{g['decoder_per_step']:.3f}", "step x hypothesis"),
        *([("prior head (sampling starts from it)", f"{p['prior_head']:,}", f"{g['prior_head_per_clip']:.3f}",
            "clip")] if "prior_head" in p else []),
        ("DiffPose total", f"{p['total']:,}", f"{cx.clip_gflops(t):.3f}", f"clip ({t} frames, S=1, K=1)"),
        ("baseline head (ViTPose deconv)", f"{p['baseline_head']:,}", f"{g['baseline_head_per_frame']:.3f}",
         "frame"),
        ("baseline total", f"{baseline_total:,}", f"{g['backbone_per_frame'] + g['baseline_head_per_frame']:.3f}",
         "frame"),
    ]  # fmt: skip
    out = [
        f"preset {preset}: {m.kind} model, crops {h}x{w} (HxW), heatmaps {hh}x{hw} (HxW), {t} frames, "
        f"{m.num_joints} joints; backbone ViT {m.backbone.embed_dim}d x {m.backbone.depth} blocks, "
        + (f"patch {m.backbone.patch_size}" if m.backbone.stem == "patch" else "conv stem (stride 8)"),
        "",
        _table(rows),
        "",
        "GFLOPs = multiply-accumulates / 1e9 at batch 1 (FlopCounterMode count / 2). A clip with S steps and K",
        "hypotheses costs T x backbone + STRL + pyramid + S x K x step.",
    ]
    if report is not None:
        out += ["", f"backbone weights {weights}: {report.summary()}"]
        for title, keys in (("missing", report.missing), ("unexpected", report.unexpected),
                            ("shape mismatch", report.mismatched), ("interpolated", report.interpolated)):
            if keys:
                shown = ", ".join(keys[:8]) + (f", ... ({len(keys)} in all)" if len(keys) > 8 else "")
                out.append(f"  {title}: {shown}")
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    at_least(args.batch, "--batch", 1)
    if args.threads is not None:
        at_least(args.threads, "--threads", 1)
    cfg = config_from_args(args)
    cx = model_complexity(cfg.model)
    weights = args.backbone_weights or cfg.model.backbone.weights or None
    report = None
    if weights:
        holder = nn.Module()  # only the backbone is needed to check and load a backbone checkpoint
        holder.backbone = build_backbone(cfg.model)
        state = extract_state_dict(load_checkpoint(weights), weights)  # weights_only; pickled code is refused
        report = load_vitpose(holder, state, prefixes=("backbone.",), raise_on_mismatch=False)
    if args.json:
        doc = {
            "params": {k: cx.params[k] for k in ("backbone", "strl", "decoder", "prior_head", "total")
                       if k in cx.params},
            "gflops": {k: round(cx.gflops[k], 6) for k in ("backbone_per_frame", "strl_per_clip", "decoder_per_step",
                                                           "prior_head_per_clip") if k in cx.gflops},
            "weights": {"missing": report.missing if report else [], "unexpected": report.unexpected if report else []},
        }
        print(json.dumps(doc, indent=2))
    else:
        print(_human(cfg, args.preset, cx, weights, report))
        if args.time_train_step:
            if args.threads:
                torch.set_num_threads(args.threads)
            device = "cuda" if torch.cuda.is_available() else f"cpu, {torch.get_num_threads()} threads"
            print(f"\ntraining step, batch {args.batch} ({device}; fwd + bwd + AdamW, random data):")
            for kind in KINDS:
                sec = time_train_step(cfg, kind, args.batch)
                print(f"  {kind:<9} {sec * 1000:8.0f} ms/step  {args.batch / sec:7.1f} clips/s  "
                      f"({KINDS[kind].summary})")
    if report is not None and not report.ok:
        problems = []
        if report.missing:
            problems.append(f"{len(report.missing)} backbone key(s) missing (e.g. {report.missing[0]})")
        if report.mismatched:
            problems.append(f"{len(report.mismatched)} shape mismatch(es) (e.g. {report.mismatched[0]})")
        print(f"diffpose model-info: error: {weights}: " + "; ".join(problems), file=sys.stderr)
        return 1
    return 0
