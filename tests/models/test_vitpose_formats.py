"""Published ViTPose weights (mmpose 0.x / 1.x, transformers VitPose) load as they are into BaselineNet and give
the heatmaps transformers' own VitPose gives; size, head and grid are read from the weights; bad files are refused
in one line.

The transformers models are tiny and random (built from configs in code, nothing is downloaded).
"""

from __future__ import annotations

import json
import re
import sys

import pytest
import torch

from diffpose.codec import HeatmapCodec
from diffpose.config import load_config
from diffpose.errors import DiffPoseError
from diffpose.models import (
    BaselineNet,
    DiffPoseNet,
    ViTPoseHead,
    ViTPoseSimpleHead,
    build_head,
    config_overrides,
    detect_vitpose,
    load_published_vitpose,
    load_vitpose,
    read_published_vitpose,
)

pytestmark = pytest.mark.usefixtures("one_thread")

SIZES = [(32, 2, 2), (48, 3, 4)]  # (width, depth, heads)
CROP = (64, 48)  # (H, W): a 4x3 token grid, 16x12 heatmaps
TOL = 1e-4


# ------------------------------------------------------------------------------------------------
# Builders
# ------------------------------------------------------------------------------------------------
def hf_model(width: int, depth: int, heads: int, simple: bool, experts: int = 1):
    """A random transformers VitPoseForPoseEstimation (eval mode), every tensor perturbed away from its init."""
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("safetensors")
    transformers.logging.set_verbosity_error()
    torch.manual_seed(width + depth + heads + simple + experts)
    bb = transformers.VitPoseBackboneConfig(image_size=list(CROP), patch_size=[16, 16], hidden_size=width,
                                            num_hidden_layers=depth, num_attention_heads=heads, out_indices=[depth],
                                            num_experts=experts, part_features=8)
    model = transformers.VitPoseForPoseEstimation(
        transformers.VitPoseConfig(backbone_config=bb, use_simple_decoder=simple, num_labels=17)).eval()
    with torch.no_grad():
        for key, v in model.state_dict().items():
            if v.is_floating_point():
                v.copy_(torch.rand_like(v) + 0.5 if "running_var" in key else v + 0.1 * torch.randn_like(v))
    return model


def hf_heatmaps(model, x: torch.Tensor) -> torch.Tensor:
    index = torch.zeros(len(x), dtype=torch.long) if model.config.backbone_config.num_experts > 1 else None
    with torch.no_grad():
        return model(x, dataset_index=index).heatmaps  # (N, 17, 16, 12)


def our_heatmaps(p, x: torch.Tensor) -> torch.Tensor:
    net = BaselineNet.from_config(load_config("paper", overrides=config_overrides(p)).model).eval()
    load_published_vitpose(net, p)
    with torch.no_grad():
        return net(x)


def assert_same_predictions(ours: torch.Tensor, ref: torch.Tensor) -> float:
    """Heatmaps within TOL and the same decoded keypoints; returns the max abs difference."""
    diff = (ours - ref).abs().max().item()
    assert ours.shape == ref.shape and diff <= TOL, diff
    codec = HeatmapCodec(input_size=(CROP[1], CROP[0]), heatmap_size=tuple(ref.shape[-2:]), sigma=2.0, refine="none")
    (kp_ours, _), (kp_ref, _) = codec.decode(ours), codec.decode(ref)
    assert torch.equal(kp_ours, kp_ref)
    return diff


def crops(n: int = 3) -> torch.Tensor:
    return torch.randn(n, 3, *CROP, generator=torch.Generator().manual_seed(1))


