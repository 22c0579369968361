"""Inference cost per person-frame: single-frame baseline vs DiffPose naive (exact) vs DiffPose with feature reuse.

One run, on the same frames and boxes, prints:

1. **Roofline**: this CPU's float32 matmul throughput (``torch.mm`` of 2048 x 2048, best of the rounds) and the
   backbone's achieved throughput on a batch of crops, in GFLOP/s (FLOPs = 2 x the MACs ``diffpose
   model-info`` counts), and the percentage. Both are timed in the same interleaved rounds.
2. **End to end** (``tiny``, the bundled checkpoints): the streaming pipeline (cropping, model, decoding,
   tracking; frames already decoded in memory, boxes on every frame) over the first ``--frames`` frames of
   the first val video, for the baseline, DiffPose exact and DiffPose with reuse at every S in ``--steps``
   and K in ``--ensemble``, in ms per person-frame, with the ratios to the baseline and to K = 1. With
   onnxruntime installed, the baseline and reuse also run on the exported graphs (S = 1).
3. **Model only**: the parts timed on their own (crop, backbone, baseline head + decoding, STRL, feature
   warp, sampling = decoder pyramid + S x K steps + decoding) and composed per person-frame:
   baseline = crop + backbone + head; exact = T (crop + backbone) + STRL + sampling;
   reuse = crop + backbone + warp + STRL + sampling. ``--preset paper`` builds random-weight models of the
   paper's size and reports only this part (timing only).
4. **Designs**, old and new side by side (model only, random weights: timing only): the paper's design (joint
   STRL, full decoder step), the key-query STRL, and the cross-attention STRL with pooled neighbours
   (``strl.queries=cross``, ``strl.neighbour_pool=2``) with the full and with the light decoder step
   (``decoder.step=light``), each on the preset's sizes, composed with the same crop, backbone, warp and
   baseline timings: reuse S=1 K=1 per person-frame, its ratio to the baseline, K = max / K = 1 at S = 1, and
   the GFLOPs of STRL and one step.
5. **AP** (with ``--data``, a SynthTrack root): Total AP (and AP on occluded joints) of every configuration on
   the split, next to its time (see ``benchmarks/inference_ap.py``), and, for S = 1, K = 1, the AP of the
   real streaming pipeline run over every frame of every val video.

Every timing is the best of ``--rounds`` rounds; each round runs every configuration once, in turn, so a
background load slows all of them alike. Timings use ``--threads`` threads (default 1).

    python benchmarks/inference.py --data data/synthtrack [--rounds 3] [--frames 12] [--json out.json]
    python benchmarks/inference.py --preset paper --rounds 2
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import inference_ap  # noqa: E402

from diffpose.config import SamplingConfig, load_config  # noqa: E402
from diffpose.estimators import (  # noqa: E402
    PoseEstimator,
    build_estimator,
    load_estimator,
    model_complexity,  # noqa: E402
)
from diffpose.inference import Boxes, PipelineOptions, Predictor, SourceFrame, StreamingPipeline  # noqa: E402
from diffpose.inference.feature_warp import TokenGeometry, warp_features  # noqa: E402

ASSETS = Path(__file__).resolve().parents[1] / "diffpose" / "assets"


def best_of(cases: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Seconds per call of each case: the minimum over ``rounds`` interleaved rounds (one warm-up call first)."""
    best = dict.fromkeys(cases, float("inf"))
    with torch.inference_mode():
        for fn in cases.values():
            fn()
        for _ in range(rounds):
            for name, fn in cases.items():
                t0 = time.perf_counter()
                fn()
                best[name] = min(best[name], time.perf_counter() - t0)
    return best


class AllBoxes:
    """Box provider with the boxes of every frame (``boxes[f]``: ``(N, 4)``)."""

    name = "all-frame boxes"

    def __init__(self, boxes: list[np.ndarray]):
        self.boxes = boxes

    def __call__(self, frame: SourceFrame) -> Boxes:
        b = self.boxes[frame.index]
        return Boxes(b, np.ones(len(b)), "gt")


def models(preset: str) -> tuple[PoseEstimator, PoseEstimator]:
    """(DiffPose, baseline) estimators (network ``.net``, config ``.cfg``): the bundled checkpoints for ``tiny``,
    random weights for ``paper``."""
    if preset == "tiny":
        return load_estimator(ASSETS / "tiny_diffpose.pt", "cpu"), load_estimator(ASSETS / "tiny_baseline.pt", "cpu")
    cfg = load_config(preset)
    torch.manual_seed(0)
    est = build_estimator(cfg, load_weights=False).eval()
    base_cfg = load_config(preset, overrides=["model.kind=baseline"])
    return est, build_estimator(base_cfg, load_weights=False).eval()


