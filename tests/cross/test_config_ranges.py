"""Config values are range-checked, not only type-checked.

Every dataclass field of :mod:`diffpose.config` declares what it accepts in its metadata; one
``validate_config`` checks them (and the rules tying fields together) for presets, YAML files, ``--set``
overrides and checkpoints alike. Each refusal is one line naming the key, the value and the range, before any
run folder or output exists. CLI integer options are checked by the shared helpers of ``diffpose.cli.args``.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from diffpose.config import PRESETS, Config, ConfigError, config_from_dict, load_config, validate_config
from tests.helpers import ASSETS, digest, refused, run

BAD = [
    ("train.batch_size=0", "config key train.batch_size: 0 is out of range, expected >= 1"),
    ("train.batch_size=-4", "train.batch_size: -4 is out of range"),
    ("train.lr=nan", "config key train.lr: nan is not a finite number"),
    ("train.lr=-1e-3", "config key train.lr: -0.001 is out of range, expected > 0"),
    ("train.lr=0", "train.lr: 0.0 is out of range, expected > 0"),
    ("data.workers=-1", "config key data.workers: -1 is out of range, expected >= 0"),
    ("train.checkpoint_every=0", "train.checkpoint_every: 0 is out of range, expected >= 1"),
    ("train.log_every=0", "train.log_every: 0 is out of range, expected >= 1"),
    ("train.epochs=0", "train.epochs: 0 is out of range, expected >= 1"),
    ("train.epochs=-2", "train.epochs: -2 is out of range"),
    ("train.ema=1.0", "train.ema: 1.0 is out of range, expected in [0, 1)"),
    ("train.ema=-0.5", "train.ema: -0.5 is out of range, expected in [0, 1)"),
    ("train.grad_clip=inf", "train.grad_clip: inf is not a finite number"),
    ("model.backbone.num_heads=3", "model.backbone.num_heads: 3 heads do not divide model.backbone.embed_dim = 128"),
    ("model.strl.num_heads=3", "model.strl.num_heads: 3 heads do not divide model.strl.dim"),
    ("model.decoder.num_heads=3", "model.decoder.num_heads: 3 heads do not divide model.decoder.seref_dim"),
    ("model.decoder.time_dim=63", "model.decoder.time_dim: 63 is odd"),
    ("model.decoder.predicts=noise", "model.decoder.predicts: 'noise' is not one of signal, heatmap"),
    ("model.decoder.fusion=sum", "model.decoder.fusion: 'sum' is not one of lmsfi, concat"),
    ("model.backbone.stem=resnet", "model.backbone.stem: 'resnet' is not one of patch, conv"),
    ("sampling.combine=max", "sampling.combine: 'max' is not one of mean, median"),
    # the tiny preset self-conditions, so output in signal space conflicts
    ("model.decoder.predicts=signal", "self_condition: true needs model.decoder.predicts=heatmap"),
    ("model.heatmap_size=[0, 24]", "model.heatmap_size: 0 is out of range, expected >= 1"),
    ("model.sigma=0", "model.sigma: 0.0 is out of range, expected > 0"),
    ("diffusion.train_pure_noise=1.5", "diffusion.train_pure_noise: 1.5 is out of range, expected in [0, 1]"),
    ("sampling.ensemble=0", "sampling.ensemble: 0 is out of range, expected >= 1"),
    ("sampling.steps=2000", "sampling.steps: 2000 is more than diffusion.timesteps = 1000"),
    ("model.backbone.drop_path=1", "model.backbone.drop_path: 1.0 is out of range, expected in [0, 1)"),
    ("data.box_enlarge=0", "data.box_enlarge: 0.0 is out of range, expected > 0"),
]


def test_every_field_declares_its_range_or_is_free_text():
    """Numbers and choice strings carry metadata; only paths, split names, device and flags do not."""
    free = {"weights", "root", "train_split", "val_split", "device", "preset", "kind", "frame_offsets", "fitted_on"}

    def walk(cls):
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(f.type) or (isinstance(f.type, str) and f.type.endswith("Config")):
                continue
            if f.name in free or f.type in (bool, "bool"):
                continue
            yield cls.__name__, f.name, f.metadata

    for cls in (Config, *{type(getattr(Config(), f.name)) for f in dataclasses.fields(Config) if f.name != "preset"},
                *{type(getattr(Config().model, n)) for n in ("backbone", "strl", "decoder")}):
        for name, field, meta in walk(cls):
            assert "range" in meta or "choices" in meta, (name, field)


def test_presets_and_bundled_checkpoints_pass_validation():
    for name in PRESETS:
        validate_config(load_config(name))
    for ckpt in sorted(ASSETS.glob("*.pt")):
        config_from_dict(torch.load(ckpt, weights_only=True)["config"])


@pytest.mark.parametrize("override,words", BAD, ids=[b[0] for b in BAD])
def test_out_of_range_values_are_one_line_errors(override, words):
    with pytest.raises(ConfigError) as info:
        load_config("tiny", None, [override])
    assert words in str(info.value) and "\n" not in str(info.value)


def test_train_refuses_out_of_range_values_before_making_the_run_folder(synth_small, tmp_path, capsys):
    before = digest(synth_small)
    for override, words in [("train.batch_size=0", "expected >= 1"), ("train.epochs=0", "train.epochs"),
                            ("train.ema=1.5", "train.ema"), ("train.lr=nan", "not a finite number"),
                            ("data.workers=-1", "data.workers"), ("train.batch_size=-1", "train.batch_size")]:
        out = tmp_path / "run"
        refused(run(capsys, "train", "--data", synth_small, "--out", out, "--no-progress", "--set", override),
                "train", words)
        assert not out.exists()
    assert digest(synth_small) == before


def test_a_yaml_file_with_nan_is_refused(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train:\n  lr: .nan\n")
    refused(run(capsys, "model-info", "--config", cfg), "model-info", "config key train.lr: nan is not a finite")


def test_a_checkpoint_whose_config_is_out_of_range_is_refused(synth_small, tmp_path, capsys):
    ckpt = torch.load(ASSETS / "tiny_baseline.pt", weights_only=True)
    ckpt["config"] = json.loads(json.dumps(ckpt["config"]))
    ckpt["config"]["train"]["ema"] = 1.5
    path = tmp_path / "bad.pt"
    torch.save(ckpt, path)
    refused(run(capsys, "test", "-c", path, "--data", synth_small, "--out", tmp_path / "t", "--no-progress"),
            "test", str(path), "its config cannot be used", "train.ema: 1.5 is out of range")
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize("argv,words", [
    (["model-info", "--batch", "0"], "--batch: 0 is out of range, expected >= 1"),
    (["model-info", "--batch", "-3"], "--batch: -3 is out of range"),
    (["model-info", "--time-train-step", "--threads", "0"], "--threads: 0 is out of range"),
    (["model-info", "--set", "model.backbone.num_heads=5"], "heads do not divide"),
], ids=["batch0", "batch-neg", "threads0", "heads"])
def test_model_info_options_are_range_checked(argv, words, capsys):
    refused(run(capsys, *argv), argv[0], words)


@pytest.mark.parametrize("flags,words", [
    (["--batch-size", "0"], "--batch-size: 0 is out of range, expected >= 1"),
    (["--steps", "0"], "--steps: 0 is out of range"),
    (["--ensemble", "-1"], "--ensemble: -1 is out of range"),
    (["--eta", "nan"], "--eta: nan is not a finite number"),
    (["--min-box-score", "nan"], "--min-box-score: nan is not a finite number"),
], ids=["batch", "steps", "ensemble", "eta", "score"])
def test_test_and_infer_options_are_range_checked(flags, words, synth_small, tmp_path, capsys):
    ckpt = ASSETS / "tiny_diffpose.pt"
    refused(run(capsys, "test", "-c", ckpt, "--data", synth_small, "--out", tmp_path / "t", "--no-progress", *flags),
            "test", words)
    assert not (tmp_path / "t").exists()
    gt = sorted((synth_small / "annotations" / "val").glob("*.json"))[0]
    refused(run(capsys, "infer", gt, "-c", ckpt, "--boxes", "gt", "--json", tmp_path / "o.json", "--no-progress",
                *flags), "infer", words)
    assert not (tmp_path / "o.json").exists()


def test_infer_detect_every_and_fps_are_checked(synth_small, tmp_path, capsys):
    gt = sorted((synth_small / "annotations" / "val").glob("*.json"))[0]
    ckpt = ASSETS / "tiny_diffpose.pt"
    for flags, words in ((["--detect-every", "0"], "--detect-every: 0 is out of range"),
                         (["--fps", "0"], "--fps: 0.0 is out of range, expected > 0")):
        refused(run(capsys, "infer", gt, "-c", ckpt, "--boxes", "gt", "--json", tmp_path / "o.json",
                    "--no-progress", *flags), "infer", words)
