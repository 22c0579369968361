"""Print the parameter counts and GFLOPs of a model, part by part, and check a backbone checkpoint.

The model is a preset's (--preset, --config, --set) or a checkpoint's (-c CKPT: a diffpose checkpoint, or a
published ViTPose checkpoint, whose size and head are read from its weights).

The parts are the graphs the model kind's prediction calls (for DiffPose: the ViT backbone per frame, the
STRL per clip, the Pose-Decoder's condition pyramid per clip and its denoising step per step and hypothesis,
the prior head per clip; for the regression kinds: backbone, STRL, heatmap head). Choose the kind with
--set model.kind=KIND. GFLOPs are multiply-accumulates / 1e9 at batch 1, counted with
torch.utils.flop_counter.FlopCounterMode (whose count is halved), as the pose literature quotes them
(ViTPose-B: ~17.1 GFLOPs at 256x192).

With --time-train-step the command also times one training step (forward, backward and AdamW update) of
every model kind on --batch random clips (CUDA when available, else CPU with --threads threads), and prints
milliseconds per step and clips per second.

With --backbone-weights CKPT the checkpoint (a ViTPose .pth with a state_dict, or a raw state dict) is
loaded into the backbone and the missing / unexpected keys are listed. The exit status is 1 when
backbone keys are missing or a shape does not match.

--json prints
  {"kind": KIND, "num_frames": T,
   "params": {PART: count, ..., "total": count},          parts that hold parameters of their own
   "gflops": {"PART_per_frame|clip|step": GMACs, ...},
   "weights": {"missing": [...], "unexpected": [...]}}
e.g. for DiffPose the parts backbone, strl, decoder_prepare (its parameters are the decoder's), decoder and
prior_head.

examples:
  diffpose model-info
  diffpose model-info --preset paper --backbone-weights vitpose-b.pth --json
  diffpose model-info -c vitpose-b.pth
  diffpose model-info --set model.kind=baseline
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

from diffpose.checkpoint import CheckpointError, first_sentence, free_memory
from diffpose.cli.args import add_checkpoint, add_config, checkpoint_from_args, config_from_args, number
from diffpose.config import Config
from diffpose.errors import DiffPoseError
from diffpose.estimators import KINDS, build_estimator, checkpoint_config, meta_estimator
from diffpose.estimators.kinds import check_model_fits
from diffpose.models import Complexity, build_backbone, load_vitpose, param_groups
from diffpose.models.stem import token_layout
from diffpose.models.vitpose_io import read_state_dict


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_checkpoint(parser, required=False, help="report this checkpoint's model instead of a preset's: a diffpose "
                   "checkpoint or a published ViTPose (mmpose .pth, transformers folder or .safetensors)")
    add_config(parser)
    parser.add_argument("--backbone-weights", metavar="CKPT", default=None,
                        help="ViTPose-style checkpoint to load into the backbone and report on")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON instead of a table")
    parser.add_argument("--time-train-step", action="store_true",
                        help="also time a training step (fwd + bwd + AdamW) on random data (not in --json)")
    parser.add_argument("--batch", type=number(int, 1), default=16, help="clips per timed training step (default: 16)")
    parser.add_argument("--threads", type=number(int, 1), default=None,
                        help="CPU threads for the timing (default: torch's)")


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


OOM_TEXTS = ("not enough memory", "out of memory", "can't allocate", "cannot allocate", "failed to allocate")


def train_step_bytes(cfg: Config, batch: int) -> int:
    """A lower bound of the bytes a training step at ``batch`` clips holds: the input clips, and the activations
    each ViT block of a frame with gradients keeps for the backward pass (block inputs, attention weights, MLP)."""
    m, bb = cfg.model, cfg.model.backbone
    h, w = token_layout(bb.image_size, bb.stem, bb.patch_size, bb.patch_padding).grid
    n = h * w
    per_block = n * bb.embed_dim * (8 + 2 * bb.mlp_ratio) + bb.num_heads * n * n  # LNs, q k v, MLP; attention
    frames_with_grad = m.num_frames if bb.neighbour_grad else 1
    per_clip = m.num_frames * 3 * bb.image_size[0] * bb.image_size[1] + frames_with_grad * bb.depth * per_block
    return int(4 * batch * per_clip)


def _timed_or_refused(cfg: Config, kind: str, batch: int) -> float:
    """:func:`time_train_step`, refused in one line when ``batch`` clips cannot fit in memory: before anything is
    allocated when the lower bound of :func:`train_step_bytes` exceeds half the memory available (the rest of
    the network needs more), else when the step runs out of memory."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    free = free_memory(device)
    need = train_step_bytes(cfg, batch)
    if free is not None and need > free // 2:
        raise DiffPoseError(f"a training step at batch {batch} needs more than {need / 2**30:,.1f} GiB (input clips "
                            f"and backbone activations); {free / 2**30:.1f} GiB of memory is available: time a "
                            "smaller --batch", field="--batch")
    try:
        return time_train_step(cfg, kind, batch)
    except (torch.OutOfMemoryError, MemoryError, RuntimeError) as e:
        if not isinstance(e, (torch.OutOfMemoryError, MemoryError)) and not any(
                s in str(e).lower() for s in OOM_TEXTS):
            raise
        if device.type == "cuda":
            torch.cuda.empty_cache()
        raise DiffPoseError(f"a {kind} training step at batch {batch} does not fit in memory "
                            f"({first_sentence(e, 100)}); time a smaller --batch", field="--batch") from None


