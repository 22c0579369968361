"""The cheap variants: the light decoder step (``decoder.step="light"``) against the concat formulation written
out by hand, its cost, and the STRL with key-frame cross-attention only (``strl.queries="cross"``) and pooled
neighbour tokens (``strl.neighbour_pool``) against a hand-written reference."""

from __future__ import annotations

import pytest
import torch

from diffpose.codec import HeatmapCodec
from diffpose.config import load_config
from diffpose.diffusion import HeatmapDiffusion, sample_poses
from diffpose.diffusion.sampler import ddim_step
from diffpose.estimators import model_complexity
from diffpose.models import DiffPoseNet
from diffpose.models.strl import STRL
from tests.helpers import concat_formulation
from tests.models.test_model_options import OPTIONS

LIGHT = [*OPTIONS, "model.decoder.step=light"]


def test_light_step_equals_the_concat_formulation_with_the_condition_broadcast():
    torch.manual_seed(0)
    net = DiffPoseNet.from_config(load_config("tiny", overrides=LIGHT).model).eval()
    g = torch.Generator().manual_seed(0)
    cond = torch.randn(3, 128, 16, 12, generator=g)
    x_t = torch.randn(12, 17, 64, 48, generator=g)
    t = torch.randint(0, 1000, (12,), generator=g)
    with torch.no_grad():
        for p in net.decoder.head.parameters():  # the heatmap-space head starts near 0: make it matter
            p.normal_(0, 0.2, generator=g)
        pyramid = net.prepare(cond)
        expanded = pyramid.expand(4)
        assert all(a is b for a, b in zip(expanded.tensors(), pyramid.tensors()))  # broadcast, not copied
        out = net.denoise(x_t, t, expanded)
        ref = concat_formulation(net, x_t, t, cond, 4)
    assert out.shape == (12, 17, 64, 48) and out.is_contiguous()
    assert ref.abs().max() > 0.1
    torch.testing.assert_close(out, ref, atol=2e-5, rtol=1e-4)


def test_light_step_reads_x_t_at_every_scale():
    torch.manual_seed(1)
    net = DiffPoseNet.from_config(load_config("tiny", overrides=LIGHT).model).eval()
    cond = torch.randn(1, 128, 16, 12)
    x_t = torch.randn(1, 17, 64, 48, requires_grad=True)
    out = net.denoise(x_t, torch.tensor([500]), net.prepare(cond))
    out[0, 3, 30, 20].backward()
    grad = x_t.grad[0].abs().sum(0)  # (H, W)
    assert grad[30, 20] > 0  # the pixel itself (the full-resolution scale)
    assert grad[0:20].sum() > 0 and grad[45:].sum() > 0  # far pixels, through the token-scale transformers


def test_light_step_costs_a_fraction_of_the_full_step():
    full = model_complexity(load_config("tiny")).gflops
    light = model_complexity(load_config("tiny", overrides=["model.decoder.step=light"])).gflops
    assert light["decoder_per_step"] < 0.4 * full["decoder_per_step"]
    assert light["decoder_prepare_per_clip"] < full["decoder_prepare_per_clip"]
    paper = model_complexity(load_config("paper")).gflops
    paper_light = model_complexity(load_config("paper", overrides=["model.decoder.step=light"])).gflops
    assert paper_light["decoder_per_step"] < 0.5 * paper["decoder_per_step"]


def test_last_sampling_step_returns_the_networks_heatmap_clamped():
    diffusion = HeatmapDiffusion.from_config(load_config("tiny").diffusion)
    g = torch.Generator().manual_seed(0)
    raw = torch.rand(6, 17, 64, 48, generator=g) * 1.6 - 0.3  # heatmaps, partly outside [0, 1]

    class Fixed:  # a network that predicts heatmaps and always returns `raw`
        num_joints, heatmap_size, predicts, self_condition = 17, (64, 48), "heatmap", False

        def prepare(self, cond):
            return type("P", (), {"expand": lambda s, k: s})()

        def denoise(self, x_t, t, pyramid, prev=None):
            return raw

    codec = HeatmapCodec((96, 128), (64, 48), 2.0)
    for steps in (1, 3):
        out = sample_poses(Fixed(), diffusion, codec, cond=torch.zeros(6, 4, 16, 12), steps=steps)
        torch.testing.assert_close(out.heatmaps, raw.clamp(0, 1), atol=0, rtol=0)
        via_signal = diffusion.signal.decode(diffusion.signal.clamp(diffusion.signal.encode(raw)), clamp=True)
        torch.testing.assert_close(out.heatmaps, via_signal, atol=1e-6, rtol=0)
    last = ddim_step(diffusion, torch.randn(2, 3, 4, 4), torch.zeros(2, 3, 4, 4), 249, -1)
    assert last.pred_noise is None and torch.equal(last.prev_sample, last.pred_x0)


