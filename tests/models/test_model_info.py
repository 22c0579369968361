"""``diffpose model-info``: exact JSON keys, parameter counts, GFLOPs convention, checkpoint report, exit codes."""

from __future__ import annotations

import json

import pytest
import torch

from diffpose.cli import main
from diffpose.config import load_config
from diffpose.estimators import KINDS
from diffpose.models import BaselineNet, DiffPoseNet, count_gflops, count_params
from diffpose.models.vit import Block
from tests.helpers import VIT_B_PARAMS, random_state, vitpose_b_backbone_shapes, vitpose_b_head_shapes


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["model-info", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_tiny_json_has_exactly_the_documented_keys_and_true_counts(capsys):
    code, out, err = run_cli(capsys, "--preset", "tiny", "--json")
    assert code == 0 and err == ""
    doc = json.loads(out)
    assert list(doc) == ["kind", "num_frames", "params", "gflops", "weights"]
    assert doc["kind"] == "diffpose" and doc["num_frames"] == 5
    assert list(doc["params"]) == ["backbone", "strl", "decoder", "prior_head", "total"]
    assert list(doc["gflops"]) == ["backbone_per_frame", "strl_per_clip", "decoder_prepare_per_clip",
                                   "decoder_per_step", "prior_head_per_clip"]
    assert doc["weights"] == {"missing": [], "unexpected": []}
    net = DiffPoseNet.from_config(load_config("tiny").model)
    assert doc["params"] == {"backbone": count_params(net.backbone), "strl": count_params(net.strl),
                             "decoder": count_params(net.decoder), "prior_head": count_params(net.prior_head),
                             "total": count_params(net)}
    assert doc["params"]["total"] == sum(doc["params"][k] for k in ("backbone", "strl", "decoder", "prior_head"))
    assert all(v > 0 for v in doc["gflops"].values())


def test_gflops_are_multiply_accumulates_hand_computed():
    # One transformer layer, 10 tokens of width 16, 4x MLP: qkv 3*16*16, proj 16*16, mlp 2*16*64 MACs per
    # token, plus attention 2 * 10 * 16 per token (scores and weighted sum).
    with torch.device("meta"):
        x = torch.empty(1, 10, 16)
        block = Block(16, num_heads=2)
    expected = 10 * (3 * 16 * 16 + 16 * 16 + 2 * 16 * 64) + 2 * 10 * 10 * 16
    assert count_gflops(block, x) * 1e9 == pytest.approx(expected)


def test_human_table_lists_every_part_of_the_configured_kind(capsys):
    code, out, _ = run_cli(capsys, "--preset", "tiny")
    assert code == 0
    for part in ("diffpose, 5 frames, sampled", "backbone (ViT)", "STRL", "Pose-Decoder: denoising step",
                 "prior head", "total", "clip (5 frames, S=1, K=1)", "multiply-accumulates"):
        assert part in out, part
    assert "head (ViTPose deconv)" not in out


def test_each_kind_reports_its_own_parts_and_clip_length(capsys):
    """The baseline is one frame with a heatmap head and no STRL or decoder rows (its condition costs nothing)."""
    code, out, _ = run_cli(capsys, "--preset", "tiny", "--set", "model.kind=baseline")
    assert code == 0
    assert "baseline, 1 frame, single pass" in out and "clip (1 frame)" in out
    assert "STRL" not in out and "Pose-Decoder" not in out and "5 frames" not in out
    head_params = count_params(BaselineNet.from_config(load_config("tiny").model).keypoint_head)
    assert f"{head_params:,}" in out
    code, out, _ = run_cli(capsys, "--preset", "tiny", "--set", "model.kind=regression", "--json")
    doc = json.loads(out)
    assert doc["kind"] == "regression" and doc["num_frames"] == 5
    assert list(doc["params"]) == ["backbone", "strl", "head", "total"]
    assert doc["params"]["total"] == doc["params"]["backbone"] + doc["params"]["strl"] + doc["params"]["head"]
    assert list(doc["gflops"]) == ["backbone_per_frame", "strl_per_clip", "head_per_clip"]


def test_paper_preset_with_a_vitpose_b_checkpoint(tmp_path, capsys):
    """ViT-B's size and ~17.1 GFLOPs, and a ViTPose-B-keyed file loads with only the head unexpected."""
    path = tmp_path / "vitpose_b.pth"
    state = random_state({**vitpose_b_backbone_shapes(), **vitpose_b_head_shapes()})
    torch.save({"state_dict": state, "meta": {"note": "random values"}}, path)
    code, out, err = run_cli(capsys, "--preset", "paper", "--backbone-weights", str(path), "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["params"]["backbone"] == VIT_B_PARAMS
    assert doc["gflops"]["backbone_per_frame"] == pytest.approx(17.1, abs=0.05)
    assert doc["weights"]["missing"] == []
    assert sorted(doc["weights"]["unexpected"]) == sorted(vitpose_b_head_shapes())


def tiny_backbone_file(tmp_path, drop: str | None = None, reshape: str | None = None):
    torch.manual_seed(0)
    state = {k: v for k, v in DiffPoseNet.from_config(load_config("tiny").model).state_dict().items()
             if k.startswith("backbone.") and k != drop}
    if reshape:
        state[reshape] = torch.zeros(2, 2)
    path = tmp_path / "bb.pth"
    torch.save(state, path)
    return path


def test_missing_backbone_key_exits_1_with_one_line(tmp_path, capsys):
    path = tiny_backbone_file(tmp_path, drop="backbone.blocks.1.norm2.bias")
    code, out, err = run_cli(capsys, "--preset", "tiny", "--backbone-weights", str(path), "--json")
    assert code == 1
    assert json.loads(out)["weights"]["missing"] == ["backbone.blocks.1.norm2.bias"]
    assert err.count("\n") == 1 and "missing" in err and "backbone.blocks.1.norm2.bias" in err


def test_shape_mismatch_exits_1_and_a_good_file_exits_0(tmp_path, capsys):
    path = tiny_backbone_file(tmp_path, reshape="backbone.last_norm.weight")
    code, out, err = run_cli(capsys, "--preset", "tiny", "--backbone-weights", str(path))
    assert code == 1 and "shape mismatch" in err and "backbone.last_norm.weight" in err
    assert "shape mismatch: backbone.last_norm.weight" in out
    code, out, err = run_cli(capsys, "--preset", "tiny", "--backbone-weights", str(tiny_backbone_file(tmp_path)))
    assert code == 0 and err == "" and "0 missing, 0 unexpected, 0 shape mismatches" in out


def test_unreadable_checkpoint_is_a_one_line_error(tmp_path, capsys):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    code, _, err = run_cli(capsys, "--preset", "tiny", "--backbone-weights", str(bad))
    assert code == 2 and err.count("\n") == 1 and "bad.pth" in err


def test_time_train_step_reports_every_model_kind(capsys):
    code, out, _ = run_cli(capsys, "--preset", "tiny", "--time-train-step", "--batch", "2", "--threads", "2")
    assert code == 0
    lines = [line.split() for line in out.splitlines() if "ms/step" in line]
    assert [line[0] for line in lines] == list(KINDS)
    assert all(float(line[1]) > 0 for line in lines)