def _table(rows: list[tuple[str, str, str, str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = []
    for n, r in enumerate(rows):
        lines.append(f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]:<{widths[3]}}".rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _human(cfg: Config, source: str, estimator_line: str, cx: Complexity, num_frames: int, weights: str | None,
           report: Any) -> str:
    m = cfg.model
    h, w = m.backbone.image_size
    hh, hw = m.heatmap_size
    per = {"frame": "frame", "clip": "clip", "step": "step x hypothesis"}
    rows = [("part", "params", "GFLOPs", "per")]
    rows += [(p.label, "(shared)" if p.params is None else f"{p.params:,}", f"{p.gflops:.3f}", per[p.per])
             for p in cx.parts]
    steps = any(p.per == "step" for p in cx.parts)
    rows.append(("total", f"{cx.total_params:,}", f"{cx.clip_gflops(num_frames):.3f}",
                 f"clip ({num_frames} frame{'s' if num_frames != 1 else ''}{', S=1, K=1' if steps else ''})"))
    out = [
        f"{source}: {estimator_line}; {m.num_joints} joints ({m.layout}); crops {h}x{w} (HxW), heatmaps {hh}x{hw} "
        "(HxW); "
        f"backbone ViT {m.backbone.embed_dim}d x {m.backbone.depth} blocks, "
        + (f"patch {m.backbone.patch_size}" if m.backbone.stem == "patch" else "conv stem (stride 8)"),
        "",
        _table(rows),
        "",
        "GFLOPs = multiply-accumulates / 1e9 at batch 1 (FlopCounterMode count / 2). A clip of T frames costs",
        "T x (per frame) + (per clip)" + (" + S x K x (per step), with S steps and K hypotheses." if steps else "."),
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
    checkpoint = checkpoint_from_args(args)
    if checkpoint is not None and (args.config or args.overrides):
        raise DiffPoseError("give -c/--checkpoint or --config/--set, not both: a checkpoint carries its own config")
    cfg = checkpoint_config(checkpoint) if checkpoint is not None else config_from_args(args)
    try:
        check_model_fits(cfg)  # a config claiming a huge model: refused before it is even built on meta
    except DiffPoseError as e:
        if checkpoint is None:
            raise
        raise CheckpointError(f"its config cannot be used: {e}", checkpoint, "config") from None
    source = f"checkpoint {checkpoint}" if checkpoint is not None else f"preset {args.preset}"
    with torch.device("meta"):  # nothing allocated: the kind's clip length, description and costs
        estimator = meta_estimator(cfg)
        cx = estimator.complexity()
    weights = args.backbone_weights or cfg.model.backbone.weights or None
    report = None
    if weights:
        holder = nn.Module()  # only the backbone is needed to check and load a backbone checkpoint
        holder.backbone = build_backbone(cfg.model)
        state = read_state_dict(weights)  # weights_only (or safetensors): pickled code is refused
        report = load_vitpose(holder, state, prefixes=("backbone.",), raise_on_mismatch=False)
    if args.json:
        doc = {
            "kind": cfg.model.kind, "num_frames": estimator.num_frames, "params": cx.params,
            "gflops": {k: round(v, 6) for k, v in cx.gflops.items()},
            "weights": {"missing": report.missing if report else [], "unexpected": report.unexpected if report else []},
        }
        print(json.dumps(doc, indent=2))
    else:
        print(_human(cfg, source, estimator.describe(), cx, estimator.num_frames, weights, report))
        if args.time_train_step:
            if args.threads:
                torch.set_num_threads(args.threads)
            device = "cuda" if torch.cuda.is_available() else f"cpu, {torch.get_num_threads()} threads"
            print(f"\ntraining step, batch {args.batch} ({device}; fwd + bwd + AdamW, random data):")
            for kind in KINDS:
                sec = _timed_or_refused(cfg, kind, args.batch)
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