def roofline(net: torch.nn.Module, cfg: object, batch: int, rounds: int) -> dict[str, float]:
    """Matmul GFLOP/s and the backbone's achieved GFLOP/s on ``batch`` crops, timed in the same rounds."""
    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    h, w = cfg.model.backbone.image_size
    frames = torch.randn(batch, 3, h, w)
    t = best_of({"mm": lambda: a @ b, "backbone": lambda: net.backbone_features(frames)}, max(rounds, 3))
    gmacs = model_complexity(cfg).gflops["backbone_per_frame"]
    mm = 2 * n**3 / t["mm"] / 1e9
    bb = 2 * gmacs * batch / t["backbone"]
    return {"matmul_gflops": mm, "backbone_gflops": bb, "percent": 100 * bb / mm, "batch": batch,
            "backbone_ms_per_crop": 1000 * t["backbone"] / batch}


def shared_parts(est: PoseEstimator, base_est: PoseEstimator, batch: int
                 ) -> tuple[dict[str, Callable[[], object]], torch.Tensor, int]:
    """The parts every path shares or replaces (crop, backbone, baseline head + decoding, feature warp) as timing
    cases on ``batch`` crops, the clip features ``(B, T, D, h, w)`` for the STRL, and ``T``."""
    pred = Predictor(est, "cpu")
    net, base = est.net, base_est.net
    t_frames = len(pred.offsets)
    h, w = est.cfg.model.backbone.image_size
    g = torch.Generator().manual_seed(0)
    image = (torch.rand(288, 384, 3, generator=g) * 255).to(torch.uint8).numpy()
    mat = pred.crop_matrix(np.array([150.0, 40.0, 80.0, 200.0]))
    frames = torch.randn(batch, 3, h, w, generator=g)
    geometry = TokenGeometry.from_model_config(est.cfg.model)
    with torch.inference_mode():
        feats = net.backbone_features(frames)  # (B, D, h, w)
    clip_feats = feats[:, None].expand(-1, t_frames, -1, -1, -1).contiguous()  # (B, T, D, h, w)
    shifted = np.array([mat] * (batch * (t_frames - 1)))
    moved = shifted.copy()
    moved[:, :, 2] += 3.0  # another crop, 3 px away
    cases: dict[str, Callable[[], object]] = {
        "crop": lambda: [pred.crop_frame(image, mat) for _ in range(batch)],
        "backbone": lambda: net.backbone_features(frames),
        "head": lambda: pred.codec.decode(base.keypoint_head(feats).float()),
        "warp": lambda: warp_features(feats.repeat(t_frames - 1, 1, 1, 1), shifted, moved, geometry),
    }
    return cases, clip_feats, t_frames


DESIGNS = {  # name -> overrides on the preset / checkpoint config
    "paper design: joint STRL, full step": ["model.strl.queries=all", "model.strl.neighbour_pool=1",
                                            "model.decoder.step=full"],
    "key-query STRL, full step": ["model.strl.queries=key", "model.strl.neighbour_pool=1", "model.decoder.step=full"],
    "cross STRL (pool 2), full step": ["model.strl.queries=cross", "model.strl.neighbour_pool=2",
                                       "model.decoder.step=full"],
    "cross STRL (pool 2), light step": ["model.strl.queries=cross", "model.strl.neighbour_pool=2",
                                        "model.decoder.step=light"],
}


def designs(est: PoseEstimator, base_est: PoseEstimator, batch: int, k_max: int, rounds: int
            ) -> dict[str, dict[str, float]]:
    """Model-only ms per person-frame of every design in :data:`DESIGNS` (random weights), timed in the same
    rounds as the baseline's parts."""
    from diffpose.config import merge_dict, parse_override

    cases, clip_feats, _ = shared_parts(est, base_est, batch)
    g = torch.Generator().manual_seed(0)
    flops = {}
    for name, overrides in DESIGNS.items():
        cfg = est.cfg
        for text in overrides:
            cfg = merge_dict(cfg, parse_override(text))  # a copy with the override applied
        torch.manual_seed(0)
        variant = build_estimator(cfg, load_weights=False).eval()
        with torch.inference_mode():
            cond = variant.net.condition_from_features(clip_feats)  # (B, C, h, w)
        cases[f"{name}|strl"] = lambda v=variant: v.net.condition_from_features(clip_feats)
        for k in sorted({1, k_max}):
            cases[f"{name}|K{k}"] = (lambda v=variant, c=cond, k=k: v.predict_condition(
                c, SamplingConfig(steps=1, ensemble=k), g))
        flops[name] = model_complexity(cfg).gflops
    ms = {n: 1000 * sec / batch for n, sec in best_of(cases, rounds).items()}
    baseline = ms["crop"] + ms["backbone"] + ms["head"]
    out = {}
    for name in DESIGNS:
        shared = ms["crop"] + ms["backbone"] + ms["warp"] + ms[f"{name}|strl"]
        out[name] = {"strl_ms": ms[f"{name}|strl"], "sample_k1_ms": ms[f"{name}|K1"],
                     "reuse_k1_ms": shared + ms[f"{name}|K1"], "reuse_kmax_ms": shared + ms[f"{name}|K{k_max}"],
                     "baseline_ms": baseline, "strl_gflops": flops[name]["strl_per_clip"],
                     "step_gflops": flops[name]["decoder_per_step"]}
    return out


