"""The options of the tiny regime: conv stem and its token layout, heatmap-space decoder output, self-conditioning,
the heatmap-feature path, concatenation instead of LMSFI, the key-frame shortcut and neighbour frames without
gradients."""

from __future__ import annotations

import pytest
import torch

from diffpose.codec import HeatmapCodec
from diffpose.config import load_config
from diffpose.diffusion import HeatmapDiffusion, sample_poses
from diffpose.inference.feature_warp import TokenGeometry
from diffpose.models import DiffPoseNet
from diffpose.models.stem import token_layout
from diffpose.models.vit import ViT

OPTIONS = ["model.backbone.stem=conv", "model.heatmap_size=[64, 48]", "model.strl.key_shortcut=true",
           "model.decoder.predicts=heatmap", "model.decoder.heat_path=true", "model.decoder.self_condition=true",
           "model.backbone.depth=1", "model.strl.depth=1", "model.strl.dim=32", "model.decoder.widths=[32, 16, 8]",
           "model.decoder.heatmap_dim=8", "model.decoder.seref_dim=16", "model.decoder.conv_depth=1"]


def net_with(*extra: str, seed: int = 0) -> DiffPoseNet:
    torch.manual_seed(seed)
    return DiffPoseNet.from_config(load_config("tiny", overrides=[*OPTIONS, *extra]).model)


def clips(b: int = 2, t: int = 5, seed: int = 1) -> torch.Tensor:
    return torch.randn(b, t, 3, 128, 96, generator=torch.Generator().manual_seed(seed))


def test_conv_stem_token_layout_is_where_its_receptive_fields_are():
    layout = token_layout((128, 96), "conv")
    assert layout.grid == (16, 12) and layout.stride == 8 and layout.offset == 0.0
    assert token_layout((256, 192), "patch").grid == (16, 12)  # ViTPose: patch 16, padding 2
    geometry = TokenGeometry.from_model_config(load_config("tiny", overrides=OPTIONS).model)
    assert (geometry.stride, geometry.offset, geometry.grid) == (8, 0.0, (16, 12))
    torch.manual_seed(0)
    vit = ViT((128, 96), embed_dim=16, depth=0, num_heads=2, stem="conv").eval()
    with torch.no_grad():
        for m in vit.stem.modules():  # positive weights: the receptive field's weight is its centre
            if isinstance(m, torch.nn.Conv2d):
                m.weight.fill_(1.0)
    x = torch.ones(1, 3, 128, 96, requires_grad=True)  # every ReLU active: a linear map
    vit.stem(x)[0, 0, 5, 4].backward()  # token (row 5, column 4)
    g = x.grad[0].abs().sum(0)  # (H, W)
    ys, xs = torch.meshgrid(torch.arange(128.0), torch.arange(96.0), indexing="ij")
    centre = ((g * xs).sum() / g.sum(), (g * ys).sum() / g.sum())  # (x, y)
    assert abs(centre[0] - 8 * 4) < 1e-3 and abs(centre[1] - 8 * 5) < 1e-3


def test_a_heatmap_space_decoder_starts_at_the_background():
    net = net_with().eval()
    with torch.no_grad():
        pyr = net.prepare(net.encode_condition(clips()))
        out = net.denoise(torch.randn(2, 17, 64, 48), torch.tensor([999, 10]), pyr)
    assert out.shape == (2, 17, 64, 48) and out.abs().mean() < 0.02 and out.abs().max() < 0.15  # ~0, not 0.5


def test_self_conditioning_reads_the_previous_estimate():
    # the pure-noise start (a prior head would be the first estimate instead of zeros; tests/diffusion cover it)
    net = net_with("model.decoder.prior_head=false", "model.decoder.residual=false", "diffusion.start=noise").eval()
    x_t = torch.randn(2, 17, 64, 48)
    t = torch.tensor([500, 500])
    with torch.no_grad():
        pyr = net.prepare(net.encode_condition(clips()))
        none = net.denoise(x_t, t, pyr)
        zeros = net.denoise(x_t, t, pyr, torch.zeros(2, 17, 64, 48))
        some = net.denoise(x_t, t, pyr, torch.rand(2, 17, 64, 48))
    torch.testing.assert_close(none, zeros)  # no estimate yet = zeros
    assert not torch.allclose(zeros, some)
    # training: the marked clips refine a first estimate (without gradients), the others start from zeros
    net.train()
    mask = torch.tensor([True, False])
    torch.manual_seed(3)
    out = net(clips(), x_t, t, mask)
    out.square().sum().backward()
    assert all(p.grad is not None for p in net.decoder.parameters())
    net.eval()
    with torch.no_grad():
        plain = net(clips(), x_t, t, torch.tensor([False, False]))
        refined = net(clips(), x_t, t, mask)
    torch.testing.assert_close(plain[1], refined[1])  # unmarked clip: as without self-conditioning
    assert not torch.allclose(plain[0], refined[0])


class RecordingNet:
    """A stand-in network for the sampler: records the ``prev`` it is given, predicts a fixed heatmap."""

    num_joints, heatmap_size = 1, (4, 3)

    def __init__(self):
        self.prevs = []

    def prepare(self, cond):
        from diffpose.models.pose_decoder import ConditionPyramid

        z = torch.zeros(cond.shape[0], 1, 4, 3)
        return ConditionPyramid(z, z, z, z, z, z, z)

    def denoise(self, x_t, t, pyramid, prev=None):
        self.prevs.append(None if prev is None else prev.clone())
        return torch.full_like(x_t, 0.25)  # a heatmap


