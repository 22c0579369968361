"""Helpers shared by tests in several folders: paths, a micro model config, ViTPose key tables, CLI checks."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from diffpose.cli import main as cli_main
from diffpose.models.lmsfi import lookup_mask

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DIFFPOSE_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))
ASSETS = PROJECT_ROOT / "diffpose" / "assets"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

# A very small DiffPose (64x48 crops -> patch stem -> 4x3 tokens -> 16x12 heatmaps) so that engine tests take
# seconds.
MICRO = [
    "model.backbone.stem=patch", "model.backbone.image_size=[64, 48]", "model.heatmap_size=[16, 12]", "model.sigma=1.0",
    "model.backbone.embed_dim=32", "model.backbone.depth=1", "model.backbone.num_heads=2",
    "model.strl.dim=32", "model.strl.depth=1", "model.strl.num_heads=2", "model.strl.out_dim=32",
    "model.strl.agg_hidden=32", "model.decoder.heatmap_dim=16", "model.decoder.widths=[32, 16, 16]",
    "model.decoder.seref_dim=16", "model.decoder.num_heads=2", "model.decoder.time_dim=16",
    "model.decoder.conv_depth=1", "model.baseline_deconv_channels=16",
    "train.batch_size=4", "train.warmup_steps=2", "train.log_every=1", "train.lr=1e-3", "train.backbone_lr=1e-3",
    "train.device=cpu",
]  # fmt: skip


# The tiny preset with ViTPose's patch stem instead of the conv stem (128x96 crops -> 8x6 tokens -> 32x24
# heatmaps, 4 blocks): the shape the ViTPose-loading tests resize checkpoints into.
PATCH_TINY = ["model.backbone.stem=patch", "model.heatmap_size=[32, 24]", "model.sigma=1.5", "model.backbone.depth=4"]

VIT_B_PARAMS = 85_794_816  # ViT-B/16 at 256x192 with ViTPose's 193-slot pos_embed



def vitpose_b_backbone_shapes() -> dict[str, tuple[int, ...]]:
    """ViTPose-B's ``backbone.*`` keys and shapes, written out from the ViTPose config (not from our model)."""
    d, hidden = 768, 3072
    shapes: dict[str, tuple[int, ...]] = {
        "backbone.pos_embed": (1, 193, d),
        "backbone.patch_embed.proj.weight": (d, 3, 16, 16),
        "backbone.patch_embed.proj.bias": (d,),
        "backbone.last_norm.weight": (d,),
        "backbone.last_norm.bias": (d,),
    }
    for i in range(12):
        p = f"backbone.blocks.{i}."
        shapes.update({
            p + "norm1.weight": (d,), p + "norm1.bias": (d,),
            p + "attn.qkv.weight": (3 * d, d), p + "attn.qkv.bias": (3 * d,),
            p + "attn.proj.weight": (d, d), p + "attn.proj.bias": (d,),
            p + "norm2.weight": (d,), p + "norm2.bias": (d,),
            p + "mlp.fc1.weight": (hidden, d), p + "mlp.fc1.bias": (hidden,),
            p + "mlp.fc2.weight": (d, hidden), p + "mlp.fc2.bias": (d,),
        })  # fmt: skip
    return shapes


def vitpose_b_head_shapes(joints: int = 17) -> dict[str, tuple[int, ...]]:
    """ViTPose-B's ``keypoint_head.*`` keys (TopdownHeatmapSimpleHead, 2 deconvs of 256, 1x1 final conv)."""
    shapes: dict[str, tuple[int, ...]] = {
        "keypoint_head.deconv_layers.0.weight": (768, 256, 4, 4),
        "keypoint_head.deconv_layers.3.weight": (256, 256, 4, 4),
        "keypoint_head.final_layer.weight": (joints, 256, 1, 1),
        "keypoint_head.final_layer.bias": (joints,),
    }
    for i in (1, 4):
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"keypoint_head.deconv_layers.{i}.{name}"] = (256,)
        shapes[f"keypoint_head.deconv_layers.{i}.num_batches_tracked"] = ()
    return shapes


def random_state(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: (torch.tensor(7) if k.endswith("num_batches_tracked") else torch.randn(s, generator=g))
            for k, s in shapes.items()}


def digest(*paths: Path) -> dict[str, str]:
    """SHA-256 of every file under ``paths`` (files or folders)."""
    files = [q for p in paths for q in ([p] if p.is_file() else sorted(p.rglob("*"))) if q.is_file()]
    return {str(f): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def run(capsys, *argv: object) -> tuple[int, str, str]:
    code = cli_main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err.strip()


def refused(result: tuple[int, str, str], command: str, *needles: str, status: int = 2) -> str:
    """Assert exit ``status`` and one stderr line ``diffpose COMMAND: error: ...`` holding every needle."""
    code, _, err = result
    assert code == status, (code, err)
    assert len(err.splitlines()) == 1 and err.startswith(f"diffpose {command}: error: "), err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


class CodePayload:
    """Unpickling this runs ``touch MARKER``: what a malicious checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def val_json(root: Path) -> Path:
    """The first sequence file of ``root``'s val split."""
    return sorted((root / "annotations" / "val").glob("*.json"))[0]


def concat_formulation(net: torch.nn.Module, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, k: int
                       ) -> torch.Tensor:
    """One decoder step as the paper writes it: the condition pyramid copied per hypothesis and every first Fuse
    layer applied to ``concat(A * F, F)`` (plus the heat path when the decoder has one, no previous estimate);
    the scales summed at full resolution, or merged top-down for the light step. The reference the broadcast
    decoder is tested against."""
    dec = net.decoder
    f1 = dec.cond_1(cond)
    f2 = dec.cond_2(f1)
    f3 = dec.cond_3(f2)
    x_in = torch.cat([x_t, torch.zeros_like(x_t)], dim=1) if dec.self_condition else x_t
    xbar3 = dec.film(dec.heat_embed(x_in), dec.time_embed(t))
    xbar2 = dec.heat_down2(xbar3)
    xbar1 = dec.heat_down1(xbar2)
    outs = []
    for scale, heat, f in ((dec.scale1, xbar1, f1), (dec.scale2, xbar2, f2), (dec.scale3, xbar3, f3)):
        f = f.repeat_interleave(k, 0)  # (B*K, C, H_j, W_j): copies
        refined = scale.seref(heat)
        fused = scale.fuse(torch.cat([lookup_mask(refined) * f, f], dim=1))
        if scale.heat_proj is not None:
            fused = fused + scale.heat_proj(refined)
        outs.append(scale.up(fused))
    if dec.light:
        return dec.head(outs[2] + dec.merge3(outs[1] + dec.merge2(outs[0])))
    return dec.head(outs[0] + outs[1] + outs[2])