def print_designs(rows: dict[str, dict[str, float]], k_max: int) -> None:
    print(f"{'design (model only, S = 1)':<38}{'STRL':>7}{'sample':>8}{'reuse K1':>10}{'x base':>8}"
          f"{f'K{k_max}/K1':>8}{'GFLOPs STRL':>13}{'step':>7}")
    for name, r in rows.items():
        print(f"{name:<38}{r['strl_ms']:7.2f}{r['sample_k1_ms']:8.2f}{r['reuse_k1_ms']:10.2f}"
              f"{r['reuse_k1_ms'] / r['baseline_ms']:7.2f}x{r['reuse_kmax_ms'] / r['reuse_k1_ms']:7.2f}x"
              f"{r['strl_gflops']:13.3f}{r['step_gflops']:7.3f}")
    print(f"(ms per person-frame; baseline {next(iter(rows.values()))['baseline_ms']:.2f} ms; targets: "
          f"x base <= 1.3, K{k_max}/K1 <= 1.5)")


def components(est: PoseEstimator, base_est: PoseEstimator, batch: int, steps: list[int], ensemble: list[int],
               rounds: int) -> dict[str, float]:
    """Milliseconds per crop / clip of every part, and the composed ms per person-frame of every path."""
    net = est.net
    cases, clip_feats, t_frames = shared_parts(est, base_est, batch)
    g = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        cond = net.condition_from_features(clip_feats)  # (B, C, h, w)
    cases["strl"] = lambda: net.condition_from_features(clip_feats)
    for s in steps:
        for k in ensemble:
            cases[f"sample S{s} K{k}"] = (lambda s=s, k=k: est.predict_condition(
                cond, SamplingConfig(steps=s, ensemble=k), g))
    ms = {name: 1000 * sec / batch for name, sec in best_of(cases, rounds).items()}  # per crop or per clip
    out = dict(ms)
    out["baseline"] = ms["crop"] + ms["backbone"] + ms["head"]
    for s in steps:
        for k in ensemble:
            sample = ms[f"sample S{s} K{k}"]
            out[f"exact S{s} K{k}"] = t_frames * (ms["crop"] + ms["backbone"]) + ms["strl"] + sample
            out[f"reuse S{s} K{k}"] = ms["crop"] + ms["backbone"] + ms["warp"] + ms["strl"] + sample
    return out


def end_to_end(est: PoseEstimator, base_est: PoseEstimator, split: inference_ap.Split, n_frames: int,
               steps: list[int], ensemble: list[int], rounds: int, onnx_dir: Path | None
               ) -> tuple[dict[str, float], int]:
    """ms per person-frame of the streaming pipeline on the first ``n_frames`` frames of the first val video."""
    video = split.videos[0]
    frames = [SourceFrame(i, split.image(0, i), f.file_name, f.image_id or i, f)
              for i, f in enumerate(video.frames[:n_frames])]
    provider = AllBoxes(split.boxes[0])
    persons = sum(len(b) for b in split.boxes[0][:n_frames])

    def pipeline(pred: Predictor, reuse: bool) -> Callable[[], object]:
        return lambda: list(StreamingPipeline(pred, provider, options=PipelineOptions(reuse=reuse)).run(frames))

    cases = {"baseline": pipeline(Predictor(base_est, "cpu"), False)}
    for s in steps:
        for k in ensemble:
            pred = Predictor(est, "cpu", steps=s, ensemble=k)
            cases[f"exact S{s} K{k}"] = pipeline(pred, False)
            cases[f"reuse S{s} K{k}"] = pipeline(pred, True)
    if onnx_dir is not None:
        cases["baseline onnx"] = pipeline(Predictor.from_onnx(onnx_dir / "baseline", threads=torch.get_num_threads()),
                                          False)
        for k in ensemble:
            pred = Predictor.from_onnx(onnx_dir / "diffpose", threads=torch.get_num_threads(), steps=1, ensemble=k)
            cases[f"reuse onnx S1 K{k}"] = pipeline(pred, True)
    return {name: 1000 * sec / persons for name, sec in best_of(cases, rounds).items()}, persons


