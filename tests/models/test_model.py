"""DiffPoseNet, STRL, Pose-Decoder, baseline, builders, ViTPose loading and optimiser groups (tiny preset)."""

from __future__ import annotations

import pytest
import torch

from diffpose.config import ConfigError, load_config
from diffpose.errors import DiffPoseError
from diffpose.estimators import build_estimator
from diffpose.models import (
    BaselineNet,
    DiffPoseNet,
    freeze_backbone,
    load_vitpose,
    param_groups,
)
from diffpose.models.lmsfi import lookup_mask
from tests.helpers import PATCH_TINY, random_state, vitpose_b_backbone_shapes, vitpose_b_head_shapes

TINY = load_config("tiny", overrides=PATCH_TINY).model  # ViTPose's patch stem: 8x6 tokens, 32x24 heatmaps


def tiny_net(seed: int = 0, **overrides) -> DiffPoseNet:
    torch.manual_seed(seed)
    cfg = load_config("tiny", overrides=[*PATCH_TINY, *(f"model.{k}={v}" for k, v in overrides.items())]).model
    return DiffPoseNet.from_config(cfg)


def clips(b: int = 2, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    h, w = TINY.backbone.image_size
    return torch.randn(b, TINY.num_frames, 3, h, w, generator=g)


# ------------------------------------------------------------------------------------------------
# Shapes, gradients, conventions
# ------------------------------------------------------------------------------------------------
def test_diffpose_shapes_through_every_stage():
    net = tiny_net().eval()
    x = clips()
    feats = net.backbone_features(x.flatten(0, 1))
    assert feats.shape == (10, 128, 8, 6)
    cond = net.encode_condition(x)
    assert cond.shape == (2, 128, 8, 6)
    pyr = net.prepare(cond)
    c1, c2, c3 = TINY.decoder.widths
    assert pyr.f1.shape == (2, c1, 8, 6) and pyr.f2.shape == (2, c2, 16, 12) and pyr.f3.shape == (2, c3, 32, 24)
    x0 = net.denoise(torch.randn(2, 17, 32, 24), torch.tensor([0, 999]), pyr)
    assert x0.shape == (2, 17, 32, 24) and torch.isfinite(x0).all()


def test_gradients_reach_every_parameter_of_diffpose():
    """The tiny preset's training loss (denoising plus the prior head's MSE, x_t from GT or prior) reaches every
    parameter, the prior head's included."""

    torch.manual_seed(0)
    est = build_estimator(load_config("tiny", overrides=PATCH_TINY))
    net = est.net.train()
    g = torch.Generator().manual_seed(0)
    batch = {"frames": clips(), "heatmaps": torch.rand(2, 17, 32, 24, generator=g), "weights": torch.ones(2, 17)}
    loss = est.loss(batch, est.training_noise(g, 2))["loss"]
    loss.backward()
    assert torch.isfinite(loss) and net.prior_head is not None
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"zero gradient: {name}"


def test_condition_from_features_equals_encode_condition():
    net = tiny_net().eval()
    x = clips()
    feats = net.backbone_features(x.flatten(0, 1)).reshape(2, 5, 128, 8, 6)
    torch.testing.assert_close(net.condition_from_features(feats), net.encode_condition(x))


def test_denoise_accepts_cond_or_pyramid_and_expanded_pyramid_keeps_clip_order():
    net = tiny_net().eval()
    cond = net.encode_condition(clips())
    g = torch.Generator().manual_seed(3)
    x_t = torch.randn(2, 17, 32, 24, generator=g)
    t = torch.tensor([10, 500])
    ref = net.denoise(x_t, t, cond)
    torch.testing.assert_close(net.denoise(x_t, t, net.prepare(cond)), ref)
    # K = 3: row b*K + k belongs to clip b; with the same x_t every hypothesis reproduces the clip's output.
    pyr3 = net.prepare(cond).expand(3)
    assert pyr3.batch_size == 6
    out = net.denoise(x_t.repeat_interleave(3, 0), t.repeat_interleave(3, 0), pyr3)
    torch.testing.assert_close(out.reshape(2, 3, 17, 32, 24), ref[:, None].expand(2, 3, 17, 32, 24),
                               atol=1e-5, rtol=1e-5)


def test_the_step_changes_the_prediction_and_the_condition_matters():
    net = tiny_net().eval()
    x_t = torch.randn(1, 17, 32, 24)
    cond_a, cond_b = net.encode_condition(clips(1, seed=1)), net.encode_condition(clips(1, seed=2))
    a = net.denoise(x_t, torch.tensor([5]), cond_a)
    assert not torch.allclose(a, net.denoise(x_t, torch.tensor([900]), cond_a))
    assert not torch.allclose(a, net.denoise(x_t, torch.tensor([5]), cond_b))


def test_lookup_mask_is_sigmoid_of_channel_max():
    feats = torch.tensor([[[[0.0, -2.0]], [[1.0, -5.0]]]])  # (1, 2, 1, 2)
    mask = lookup_mask(feats)
    torch.testing.assert_close(mask, torch.sigmoid(torch.tensor([[[[1.0, -2.0]]]])))


def test_wrong_frame_count_and_heatmap_size_are_reported():
    net = tiny_net().eval()
    with pytest.raises(DiffPoseError, match="frames"):
        net.encode_condition(torch.randn(1, 3, 3, 128, 96))
    cond = net.encode_condition(clips(1))
    with pytest.raises(DiffPoseError, match="x_t"):
        net.denoise(torch.randn(1, 17, 64, 48), torch.tensor([0]), cond)
    with pytest.raises(ConfigError, match="heatmap_size"):
        DiffPoseNet.from_config(load_config("tiny", overrides=[*PATCH_TINY, "model.heatmap_size=[64,48]"]).model)


def test_baseline_shapes_one_frame_clips_and_gradients():
    torch.manual_seed(0)
    net = build_estimator(load_config("tiny", overrides=[*PATCH_TINY, "model.kind=baseline"])).net
    assert isinstance(net, BaselineNet) and net.num_frames == 1
    x = clips()
    out = net(x[:, 2])
    assert out.shape == (2, 17, 32, 24)
    net.eval()
    torch.testing.assert_close(net(x[:, 2:3]), net(x[:, 2]))  # a one-frame clip is its frame
    feats = net.backbone_features(x[:, 2])[:, None]  # (B, 1, D, h, w)
    torch.testing.assert_close(net.heatmaps(net.condition_from_features(feats)), net(x[:, 2]))
    with pytest.raises(DiffPoseError, match="T=1"):
        net(x)  # five frames: the estimator gives the baseline one-frame clips
    net.train()
    net(x[:, 2]).square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


# ------------------------------------------------------------------------------------------------
# ViTPose checkpoints
# ------------------------------------------------------------------------------------------------
def test_paper_baseline_loads_vitpose_b_checkpoint_strictly():
    shapes = {**vitpose_b_backbone_shapes(), **vitpose_b_head_shapes()}
    state = random_state(shapes)
    net = BaselineNet.from_config(load_config("paper").model)
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == shapes
    report = load_vitpose(net, state)
    assert report.ok and report.missing == [] and report.unexpected == [] and report.interpolated == []
    for key in ("backbone.blocks.11.mlp.fc2.weight", "backbone.pos_embed", "keypoint_head.final_layer.bias"):
        assert torch.equal(net.state_dict()[key], state[key])


def test_tiny_round_trip_file_and_report_for_diffpose(tmp_path):
    torch.manual_seed(0)
    base = BaselineNet.from_config(TINY)
    path = tmp_path / "vitpose.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in base.state_dict().items()}, "meta": {"epoch": 3}}, path)
    net = tiny_net(seed=5)
    report = load_vitpose(net, path)
    assert report.missing == [] and report.ok
    assert sorted(report.unexpected) == sorted(k for k in base.state_dict() if k.startswith("keypoint_head."))
    for k, v in base.backbone.state_dict().items():
        assert torch.equal(net.backbone.state_dict()[k], v), k


def test_shape_mismatch_missing_keys_and_pos_embed_interpolation():
    net = tiny_net()
    state = {"backbone." + k: v.clone() for k, v in net.backbone.state_dict().items()}
    bad = dict(state)
    bad["backbone.blocks.0.attn.qkv.weight"] = torch.zeros(3, 3)
    with pytest.raises(DiffPoseError, match=r"blocks\.0\.attn\.qkv\.weight: checkpoint \(3, 3\) vs model \(384, 128\)"):
        load_vitpose(net, bad)
    report = load_vitpose(net, bad, raise_on_mismatch=False)
    assert not report.ok and len(report.mismatched) == 1
    partial = {k: v for k, v in state.items() if k != "backbone.last_norm.bias"}
    assert load_vitpose(net, partial).missing == ["backbone.last_norm.bias"]
    # A checkpoint made at 256x192 (16x12 grid) loads into the 8x6 tiny grid by bicubic resizing.
    big = dict(state)
    big["backbone.pos_embed"] = torch.randn(1, 1 + 16 * 12, 128)
    report = load_vitpose(net, big)
    assert report.interpolated == ["backbone.pos_embed: (1, 193, 128) -> (1, 49, 128)"]
    assert torch.equal(net.backbone.pos_embed[0, 0], big["backbone.pos_embed"][0, 0])


class NotATensor:
    pass


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"backbone.pos_embed": torch.zeros(1)}, "payload": NotATensor()}, path)
    with pytest.raises(DiffPoseError, match="refused: the file holds pickled Python objects"):
        load_vitpose(tiny_net(), path)
    with pytest.raises(DiffPoseError, match="does not exist"):
        load_vitpose(tiny_net(), tmp_path / "absent.pth")


