"""Fixtures of the cross-cutting tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture
def data(synth_small, tmp_path) -> Path:
    """A private copy of the small SynthTrack set, free to damage."""
    return Path(shutil.copytree(synth_small, tmp_path / "st"))
