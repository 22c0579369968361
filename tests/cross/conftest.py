"""Fixtures of the cross-cutting tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from diffpose.cli import main
from tests.helpers import ASSETS


@pytest.fixture
def data(synth_small, tmp_path) -> Path:
    """A private copy of the small SynthTrack set, free to damage."""
    return Path(shutil.copytree(synth_small, tmp_path / "st"))


@pytest.fixture(scope="session")
def exported(tmp_path_factory) -> Path:
    """The bundled baseline exported as ONNX graphs (skipped without onnxruntime)."""
    pytest.importorskip("onnxruntime")
    folder = tmp_path_factory.mktemp("onnx") / "baseline"
    assert main(["export", "-c", str(ASSETS / "tiny_baseline.pt"), "--onnx", str(folder)]) == 0
    return folder
