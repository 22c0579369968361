"""Typed config: presets, strict YAML and command-line overrides, exact round trip."""

import pytest

from diffpose.config import (
    Config,
    ConfigError,
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
