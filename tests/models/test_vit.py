"""ViT backbone: ViTPose key names and shapes, the pos_embed convention, attention parity, resizing."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from diffpose.models.embeddings import factor_grid, resize_pos_embed
from diffpose.models.vit import Attention, DropPath, ViT, token_grid
from tests.helpers import VIT_B_PARAMS, vitpose_b_backbone_shapes


def small_vit(**kw) -> ViT:
    args = dict(image_size=(64, 48), patch_size=16, patch_padding=2, embed_dim=32, depth=2, num_heads=4)
    args.update(kw)
    return ViT(**args)


def test_token_grid_with_vitpose_padding():
    assert token_grid((256, 192), 16, 2) == (16, 12)  # (256 + 4 - 16) // 16 + 1
    assert token_grid((128, 96), 16, 2) == (8, 6)
    assert token_grid((128, 96), 8, 0) == (16, 12)


def test_vit_b_names_shapes_and_parameter_count():
    vit = ViT()  # ViT-B defaults: 256x192, patch 16, padding 2, 768 wide, 12 deep
    ours = {"backbone." + k: tuple(v.shape) for k, v in vit.state_dict().items()}
    assert ours == vitpose_b_backbone_shapes()
    assert sum(p.numel() for p in vit.parameters()) == VIT_B_PARAMS
    assert vit.patch_embed.proj.padding == (2, 2) and vit.grid_size == (16, 12)
    assert vit.last_norm.eps == 1e-6


def test_forward_shape_no_nan_and_gradients_reach_every_parameter():
    vit = small_vit(drop_path=0.1)
    x = torch.randn(3, 3, 64, 48)
    out = vit(x)
    assert out.shape == (3, 32, 4, 3)
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    for name, p in vit.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_first_pos_embed_slot_is_added_to_every_token():
    vit = small_vit(depth=0)  # no blocks: output = last_norm(patch tokens + pos[1:] + pos[0])
    vit.eval()
    x = torch.randn(2, 3, 64, 48)
    tokens = vit.patch_embed(x).flatten(2).transpose(1, 2)  # (2, 12, 32)
    pos = vit.pos_embed.detach().clone()
    expected = vit.last_norm(tokens + pos[:, 1:] + pos[:, :1])  # (2, 12, 32)
    got = vit(x).flatten(2).transpose(1, 2)
    torch.testing.assert_close(got, expected)
    # Changing slot 0 by v is the same as adding v to every token.
    v = torch.randn(32)
    with torch.no_grad():
        vit.pos_embed[0, 0] += v
    torch.testing.assert_close(vit(x).flatten(2).transpose(1, 2), vit.last_norm(tokens + v + pos[:, 1:] + pos[:, :1]))


def test_sdpa_attention_matches_explicit_softmax_attention():
    torch.manual_seed(0)
    attn = Attention(dim=32, num_heads=4)
    x = torch.randn(2, 7, 32)
    qkv = attn.qkv(x).reshape(2, 7, 3, 4, 8).permute(2, 0, 3, 1, 4)  # (3, B, nh, N, hd)
    q, k, v = qkv[0], qkv[1], qkv[2]
    weights = torch.softmax(q @ k.transpose(-2, -1) / 8**0.5, dim=-1)  # (B, nh, N, N)
    ref = attn.proj((weights @ v).transpose(1, 2).reshape(2, 7, 32))
    torch.testing.assert_close(attn(x), ref, atol=1e-5, rtol=1e-5)


def test_other_input_size_resizes_pos_embed_on_the_fly():
    vit = small_vit()
    out = vit(torch.randn(1, 3, 128, 96))
    assert out.shape == (1, 32, 8, 6)
    assert torch.isfinite(out).all()


def test_resize_pos_embed_keeps_extra_slot_and_constants():
    extra = torch.randn(1, 1, 5)
    grid = torch.full((1, 16 * 12, 5), 0.7)
    out = resize_pos_embed(torch.cat([extra, grid], 1), (16, 12), (8, 6))
    assert out.shape == (1, 1 + 48, 5)
    torch.testing.assert_close(out[:, :1], extra)
    torch.testing.assert_close(out[:, 1:], torch.full((1, 48, 5), 0.7))
    # Identity when the grid is unchanged; the bicubic path equals F.interpolate on the 2D layout.
    pe = torch.randn(1, 1 + 12, 3)
    assert resize_pos_embed(pe, (4, 3), (4, 3)) is pe
    ref = F.interpolate(pe[:, 1:].reshape(1, 4, 3, 3).permute(0, 3, 1, 2), size=(8, 6), mode="bicubic",
                        align_corners=False).permute(0, 2, 3, 1).reshape(1, 48, 3)
    torch.testing.assert_close(resize_pos_embed(pe, (4, 3), (8, 6))[:, 1:], ref)


def test_factor_grid_picks_the_model_aspect():
    assert factor_grid(192, 16 / 12) == (16, 12)
    assert factor_grid(48, 8 / 6) == (8, 6)
    assert factor_grid(7, 1.0) in {(7, 1), (1, 7)}


def test_drop_path_identity_in_eval_and_unbiased_in_training():
    dp = DropPath(0.5)
    x = torch.ones(4000, 3)
    dp.eval()
    assert torch.equal(dp(x), x)
    dp.train()
    torch.manual_seed(0)
    y = dp(x)
    assert set(y.unique().tolist()) <= {0.0, 2.0}  # dropped or rescaled by 1 / keep
    assert y.mean().item() == pytest.approx(1.0, abs=0.05)
    assert torch.equal(y[:, 0], y[:, 1])  # whole samples are dropped