def test_build_estimator_loads_and_freezes_from_config(tmp_path):
    src = tiny_net(seed=7)
    path = tmp_path / "bb.pth"
    torch.save(src.state_dict(), path)
    net = build_estimator(load_config("tiny", overrides=[*PATCH_TINY, f"model.backbone.weights={path}",
                                                         "model.backbone.freeze=true"])).net
    assert torch.equal(net.backbone.pos_embed, src.backbone.pos_embed)
    assert not any(p.requires_grad for p in net.backbone.parameters())
    net.train()
    assert not net.backbone.training and net.decoder.training
    with pytest.raises(DiffPoseError, match="backbone keys missing"):
        torch.save({"backbone.pos_embed": src.backbone.pos_embed.detach()}, path)
        build_estimator(load_config("tiny", overrides=[*PATCH_TINY, f"model.backbone.weights={path}"]))


# ------------------------------------------------------------------------------------------------
# Optimiser groups
# ------------------------------------------------------------------------------------------------
def test_layer_decay_groups_hand_computed():
    net = tiny_net()  # 4 backbone blocks
    groups = param_groups(net, lr=1e-3, weight_decay=0.05, backbone_lr=1e-4, layer_decay=0.5)
    lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    wd_of = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    assert len(lr_of) == sum(1 for _ in net.parameters())  # every parameter exactly once
    named = dict(net.named_parameters())
    expect = {
        "backbone.patch_embed.proj.weight": 1e-4 * 0.5**5, "backbone.pos_embed": 1e-4 * 0.5**5,
        "backbone.blocks.0.attn.qkv.weight": 1e-4 * 0.5**4, "backbone.blocks.3.mlp.fc1.weight": 1e-4 * 0.5,
        "backbone.last_norm.weight": 1e-4, "strl.blocks.0.attn.qkv.weight": 1e-3, "decoder.head.weight": 1e-3,
    }  # fmt: skip
    for name, lr in expect.items():
        assert lr_of[id(named[name])] == pytest.approx(lr), name
    assert wd_of[id(named["backbone.pos_embed"])] == 0.0 and wd_of[id(named["strl.pos_embed"])] == 0.0
    assert wd_of[id(named["backbone.blocks.0.norm1.weight"])] == 0.0
    assert wd_of[id(named["decoder.head.bias"])] == 0.0
    assert wd_of[id(named["decoder.head.weight"])] == 0.05
    torch.optim.AdamW(groups)  # accepted as is


def test_frozen_backbone_is_left_out_and_gets_no_gradient():
    net = tiny_net()
    freeze_backbone(net)
    groups = param_groups(net, lr=1e-3, weight_decay=0.0)
    ids = {id(p) for g in groups for p in g["params"]}
    assert not ids & {id(p) for p in net.backbone.parameters()}
    net.train()
    cond = net.encode_condition(clips(1))
    net.denoise(torch.randn(1, 17, 32, 24), torch.tensor([3]), cond).sum().backward()
    assert all(p.grad is None for p in net.backbone.parameters())
    assert net.strl.pos_embed.grad is not None
    freeze_backbone(net, frozen=False)
    assert all(p.requires_grad for p in net.backbone.parameters()) and net.backbone.training
