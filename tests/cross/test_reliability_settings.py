"""Settings that do not lie, small files that cannot ask for huge work, no tracebacks.

* ``--resume`` with settings that differ from ``last.pt``'s (outside what may change: the run's length, logging,
  checkpointing, workers, device, sampling) is refused in one line naming the keys; nothing is written;
* ``preset`` in a YAML file or ``--set`` switches the preset the config is built from (one rule); a preset that
  is not a name is one line;
* a ``--config`` that is a FIFO is refused before it is opened (no hang), one that is not UTF-8 or names a key
  twice is one line;
* a 3 KB checkpoint whose config claims a huge model is refused in seconds, with an estimate, before anything
  is allocated, by every command that builds it;
* unsupported devices, seeds out of range and a timed training step that cannot fit are one line each.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest
import torch

from diffpose.checkpoint import load_checkpoint
from diffpose.config import ConfigError, load_config
from tests.helpers import ASSETS, MICRO, digest, refused, run, val_json

BASE = [*MICRO, "model.kind=baseline", "train.checkpoint_every=1"]


def train(capsys, root: Path, out: Path, *extra: str) -> tuple[int, str, str]:
    flags = [e for e in extra if e.startswith("--")]
    overrides = [e for e in extra if not e.startswith("--")]
    return run(capsys, "train", "--data", root, "--out", out, "--no-progress", *flags, "--set", *BASE, *overrides)


# --------------------------------------------------------------------------------------------------
# --resume: what last.pt says is what ran
# --------------------------------------------------------------------------------------------------
@pytest.mark.usefixtures("one_thread")
def test_resume_refuses_changed_settings_and_accepts_a_longer_run(synth_small, tmp_path, capsys):
    out = tmp_path / "run"
    assert train(capsys, synth_small, out, "train.max_steps=1")[0] == 0
    before = digest(out)
    err = refused(train(capsys, synth_small, out, "train.max_steps=2", "train.lr=0.002", "train.seed=3",
                        "--resume"), "train", str(out / "last.pt"), "different train config",
                  "train.seed is 0 there, 3 now", "train.lr is 0.001 there, 0.002 now", "--overwrite")
    assert "max_steps" not in err  # the run's length may change
    assert digest(out) == before  # nothing written
    # what may change does, and is what the checkpoint then says
    assert train(capsys, synth_small, out, "train.max_steps=2", "train.log_every=5", "--resume")[0] == 0
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["step"] == 2 and ckpt["config"]["train"]["max_steps"] == 2
    assert ckpt["config"]["train"]["lr"] == 1e-3


# --------------------------------------------------------------------------------------------------
# Presets: one rule for YAML and --set
# --------------------------------------------------------------------------------------------------
def test_preset_in_set_or_yaml_switches_the_whole_preset(tmp_path, capsys):
    def params(*argv: object) -> dict:
        code, out, err = run(capsys, "model-info", "--json", *argv)
        assert code == 0, err
        return json.loads(out)["params"]

    paper = params("--preset", "paper")
    assert params("--set", "preset=paper") == paper  # not the tiny model labelled "paper"
    (tmp_path / "p.yaml").write_text("preset: paper\n")
    assert params("--config", tmp_path / "p.yaml") == paper
    assert params("--preset", "paper", "--config", tmp_path / "p.yaml", "--set", "preset=tiny") == params()
    cfg = load_config("tiny", overrides=["preset=paper", "train.lr=0.01"])
    assert cfg.preset == "paper" and cfg.model.backbone.embed_dim == 768 and cfg.train.lr == 0.01
    for text in ("preset: [a]\n", "preset: {x: 1}\n", "preset: 3\n"):
        (tmp_path / "bad.yaml").write_text(text)
        refused(run(capsys, "model-info", "--config", tmp_path / "bad.yaml"), "model-info",
                f"{tmp_path / 'bad.yaml'} [preset]: expected a preset name (paper, tiny)")
    refused(run(capsys, "model-info", "--set", "preset=huge"), "model-info", "[preset]: unknown preset 'huge'")


# --------------------------------------------------------------------------------------------------
# Config files that are not plain YAML text
# --------------------------------------------------------------------------------------------------
def test_config_files_not_utf8_or_with_duplicate_keys(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"\xff\xfetrain:\n  lr: 1\n")
    refused(run(capsys, "model-info", "--config", path), "model-info", str(path),
            "not UTF-8 text (byte 0xff at offset 0)")
    path.write_text("train:\n  lr: 0.1\n  epochs: 3\n  lr: 0.2\n")
    refused(run(capsys, "model-info", "--config", path), "model-info", str(path),
            "duplicate key 'lr' (lines 2 and 4)")
    path.write_text("train: {}\nmodel: {}\ntrain: {lr: 0.1}\n")
    refused(run(capsys, "model-info", "--config", path), "model-info", "duplicate key 'train' (lines 1 and 3)")
    # a merge key is not a duplicate: the mapping's own key overrides the merged one
    path.write_text("base: &b {lr: 0.1, epochs: 3}\n")
    with pytest.raises(ConfigError, match="unknown config key"):  # parsed fine, then "base" is not a key
        load_config("tiny", path)
    path.write_text("train:\n  <<: {lr: 0.1, epochs: 3}\n  lr: 0.2\n")
    cfg = load_config("tiny", path)
    assert cfg.train.lr == 0.2 and cfg.train.epochs == 3


def test_a_fifo_or_folder_as_config_is_refused_without_opening_it(tmp_path, capsys):
    fifo = tmp_path / "config.yaml"
    os.mkfifo(fifo)

    def unblock() -> None:  # were the FIFO opened for reading, this ends the wait (and the test fails below)
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass

    timer = threading.Timer(10, unblock)
    timer.start()
    try:
        start = time.perf_counter()
        refused(run(capsys, "model-info", "--config", fifo), "model-info", str(fifo),
                "cannot read config: a FIFO (named pipe), not a regular file")
        assert time.perf_counter() - start < 5
    finally:
        timer.cancel()
    refused(run(capsys, "model-info", "--config", tmp_path), "model-info", "a directory, not a regular file")


# --------------------------------------------------------------------------------------------------
# A small checkpoint that claims a huge model
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("claim", [{"depth": 100_000}, {"embed_dim": 1_000_000, "num_heads": 4}])
def test_a_3kb_checkpoint_claiming_a_huge_model_is_refused_fast(synth_small, tmp_path, capsys, claim):
    ckpt = torch.load(ASSETS / "tiny_baseline.pt", weights_only=True)
    ckpt["config"]["model"]["backbone"].update(claim)
    path = tmp_path / "huge.pt"
    torch.save({"config": ckpt["config"], "model": {}}, path)
    assert path.stat().st_size < 4096
    before = digest(synth_small)
    commands = {
        "test": ["test", "-c", path, "--data", synth_small, "--out", tmp_path / "t", "--no-progress"],
        "infer": ["infer", val_json(synth_small), "-c", path, "--boxes", "gt", "--json", tmp_path / "o.json",
                  "--no-progress"],
        "export": ["export", "-c", path, "--onnx", tmp_path / "onnx"],
        "model-info": ["model-info", "-c", path],
    }
    for command, argv in commands.items():
        start = time.perf_counter()
        err = refused(run(capsys, *argv), command, str(path), "model too large: this baseline model has about",
                      "GiB as float32", "of memory available; refusing to build it")
        assert time.perf_counter() - start < 5, (command, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["huge.pt"]
    assert digest(synth_small) == before


def test_set_claiming_a_huge_model_is_refused(capsys):
    refused(run(capsys, "model-info", "--set", "model.backbone.depth=100000"), "model-info",
            "model too large: this diffpose model has about")


# --------------------------------------------------------------------------------------------------
# Devices, seeds, a timed step that cannot fit
# --------------------------------------------------------------------------------------------------
def test_unsupported_devices_are_one_line(synth_small, tmp_path, capsys):
    ckpt = ASSETS / "tiny_baseline.pt"
    for device in ("meta", "mps", "xpu", "foo", "cuda:x"):
        refused(run(capsys, "test", "-c", ckpt, "--data", synth_small, "--out", tmp_path / "t", "--device", device),
                "test", f"argument --device: {device!r} is not a supported device; use auto, cpu, cuda or cuda:N")
        refused(train(capsys, synth_small, tmp_path / "run", f"train.device={device}"), "train",
                f"config key train.device: {device!r} is not a supported device")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    words = f"this machine has {count} CUDA device" if count else "requested but CUDA is not available"
    refused(run(capsys, "infer", val_json(synth_small), "-c", ckpt, "--boxes", "gt", "--json", tmp_path / "o.json",
                "--device", "cuda:7", "--no-progress"), "infer", "[--device]: device 'cuda:7'", words)
    refused(train(capsys, synth_small, tmp_path / "run", "train.device=cuda:7"), "train",
            "[train.device]: device 'cuda:7'", words)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_seeds_out_of_range_are_one_line(synth_small, tmp_path, capsys):
    ckpt = ASSETS / "tiny_baseline.pt"
    for seed in ("-1", "99999999999999999999", str(2**32)):
        refused(run(capsys, "test", "-c", ckpt, "--data", synth_small, "--out", tmp_path / "t", f"--seed={seed}"),
                "test", f"argument --seed: {seed} is out of range, expected in [0, 4294967295]")
    refused(train(capsys, synth_small, tmp_path / "run", "train.seed=-5"), "train",
            "config key train.seed: -5 is out of range, expected in [0, 4294967295]")
    refused(train(capsys, synth_small, tmp_path / "run", "train.seed=99999999999999999999"), "train",
            "config key train.seed: 99999999999999999999 is out of range")
    assert not (tmp_path / "run").exists() and not (tmp_path / "t").exists()


def test_timing_a_training_step_that_cannot_fit_is_one_line(capsys):
    start = time.perf_counter()
    refused(run(capsys, "model-info", "--time-train-step", "--batch", "10000000"), "model-info",
            "[--batch]: a training step at batch 10000000 needs more than", "time a smaller --batch")
    assert time.perf_counter() - start < 10