# ------------------------------------------------------------------------------------------------
# STRL with key-frame cross-attention only (queries="cross") and pooled neighbours
# ------------------------------------------------------------------------------------------------
def _avg_pool_by_hand(grid: torch.Tensor, k: int) -> torch.Tensor:
    """``(B, D, h, w)`` -> mean of each ``k x k`` block (partial blocks at the edges averaged over what is there)."""
    b, d, h, w = grid.shape
    rows = []
    for y in range(0, h, k):
        rows.append(torch.stack([grid[:, :, y:y + k, x:x + k].mean(dim=(2, 3)) for x in range(0, w, k)], dim=-1))
    return torch.stack(rows, dim=-2)  # (B, D, ceil(h/k), ceil(w/k))


def _cross_reference(strl: STRL, feats: torch.Tensor, key: int, pool: int) -> torch.Tensor:
    b, t, _, h, w = feats.shape
    x = torch.stack([strl.patch_embed(feats[:, i]) for i in range(t)], dim=1)  # (B, T, D, h, w)
    tokens = [x[:, i].flatten(2).transpose(1, 2) + strl.pos_embed[i] for i in range(t)]  # T x (B, h*w, D)
    pooled = [_avg_pool_by_hand(tok.transpose(1, 2).reshape(b, -1, h, w), pool).flatten(2).transpose(1, 2)
              for tok in tokens]
    q = tokens[key]
    for blk in strl.blocks:
        q = blk(q, torch.cat([q if i == key else pooled[i] for i in range(t)], dim=1))
    tokens[key] = q
    cells = torch.stack(tokens, dim=2).reshape(b, h * w, -1)  # (B, h*w, T*D)
    cond = strl.aggregate(strl.norm(cells)).transpose(1, 2).reshape(b, -1, h, w)
    return cond + strl.key_proj(feats[:, key])


@pytest.mark.parametrize("pool", [1, 2, 3])
def test_cross_queries_equal_the_reference_with_pooled_neighbours(pool):
    torch.manual_seed(pool)
    strl = STRL(32, 5, (4, 3), dim=16, depth=2, num_heads=2, out_dim=8, agg_hidden=16, key_shortcut=True,
                queries="cross", neighbour_pool=pool).eval()
    feats = torch.randn(2, 5, 32, 4, 3, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for key in (2, 1):
            torch.testing.assert_close(strl(feats, key=key), _cross_reference(strl, feats, key, pool),
                                       atol=1e-5, rtol=1e-5)


def test_cross_queries_read_the_neighbours_but_never_update_them():
    torch.manual_seed(0)
    strl = STRL(32, 5, (4, 3), dim=16, depth=2, num_heads=2, out_dim=8, agg_hidden=16, queries="cross",
                neighbour_pool=2)
    feats = torch.randn(2, 5, 32, 4, 3, requires_grad=True)
    out = strl(feats)
    out[:, :, 0, 0].sum().backward()  # one cell of the condition
    grad = feats.grad.abs().sum(dim=2)  # (B, T, h, w)
    assert (grad[:, [0, 1, 3, 4]].flatten(2).sum(-1) > 0).all()  # every neighbour is attended to
    assert (grad[:, 2].flatten(1)[:, 1:].sum(-1) > 0).all()  # the key frame's other cells, through attention
    # a neighbour's other cells reach cell (0, 0) only through attention, not through the aggregation
    strl.blocks[0].attn.proj.weight.data.zero_()
    strl.blocks[1].attn.proj.weight.data.zero_()
    feats.grad = None
    strl(feats)[:, :, 0, 0].sum().backward()
    assert feats.grad[:, 0, :, 2:].abs().sum() == 0 and feats.grad[:, 0, :, 0, 0].abs().sum() > 0


def test_cross_and_pooled_strl_costs_less_than_key_queries():
    def strl_gflops(*over: str) -> float:
        return model_complexity(load_config("tiny", overrides=list(over))).gflops["strl_per_clip"]

    joint = strl_gflops("model.strl.queries=all", "model.strl.neighbour_pool=1")
    key = strl_gflops("model.strl.queries=key", "model.strl.neighbour_pool=1")
    cross = strl_gflops("model.strl.queries=cross", "model.strl.neighbour_pool=1")
    pooled = strl_gflops("model.strl.queries=cross", "model.strl.neighbour_pool=2")
    assert pooled < cross < key < joint
    assert pooled < 0.3 * joint
