"""Shared test fixtures: the location of the real sample data (skip when absent) and small builders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.helpers import SHARED_DATA

requires_shared_data = pytest.mark.skipif(not SHARED_DATA.is_dir(),
                                          reason="sample data ../shared/data not available")


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("sample data ../shared/data not available")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _deterministic_numpy():
    np.random.seed(0)
    yield


@pytest.fixture(scope="module")
def one_thread():
    """PyTorch on one thread for a module's tests (``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def synth_small(tmp_path_factory) -> Path:
    """A small SynthTrack dataset (1 train + 1 val video of 12 frames), generated once per test session."""
    import dataclasses

    from diffpose.synth import generate, get_preset

    preset = dataclasses.replace(get_preset("default").with_overrides(videos=1, frames=12), train_labeled=8)
    root = tmp_path_factory.mktemp("synth_small") / "st"
    generate(root, preset, seed=3, workers=1, progress=False)
    return root
