"""Typed config: presets, strict YAML and command-line overrides, exact round trip."""

import pytest

from diffpose.config import (
    Config,
    ConfigError,
    DataConfig,
    clip_offsets,
    config_from_dict,
    config_to_dict,
    load_config,
    parse_override,
    save_config,
)


def test_presets_round_trip_exactly():
    for preset in ("paper", "tiny"):
        cfg = load_config(preset)
        assert config_from_dict(config_to_dict(cfg)) == cfg


def test_overrides_apply_with_types():
    cfg = load_config("tiny", overrides=["train.lr=1e-4", "model.heatmap_size=[16, 12]", "train.amp=false",
                                         "model.backbone.depth=2"])
    assert cfg.train.lr == 1e-4 and isinstance(cfg.train.lr, float)
    assert cfg.model.heatmap_size == (16, 12)
    assert cfg.train.amp is False and cfg.model.backbone.depth == 2
    assert cfg.preset == "tiny"


@pytest.mark.parametrize("override, message", [
    ("train.lrr=1", "unknown config key"),
    ("train.lr=fast", "expected a number"),
    ("train.epochs=1.5", "expected an integer"),
    ("train.amp=1", "expected true or false"),
    ("model.heatmap_size=[1, 2, 3]", "expected 2 values"),
    ("nonsense", "section.key=value"),
])
def test_bad_overrides_are_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("tiny", overrides=[override])


def test_yaml_is_strict_and_ordered(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  lr: 0.002\nmodel:\n  backbone:\n    depth: 3\n")
    cfg = load_config("tiny", path, overrides=["train.lr=0.003"])
    assert cfg.train.lr == 0.003 and cfg.model.backbone.depth == 3  # CLI override wins over YAML
    path.write_text("train:\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"train\.learning_rate"):
        load_config("tiny", path)
    path.write_text("!!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config("tiny", path)  # safe_load: a config file never runs code


def test_saved_config_loads_back(tmp_path):
    cfg = load_config("tiny", overrides=["train.seed=7"])
    path = save_config(cfg, tmp_path / "config.yaml")
    assert load_config("paper", path) == cfg  # the file names its preset


def test_parse_override_values():
    assert parse_override("a.b=3") == {"a": {"b": 3}}
    assert parse_override("a=1e-3") == {"a": 1e-3}
    assert parse_override("a.b.c=[1, 2]") == {"a": {"b": {"c": [1, 2]}}}


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown preset"):
        load_config("huge")
    assert isinstance(load_config(), Config)


def test_moved_keys_are_read_under_their_new_names(tmp_path):
    with pytest.warns(DeprecationWarning) as warned:
        cfg = load_config("tiny", overrides=["diffusion.ensemble=4", "diffusion.combine=median"])
    assert sorted(str(w.message).split(";")[0] for w in warned) == [
        "config key diffusion.combine is now sampling.combine",
        "config key diffusion.ensemble is now sampling.ensemble"]
    assert cfg.sampling.ensemble == 4 and cfg.sampling.combine == "median"
    path = tmp_path / "old.yaml"
    path.write_text("diffusion:\n  steps: 3\n  scale: 1.5\n")
    with pytest.warns(DeprecationWarning):
        cfg = load_config("tiny", path)
    assert cfg.sampling.steps == 3 and cfg.diffusion.scale == 1.5
    old = config_to_dict(load_config("tiny"))  # a config dict as an older checkpoint holds it
    old["diffusion"].update(steps=2, eta=0.0)
    del old["sampling"]
    cfg = config_from_dict(old)  # upgraded silently: checkpoints are not the user's spelling
    assert cfg.sampling.steps == 2 and cfg.sampling.eta == 0.0 and not hasattr(cfg.diffusion, "steps")
    with pytest.raises(ConfigError, match="unknown config key"):
        load_config("tiny", overrides=["diffusion.stepz=3"])


def test_clip_offsets_of_single_and_multi_frame_models():
    data = DataConfig(frame_offsets=(-2, -1, 0, 1, 2))
    assert clip_offsets(data, 5) == (-2, -1, 0, 1, 2) and clip_offsets(data, 1) == (0,)
    for bad, frames in (((-1, 0, 1), 5), ((1, 2, 3), 3), ((0, 0, 1), 3)):
        with pytest.raises(ConfigError, match="frame_offsets"):
            clip_offsets(DataConfig(frame_offsets=bad), frames)