def test_the_sampler_hands_each_step_the_previous_estimate():
    net = RecordingNet()
    codec = HeatmapCodec(input_size=(12, 16), heatmap_size=(4, 3), sigma=1.0)
    sample_poses(net, HeatmapDiffusion(), codec, cond=torch.zeros(2, 1, 1, 1), steps=3, hypotheses=2,
                 predicts="heatmap", self_condition=True, generator=torch.Generator().manual_seed(0))
    assert net.prevs[0] is None and len(net.prevs) == 3
    for prev in net.prevs[1:]:
        torch.testing.assert_close(prev, torch.full((4, 1, 4, 3), 0.25))  # decoded back to the heatmap it gave


@pytest.mark.parametrize("fusion", ["lmsfi", "concat"])
def test_fusions_use_x_t_and_broadcast_the_condition_over_hypotheses(fusion):
    net = net_with(f"model.decoder.fusion={fusion}").eval()
    g = torch.Generator().manual_seed(0)
    x_t = torch.randn(6, 17, 64, 48, generator=g)
    t = torch.full((6,), 300)
    with torch.no_grad():
        cond = net.encode_condition(clips(2))
        expanded = net.denoise(x_t, t, net.prepare(cond).expand(3))
        copied = net.denoise(x_t, t, net.prepare(cond.repeat_interleave(3, 0)))
        other = net.denoise(x_t.flip(-1), t, net.prepare(cond).expand(3))
    torch.testing.assert_close(expanded, copied, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(expanded, other)


def test_key_shortcut_passes_the_key_frames_features_and_follows_the_key_index():
    net = net_with().eval()
    with torch.no_grad():
        for p in net.strl.aggregate.parameters():
            p.zero_()
        x = clips()
        feats = net.backbone_features(x.flatten(0, 1)).reshape(2, 5, 128, 16, 12)
        torch.testing.assert_close(net.condition_from_features(feats), feats[:, 2])  # identity: 128 -> 128
        net.key_index = 0
        torch.testing.assert_close(net.condition_from_features(feats), feats[:, 0])


def test_neighbour_frames_without_gradients_give_the_same_condition():
    full = net_with("model.backbone.neighbour_grad=true", seed=4)
    stop = net_with("model.backbone.neighbour_grad=false", seed=4)
    full.eval()
    stop.eval()  # BatchNorm in eval: both compute the same features
    x = clips()
    a, b = full.encode_condition(x), stop.encode_condition(x)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    a.sum().backward()
    b.sum().backward()
    ga, gb = full.backbone.last_norm.weight.grad, stop.backbone.last_norm.weight.grad
    assert gb.abs().sum() > 0 and not torch.allclose(ga, gb)  # only the key frame's pass sends gradients
    # what the stop-gradient network sends back is exactly the key frame's share
    full.zero_grad()
    frames = x.flatten(0, 1)
    f = full.backbone_features(frames).reshape(2, 5, 128, 16, 12)
    f = torch.cat([f[:, :2].detach(), f[:, 2:3], f[:, 3:].detach()], 1)
    full.condition_from_features(f).sum().backward()
    torch.testing.assert_close(full.backbone.last_norm.weight.grad, gb, atol=1e-4, rtol=1e-4)


# ------------------------------------------------------------------------------------------------
# STRL with key-frame queries (strl.queries="key")
# ------------------------------------------------------------------------------------------------
def _strl_pair(depth: int, seed: int = 0):
    from diffpose.models.strl import STRL

    torch.manual_seed(seed)
    full = STRL(32, 5, (4, 3), dim=16, depth=depth, num_heads=2, out_dim=8, agg_hidden=16, key_shortcut=True)
    key = STRL(32, 5, (4, 3), dim=16, depth=depth, num_heads=2, out_dim=8, agg_hidden=16, key_shortcut=True,
               queries="key")
    key.load_state_dict(full.state_dict())
    return full.eval(), key.eval()


def test_attention_with_itself_as_context_is_self_attention():
    from diffpose.models.vit import Block

    torch.manual_seed(0)
    blk = Block(16, 2).eval()
    x = torch.randn(2, 7, 16)
    torch.testing.assert_close(blk(x, x), blk(x), atol=1e-6, rtol=1e-6)


def test_key_queries_equal_joint_attention_for_one_layer_or_identity_later_layers():
    x = torch.randn(2, 5, 32, 4, 3, generator=torch.Generator().manual_seed(1))
    full, key = _strl_pair(depth=1)
    torch.testing.assert_close(key(x), full(x), atol=0, rtol=0)  # layer 1 is joint in both
    full, key = _strl_pair(depth=3)
    with torch.no_grad():
        for net in (full, key):  # later layers become identities: both aggregate the layer-1 tokens
            for blk in net.blocks[1:]:
                for lin in (blk.attn.proj, blk.mlp.fc2):
                    lin.weight.zero_()
                    lin.bias.zero_()
    torch.testing.assert_close(key(x), full(x), atol=1e-6, rtol=1e-6)


def test_key_queries_still_read_the_neighbours_and_differ_from_joint_attention():
    full, key = _strl_pair(depth=2, seed=3)
    with torch.no_grad():  # weights large enough that layer 2 matters
        for p in [*full.blocks.parameters(), *key.blocks.parameters()]:
            p.mul_(20)
    x = torch.randn(2, 5, 32, 4, 3, generator=torch.Generator().manual_seed(2), requires_grad=True)
    out = key(x)
    assert not torch.allclose(out, full(x), atol=1e-3)
    out.sum().backward()
    assert x.grad[:, [0, 1, 3, 4]].abs().sum() > 0  # neighbours reach the condition through attention