def to_mmpose(hf_state: dict, v1: bool = False) -> dict:
    """transformers VitPose keys -> the ViTPose repository's (mmpose 0.x) or mmpose 1.x keys (renamed independently
    of the reader, from the two projects' module names)."""
    out, qkv = {}, {}
    for key, v in hf_state.items():
        if m := re.match(r"backbone\.encoder\.layer\.(\d+)\.attention\.attention\.(query|key|value)\.(\w+)$", key):
            qkv.setdefault((m[1], m[3]), {})[m[2]] = v
            continue
        k = key.replace("backbone.embeddings.patch_embeddings.projection", "backbone.patch_embed.proj")
        k = k.replace("backbone.embeddings.position_embeddings", "backbone.pos_embed")
        k = k.replace("backbone.encoder.layer.", "backbone.blocks.").replace("attention.output.dense", "attn.proj")
        k = k.replace("layernorm_before", "norm1").replace("layernorm_after", "norm2")
        k = k.replace("backbone.layernorm", "backbone.last_norm").replace("head.conv", "head.final_layer")
        for hf, mm in (("deconv1", "0"), ("batchnorm1", "1"), ("deconv2", "3"), ("batchnorm2", "4")):
            k = k.replace(f"head.{hf}.", f"head.deconv_layers.{mm}.")
        out[k.replace("head.", "keypoint_head.", 1) if k.startswith("head.") else k] = v
    for (layer, kind), parts in qkv.items():
        out[f"backbone.blocks.{layer}.attn.qkv.{kind}"] = torch.cat([parts["query"], parts["key"], parts["value"]])
    if not v1:
        return out
    v1_out = {}
    for k, v in out.items():
        k = k.replace("backbone.patch_embed.proj", "backbone.patch_embed.projection").replace("keypoint_head.", "head.")
        k = re.sub(r"backbone\.blocks\.(\d+)\.", r"backbone.layers.\1.", k)
        k = k.replace("backbone.last_norm", "backbone.ln1")
        k = k.replace(".norm1.", ".ln1.").replace(".norm2.", ".ln2.")
        k = k.replace(".mlp.fc1.", ".ffn.layers.0.0.").replace(".mlp.fc2.", ".ffn.layers.1.")
        v1_out[k] = v[:, 1:] if k == "backbone.pos_embed" else v  # mmpretrain with_cls_token=False: no class slot
    return v1_out


# ------------------------------------------------------------------------------------------------
# Parity with transformers
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("simple", [True, False], ids=["simple", "classic"])
@pytest.mark.parametrize("width,depth,heads", SIZES)
def test_transformers_folder_and_safetensors_file_match_transformers(tmp_path, width, depth, heads, simple):
    model = hf_model(width, depth, heads, simple)
    model.save_pretrained(tmp_path / "hf")
    x = crops()
    ref = hf_heatmaps(model, x)

    p = read_published_vitpose(tmp_path / "hf")
    head = "simple" if simple else "classic"
    assert (p.embed_dim, p.depth, p.num_heads, p.head, p.num_joints) == (width, depth, heads, head, 17)
    assert (p.image_size, p.heatmap_size, p.deconv_channels) == (CROP, (16, 12), None if simple else 256)
    assert p.source == f"transformers VitPose ({width} wide) {head} (folder)" and p.layer_norm_eps == 1e-12
    assert_same_predictions(our_heatmaps(p, x), ref)

    file = tmp_path / "hf" / "model.safetensors"  # the bare file: size and head from the tensors
    with pytest.raises(DiffPoseError, match=f"unknown ViTPose width {width}"):
        read_published_vitpose(file)
    q = read_published_vitpose(file, num_heads=heads)
    assert (q.embed_dim, q.depth, q.head, q.image_size) == (width, depth, head, CROP)
    assert q.source.endswith("(safetensors file)")
    assert_same_predictions(our_heatmaps(q, x), ref)
    assert detect_vitpose(tmp_path / "hf") == detect_vitpose(file) == "transformers"