def ap_grid(est: PoseEstimator, base_est: PoseEstimator, split: inference_ap.Split, steps: list[int],
            ensemble: list[int], out: Path, min_iou: float) -> dict[str, object]:
    """Total AP (occluded AP) of every configuration, and the reuse cache's counts."""
    pred = Predictor(est, "cpu")
    result: dict[str, object] = {"baseline": inference_ap.ap_baseline(Predictor(base_est, "cpu"), split,
                                                                      out / "baseline")}
    cond_exact = inference_ap.conditions_exact(pred, split)
    cond_reuse, stats = inference_ap.conditions_reuse(pred, split, min_iou)
    result["reuse_cache"] = vars(stats)
    for s in steps:
        for k in ensemble:
            for path, cond in (("exact", cond_exact), ("reuse", cond_reuse)):
                folder = out / f"{path}_S{s}_K{k}"
                result[f"{path} S{s} K{k}"] = inference_ap.ap_diffpose(pred, split, cond, s, k, folder)
    return result


def pipeline_ap(est: PoseEstimator, base_est: PoseEstimator, split: inference_ap.Split, out: Path
                ) -> dict[str, tuple[float, float]]:
    """S1 K1 AP of the real streaming pipeline over every frame of every video (boxes on every frame)."""
    from diffpose.inference import PoseTrackWriter, consume

    result = {}
    for name, pred, reuse in (("baseline", Predictor(base_est, "cpu"), False),
                              ("exact S1 K1", Predictor(est, "cpu", steps=1, ensemble=1), False),
                              ("reuse S1 K1", Predictor(est, "cpu", steps=1, ensemble=1), True)):
        folder = out / ("pipeline_" + name.replace(" ", "_"))
        for v, video in enumerate(split.videos):
            frames = (SourceFrame(i, split.image(v, i), f.file_name, f.image_id or i, f)
                      for i, f in enumerate(video.frames))
            pipe = StreamingPipeline(pred, AllBoxes(split.boxes[v]), options=PipelineOptions(reuse=reuse))
            consume(pipe.run(frames), [PoseTrackWriter(folder / f"{video.name}.json", video.name, video)])
        result[name] = inference_ap.score(split, folder)
    return result


def export_all(est: PoseEstimator, base_est: PoseEstimator, folder: Path) -> Path | None:
    try:
        import onnxruntime  # noqa: F401

        from diffpose.export import export_onnx
    except ImportError:
        return None
    export_onnx(est, folder / "diffpose", check=False)
    export_onnx(base_est, folder / "baseline", check=False)
    return folder


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:5.2f}x" if a is not None and b else "   -  "


