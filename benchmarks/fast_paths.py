"""Fast paths for inference, timed side by side against the default eager float32 path.

For each part of the model -- backbone (per crop), STRL (per clip), one decoder step (per clip and hypothesis,
K = 4) and the baseline's head (per crop) -- every alternative runs in the same interleaved rounds as the
default (best of ``--rounds``), and the table gives ms, the speed-up and the largest absolute deviation of
the output from the default's:

* ``no_grad``: ``torch.no_grad`` instead of ``torch.inference_mode`` (the default);
* ``channels_last`` / ``NCHW inside`` / ``NCHW stem``: NHWC inputs for the baseline head; the decoder and the
  conv stem in the default (NCHW) layout instead of their channels-last one;
* ``bf16``: ``torch.autocast(device_type, torch.bfloat16)``;
* ``math attention``: softmax(QK^T)V written out instead of ``F.scaled_dot_product_attention``;
* ``concat decoder``: the decoder without the per-clip pyramid, the condition pyramid copied per hypothesis and Fuse on
  ``concat(A * F, F)`` (the default broadcasts it and splits the first Fuse layer);
* ``torch.compile``: inductor, default mode (compile time reported separately);
* ``onnxruntime``: the exported graph on the CPU execution provider.

    python benchmarks/fast_paths.py [--preset tiny] [--batch 32] [--rounds 5] [--threads 1] [--no-compile]
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from inference import models  # noqa: E402

from diffpose.estimators import PoseEstimator  # noqa: E402
from diffpose.models import vit  # noqa: E402
from diffpose.models.lmsfi import lookup_mask  # noqa: E402

Case = Callable[[], torch.Tensor]


def math_attention(self: vit.Attention, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
    """:class:`~diffpose.models.vit.Attention` without ``scaled_dot_product_attention``."""
    b, n, d = x.shape
    hd = d // self.num_heads
    w_q, w_kv = self.qkv.weight.split([d, 2 * d])  # (D, D), (2D, D)
    b_q, b_kv = self.qkv.bias.split([d, 2 * d]) if self.qkv.bias is not None else (None, None)
    src = x if context is None else context  # (B, M, D)
    q = torch.nn.functional.linear(x, w_q, b_q).reshape(b, n, self.num_heads, hd).transpose(1, 2)  # (B, nh, N, hd)
    kv = torch.nn.functional.linear(src, w_kv, b_kv).reshape(b, src.shape[1], 2, self.num_heads, hd)
    k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)  # 2 x (B, nh, M, hd)
    attn = (q @ k.transpose(-2, -1) * (hd**-0.5)).softmax(dim=-1)  # (B, nh, N, M)
    return self.proj((attn @ v).transpose(1, 2).reshape(b, n, d))  # (B, N, D)


def concat_decoder(net: torch.nn.Module, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor,
                   k: int) -> torch.Tensor:
    """One denoising step without broadcasting (pyramid copied per hypothesis, Fuse on the concat)."""
    dec = net.decoder
    f1 = dec.cond_1(cond)
    f2 = dec.cond_2(f1)
    f3 = dec.cond_3(f2)
    x_in = torch.cat([x_t, torch.zeros_like(x_t)], dim=1) if dec.self_condition else x_t  # no previous estimate
    xbar3 = dec.film(dec.heat_embed(x_in), dec.time_embed(t))
    xbar2 = dec.heat_down2(xbar3)
    xbar1 = dec.heat_down1(xbar2)
    out = 0
    for scale, heat, f in ((dec.scale1, xbar1, f1), (dec.scale2, xbar2, f2), (dec.scale3, xbar3, f3)):
        f = f[:, None].expand(-1, k, *f.shape[1:]).reshape(-1, *f.shape[1:])  # (B*K, C, H, W) copies
        refined = scale.seref(heat)
        fused = scale.fuse(torch.cat([lookup_mask(refined) * f, f], dim=1))
        if scale.heat_proj is not None:
            fused = fused + scale.heat_proj(refined)
        out = out + scale.up(fused)
    return dec.head(out)


def timed(cases: dict[str, Case], rounds: int) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    """Seconds per call (best of interleaved rounds) and each case's output. ``no_grad`` cases manage their own
    grad mode; the others run under ``inference_mode``."""
    outputs, best = {}, dict.fromkeys(cases, float("inf"))

    def mode(name: str) -> object:
        return torch.no_grad() if name == "no_grad" else torch.inference_mode()

    for name, fn in cases.items():
        with mode(name):
            outputs[name] = fn().float()
    for _ in range(rounds):
        for name, fn in cases.items():
            with mode(name):
                t0 = time.perf_counter()
                fn()
                best[name] = min(best[name], time.perf_counter() - t0)
    return best, outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=("tiny", "paper"), default="tiny")
    parser.add_argument("--batch", type=int, help="crops / clips per call (32 tiny, 4 paper)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--no-onnx", action="store_true")
    parser.add_argument("--skip", nargs="*", default=[], help="paths to leave out, e.g. bf16 (slow without bf16 units)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    est, base_est = models(args.preset)
    net, base, cfg = est.net, base_est.net, est.cfg
    b = args.batch or (32 if args.preset == "tiny" else 4)
    k = 4
    g = torch.Generator().manual_seed(0)
    h, w = cfg.model.backbone.image_size
    frames = torch.randn(b, 3, h, w, generator=g)
    with torch.inference_mode():
        feats = net.backbone_features(frames)  # (B, D, h, w)
    clip = feats[:, None].expand(-1, cfg.model.num_frames, -1, -1, -1).contiguous()  # (B, T, D, h, w)
    cond = torch.randn(b, cfg.model.strl.out_dim, *feats.shape[-2:], generator=g)
    x_t = torch.randn(b * k, cfg.model.num_joints, *cfg.model.heatmap_size, generator=g)
    t = torch.full((b * k,), 999)
    with torch.inference_mode():
        pyramid = net.prepare(cond).expand(k)
    cl = torch.channels_last
    nchw = copy.deepcopy(net)  # the decoder in the default (NCHW) layout instead of channels-last
    nchw.decoder.memory_format = torch.contiguous_format
    if hasattr(nchw.backbone, "stem"):  # the conv stem in the default layout too
        nchw.backbone.stem.memory_format = torch.contiguous_format
    with torch.inference_mode():
        nchw_pyramid = nchw.prepare(cond).expand(k)
    bf16 = torch.autocast("cpu", dtype=torch.bfloat16)
    parts: dict[str, tuple[int, dict[str, Case]]] = {
        "backbone": (b, {
            "default": lambda: net.backbone_features(frames),
            "no_grad": lambda: net.backbone_features(frames),
            "bf16": lambda: _with(bf16, lambda: net.backbone_features(frames)),
            "math attention": lambda: _patched(lambda: net.backbone_features(frames)),
            **({"NCHW stem": lambda: nchw.backbone_features(frames)} if hasattr(net.backbone, "stem") else {}),
        }),
        "strl": (b, {
            "default": lambda: net.condition_from_features(clip),
            "bf16": lambda: _with(bf16, lambda: net.condition_from_features(clip)),
            "math attention": lambda: _patched(lambda: net.condition_from_features(clip)),
        }),
        "decoder step (K=4)": (b * k, {
            "default": lambda: net.denoise(x_t, t, pyramid),
            "concat decoder": lambda: concat_decoder(net, x_t, t, cond, k),
            "NCHW inside": lambda: nchw.denoise(x_t, t, nchw_pyramid),
            "bf16": lambda: _with(bf16, lambda: net.denoise(x_t, t, pyramid)),
        }),
        "baseline head": (b, {
            "default": lambda: base.keypoint_head(feats),
            "channels_last": lambda: base.keypoint_head(feats.contiguous(memory_format=cl)),
            "bf16": lambda: _with(bf16, lambda: base.keypoint_head(feats)),
        }),
    }
    compile_s = {}
    if not args.no_compile and "torch.compile" not in args.skip:
        for part, module, call in (("backbone", net.backbone, lambda m: m(frames)),
                                   ("strl", net.strl, lambda m: m(clip)),
                                   ("decoder step (K=4)", net.decoder, lambda m: m(x_t, t, pyramid))):
            compiled = torch.compile(module)
            t0 = time.perf_counter()
            with torch.inference_mode():
                call(compiled)
            compile_s[part] = time.perf_counter() - t0
            parts[part][1]["torch.compile"] = lambda c=compiled, f=call: f(c)
    if not args.no_onnx:
        _add_onnx(parts, est, frames, clip, x_t, t, pyramid)
    print(f"{args.preset}, {args.threads} thread(s), batch {b}, best of {args.rounds} interleaved rounds")
    print(f"{'part':<20}{'path':<16}{'ms/item':>9}{'speed-up':>10}{'max |diff|':>12}")
    for part, (items, cases) in parts.items():
        cases = {name: fn for name, fn in cases.items() if name not in args.skip}
        best, outs = timed(cases, args.rounds)
        for name in cases:
            diff = (outs[name] - outs["default"]).abs().max().item()
            print(f"{part:<20}{name:<16}{1000 * best[name] / items:9.3f}{best['default'] / best[name]:9.2f}x"
                  f"{diff:12.2e}")
    for part, sec in compile_s.items():
        print(f"torch.compile of {part}: {sec:.1f} s (first call)")


def _with(context: object, fn: Case) -> torch.Tensor:
    with context:  # type: ignore[attr-defined]
        return fn()


def _patched(fn: Case) -> torch.Tensor:
    original = vit.Attention.forward
    vit.Attention.forward = math_attention  # type: ignore[method-assign]
    try:
        return fn()
    finally:
        vit.Attention.forward = original  # type: ignore[method-assign]


def _add_onnx(parts: dict, est: PoseEstimator, frames: torch.Tensor, clip: torch.Tensor, x_t: torch.Tensor,
              t: torch.Tensor, pyramid: object) -> None:
    try:
        from diffpose.estimators import load_onnx_estimator
        from diffpose.export import export_onnx
    except ImportError:
        return
    folder = Path(tempfile.mkdtemp(prefix="diffpose_onnx_"))
    export_onnx(est, folder, check=False)
    try:
        ort = load_onnx_estimator(folder, threads=torch.get_num_threads()).net
    except Exception:  # onnxruntime missing
        return
    parts["backbone"][1]["onnxruntime"] = lambda: ort.backbone_features(frames)
    parts["strl"][1]["onnxruntime"] = lambda: ort.condition_from_features(clip)
    parts["decoder step (K=4)"][1]["onnxruntime"] = lambda: ort.denoise(x_t, t, pyramid)


if __name__ == "__main__":
    main()