@pytest.mark.parametrize("simple", [True, False], ids=["simple", "classic"])
def test_mmpose_checkpoints_match_transformers(tmp_path, simple):
    model = hf_model(32, 2, 2, simple)
    x = crops()
    ref = hf_heatmaps(model, x)
    path = tmp_path / "vitpose.pth"
    torch.save({"state_dict": to_mmpose(model.state_dict()), "meta": {"epoch": 210}}, path)
    p = read_published_vitpose(path, num_heads=2)
    assert p.source == f"mmpose ViTPose (32 wide) {'simple' if simple else 'classic'}" and p.layer_norm_eps == 1e-6
    assert detect_vitpose(path) == "mmpose"
    assert_same_predictions(our_heatmaps(p, x), ref)

    with torch.no_grad():  # mmpose 1.x has no class slot: with a zero slot both conventions agree
        model.backbone.embeddings.position_embeddings[:, 0] = 0
    ref = hf_heatmaps(model, x)
    path = tmp_path / "vitpose_v1.pth"
    torch.save({"state_dict": to_mmpose(model.state_dict(), v1=True), "meta": {}}, path)
    q = read_published_vitpose(path, num_heads=2)
    assert q.source.startswith("mmpose 1.x ViTPose") and detect_vitpose(path) == "mmpose1"
    assert torch.equal(q.state["backbone.pos_embed"][:, 0], torch.zeros(1, 32))
    assert_same_predictions(our_heatmaps(q, x), ref)


def test_vitpose_plus_experts_fold_into_fc2(tmp_path):
    model = hf_model(32, 2, 4, simple=True, experts=3)
    model.save_pretrained(tmp_path / "plus")
    p = read_published_vitpose(tmp_path / "plus")
    assert "expert 0 folded" in p.source and p.state["backbone.blocks.0.mlp.fc2.weight"].shape == (32, 128)
    x = crops()
    assert_same_predictions(our_heatmaps(p, x), hf_heatmaps(model, x))


def test_backbone_weights_load_from_transformers_and_mmpose1(tmp_path):
    model = hf_model(32, 2, 2, simple=False)
    model.save_pretrained(tmp_path / "hf")
    torch.save({"state_dict": to_mmpose(model.state_dict(), v1=True)}, tmp_path / "v1.pth")
    p = read_published_vitpose(tmp_path / "hf")
    cfg = load_config("paper", overrides=config_overrides(p)).model
    for source in (tmp_path / "hf", tmp_path / "hf" / "model.safetensors", str(tmp_path / "hf")):
        net = BaselineNet.from_config(cfg)
        report = load_vitpose(net, source)
        assert report.ok and report.unexpected == [] and report.mismatched == []
        for k, v in p.state.items():
            assert torch.equal(net.state_dict()[k], v), k
    report = load_vitpose(BaselineNet.from_config(cfg), tmp_path / "v1.pth")
    assert report.ok and report.unexpected == []


# ------------------------------------------------------------------------------------------------
# Size, head and grid from the weights (no transformers needed)
# ------------------------------------------------------------------------------------------------
def mmpose_state(width: int, depth: int, crop: tuple[int, int], head: str) -> dict:
    over = [f"model.backbone.embed_dim={width}", f"model.backbone.depth={depth}", "model.backbone.num_heads=4",
            f"model.backbone.image_size=[{crop[0]}, {crop[1]}]", f"model.head={head}",
            f"model.heatmap_size=[{crop[0] // 4}, {crop[1] // 4}]", "model.baseline_deconv_channels=16"]
    torch.manual_seed(0)
    return BaselineNet.from_config(load_config("paper", overrides=over).model).state_dict()