def print_table(e2e: dict[str, float] | None, parts: dict[str, float], ap: dict[str, object] | None,
                steps: list[int], ensemble: list[int]) -> None:
    rows = [("baseline", None, None)] + [(p, s, k) for p in ("exact", "reuse") for s in steps for k in ensemble]
    if e2e is not None:
        rows += [("baseline onnx", None, None)] * ("baseline onnx" in e2e)
        rows += [("reuse onnx", 1, k) for k in ensemble if f"reuse onnx S1 K{k}" in e2e]
    source = e2e if e2e is not None else parts
    print(f"{'path':<14}{'S':>3}{'K':>3}{'ms/pf':>9}{'x base':>8}{'x K=1':>8}{'model-only':>12}{'x base':>8}"
          f"{'AP':>7}{'AP occl':>9}")
    for path, s, k in rows:
        name = path if s is None else f"{path} S{s} K{k}"
        base = "baseline onnx" if path.endswith("onnx") and e2e is not None and "baseline onnx" in e2e else "baseline"
        k1 = None if s is None else source.get(f"{path} S{s} K1")
        model = parts.get(name)
        ap_v = (ap or {}).get(name.replace(" onnx", "")) if not path.startswith("baseline onnx") else None
        ap_s = f"{ap_v[0]:7.1f}{ap_v[1]:9.1f}" if isinstance(ap_v, tuple) else f"{'':7}{'':9}"
        e = source.get(name)
        print(f"{path:<14}{'-' if s is None else s:>3}{'-' if k is None else k:>3}{e:9.2f}{ratio(e, source[base]):>8}"
              f"{ratio(e, k1):>8}{(model if model is not None else float('nan')):12.2f}"
              f"{ratio(model, parts['baseline']):>8}{ap_s}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=("tiny", "paper"), default="tiny")
    parser.add_argument("--data", help="SynthTrack root: end-to-end timing on its val frames, and AP")
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--ensemble", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds; each timing is the best (default 3)")
    parser.add_argument("--frames", type=int, default=12, help="frames of the first val video timed end to end")
    parser.add_argument("--batch", type=int, help="crops / clips per call for the model-only timing (32 tiny, 4 paper)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reuse-iou", type=float, default=0.5)
    parser.add_argument("--no-ap", action="store_true", help="timing only")
    parser.add_argument("--no-onnx", action="store_true", help="skip the onnxruntime rows")
    parser.add_argument("--out", default="bench_inference", help="prediction files for the AP measurements")
    parser.add_argument("--json", help="write every number to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    est, base_est = models(args.preset)
    batch = args.batch or (32 if args.preset == "tiny" else 4)
    results: dict[str, object] = {"preset": args.preset, "threads": args.threads, "rounds": args.rounds}

    roof = roofline(est.net, est.cfg, batch, args.rounds)
    results["roofline"] = roof
    print(f"roofline ({args.threads} thread(s)): matmul {roof['matmul_gflops']:.1f} GFLOP/s (2048^2 float32 mm); "
          f"{args.preset} backbone {roof['backbone_gflops']:.1f} GFLOP/s on {batch} crops "
          f"({roof['backbone_ms_per_crop']:.2f} ms/crop) = {roof['percent']:.0f}% of matmul")

    parts = components(est, base_est, batch, args.steps, args.ensemble, args.rounds)
    results["model_only_ms"] = parts
    print("model-only parts (ms per crop or clip): " + ", ".join(
        f"{k} {parts[k]:.2f}" for k in ("crop", "backbone", "head", "strl", "warp")))
    rows = designs(est, base_est, batch, max(args.ensemble), args.rounds)
    results["designs_model_only"] = rows
    print_designs(rows, max(args.ensemble))

    e2e, ap = None, None
    if args.data and args.preset == "tiny":
        split = inference_ap.Split.load(args.data)
        with tempfile.TemporaryDirectory() as tmp:
            onnx_dir = None if args.no_onnx else export_all(est, base_est, Path(tmp))
            e2e, persons = end_to_end(est, base_est, split, args.frames, args.steps, args.ensemble, args.rounds,
                                      onnx_dir)
        results["end_to_end_ms_per_person_frame"] = e2e
        print(f"end to end: {persons} person-frames (first {args.frames} frames of {split.videos[0].name}), "
              f"best of {args.rounds} rounds")
        if not args.no_ap:
            t0 = time.perf_counter()
            ap = ap_grid(est, base_est, split, args.steps, args.ensemble, Path(args.out), args.reuse_iou)
            results["ap"] = ap
            results["pipeline_ap"] = pipeline_ap(est, base_est, split, Path(args.out))
            print(f"AP on {len(split.items)} persons of {len(split.videos)} {split.name} videos "
                  f"({time.perf_counter() - t0:.0f} s); reuse cache: {ap['reuse_cache']}")
            print("streaming pipeline AP at S1 K1 (every frame predicted, labelled frames scored): " + ", ".join(
                f"{k} {v[0]:.1f}" for k, v in results["pipeline_ap"].items()))
    print()
    print_table(e2e, parts, ap, args.steps, args.ensemble)
    src = e2e if e2e is not None else parts
    print()
    print(f"reuse S1 K1 / baseline: {src['reuse S1 K1'] / src['baseline']:.2f}x (target <= 1.3); "
          f"exact S1 K1 / baseline: {src['exact S1 K1'] / src['baseline']:.2f}x")
    k_max = max(args.ensemble)
    for s in args.steps:
        print(f"reuse S{s}: K={k_max} / K=1 = {src[f'reuse S{s} K{k_max}'] / src[f'reuse S{s} K1']:.2f}x "
              f"(target <= 1.5)")
    if ap is not None:
        diffs = {f"S{s} K{k}": ap[f"reuse S{s} K{k}"][0] - ap[f"exact S{s} K{k}"][0]
                 for s in args.steps for k in args.ensemble}
        worst = max(diffs, key=lambda c: abs(diffs[c]))
        print(f"AP reuse - exact: {', '.join(f'{c} {d:+.2f}' for c, d in diffs.items())}; "
              f"largest |difference| {abs(diffs[worst]):.2f} at {worst} (target <= 0.5)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=list))


if __name__ == "__main__":
    main()