@pytest.mark.parametrize("crop,head", [((256, 192), "classic"), ((256, 256), "simple")])
def test_vitpose_s_size_head_and_grid_from_the_weights(tmp_path, crop, head):
    path = tmp_path / "vitpose_s.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in mmpose_state(384, 1, crop, head).items()}}, path)
    p = read_published_vitpose(path)
    assert (p.embed_dim, p.depth, p.num_heads, p.head, p.num_joints) == (384, 1, 12, head, 17)
    assert p.image_size == crop and p.heatmap_size == (crop[0] // 4, crop[1] // 4)
    assert p.deconv_channels == (16 if head == "classic" else None)
    assert p.source == f"mmpose ViTPose-S {head}"
    over = config_overrides(p)
    assert {"model.kind=baseline", "model.layout=coco", f"model.head={head}", "model.backbone.num_heads=12",
            f"model.backbone.image_size=[{crop[0]}, {crop[1]}]", "model.backbone.patch_padding=2",
            "data.box_enlarge=1.25"} <= set(over)
    net = BaselineNet.from_config(load_config("paper", overrides=over).model)
    net.load_state_dict(p.state, strict=True)


def test_build_head_follows_model_head():
    cfg = load_config("tiny").model
    assert isinstance(build_head(cfg), ViTPoseHead)
    cfg.head = "simple"
    head = build_head(cfg, in_dim=24)
    assert isinstance(head, ViTPoseSimpleHead) and set(head.state_dict()) == {"final_layer.weight",
                                                                              "final_layer.bias"}
    assert head.final_layer.kernel_size == (3, 3) and head(torch.randn(2, 24, 4, 3)).shape == (2, 17, 16, 12)
    prior = DiffPoseNet.from_config(load_config("tiny").model).prior_head  # prior head stays classic by default
    assert isinstance(prior, ViTPoseHead)


# ------------------------------------------------------------------------------------------------
# Refusals: one line naming the file
# ------------------------------------------------------------------------------------------------
def refused(path, match: str, **kw) -> None:
    with pytest.raises(DiffPoseError, match=match) as e:
        read_published_vitpose(path, **kw)
    assert "\n" not in str(e.value) and str(path) in str(e.value)


def test_refusals_without_transformers(tmp_path):
    other = tmp_path / "other.pth"
    torch.save({"state_dict": {"encoder.weight": torch.zeros(2)}}, other)
    refused(other, "not a published ViTPose")
    assert detect_vitpose(other) is None and detect_vitpose(tmp_path / "absent.pth") is None
    diffpose_ckpt = tmp_path / "final.pt"
    torch.save({"format": "diffpose-checkpoint-v1", "model": mmpose_state(32, 1, CROP, "simple")}, diffpose_ckpt)
    assert detect_vitpose(diffpose_ckpt) is None

    odd = tmp_path / "odd_width.pth"
    torch.save({"state_dict": mmpose_state(32, 1, CROP, "classic")}, odd)
    refused(odd, "unknown ViTPose width 32")
    assert read_published_vitpose(odd, num_heads=4).num_heads == 4

    bad = mmpose_state(32, 2, CROP, "classic")
    bad["backbone.blocks.1.mlp.fc2.weight"] = torch.zeros(32, 64)
    torch.save(bad, tmp_path / "mismatched.pth")
    refused(tmp_path / "mismatched.pth", r"inconsistent .*blocks\.1\.mlp\.fc2\.weight", num_heads=4)

    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(odd.read_bytes()[:2000])
    refused(truncated, "cannot read as a weights-only torch checkpoint")
    refused(tmp_path / "absent.pth", "not found")


def test_refusals_of_transformers_files(tmp_path, monkeypatch):
    model = hf_model(32, 2, 2, simple=True)
    model.save_pretrained(tmp_path / "hf")
    file = tmp_path / "hf" / "model.safetensors"
    short = tmp_path / "short.safetensors"
    short.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
    refused(short, "cannot read as a safetensors file")

    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    config["backbone_config"]["num_hidden_layers"] = 3
    (tmp_path / "hf" / "config.json").write_text(json.dumps(config))
    refused(tmp_path / "hf", "config.json says width 32 and 3 layers, the weights have width 32 and 2 layers")
    (tmp_path / "hf" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    refused(tmp_path / "hf", "expected a transformers VitPose folder")

    monkeypatch.setitem(sys.modules, "safetensors.torch", None)  # the optional package is not installed
    refused(file, re.escape("pip install 'diffpose[vitpose]'"), num_heads=2)
    with pytest.raises(DiffPoseError, match="diffpose\\[vitpose\\]"):
        detect_vitpose(file)
