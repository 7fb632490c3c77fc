"""The notebooks' shared set-up call: the profile, the run's folders, the seeds."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from cxrsr_utils import notebook
from cxrsr_utils.core.layout import ENV_OUTPUT_ROOT, Paths


def _draws() -> tuple[float, float, float]:
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_setup_loads_the_profile_makes_the_folders_and_seeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_OUTPUT_ROOT, str(tmp_path))
    np.random.seed(123)  # another state before: set-up must replace it
    params, paths = notebook.setup("quick", {"seed": 7, "nih.n_crops": 2})
    after_setup = _draws()
    assert (params.profile, params.seed, params.nih.n_crops) == ("quick", 7, 2)
    assert isinstance(paths, Paths) and paths.work == tmp_path / "work" / "quick"
    assert paths.tables.is_dir() and paths.figures.is_dir()
    # The state each notebook had after its own seed_everything(params.seed).
    random.seed(7)
    np.random.seed(7)
    torch.manual_seed(7)
    assert after_setup == _draws()


def test_setup_seeds_tensorflow_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import keras
    from tensorflow.python.framework import config as tf_config

    monkeypatch.setenv(ENV_OUTPUT_ROOT, str(tmp_path))
    notebook.setup("quick", tensorflow=True)
    after_setup = keras.random.uniform((3,), seed=None).numpy()
    keras.utils.set_random_seed(0)  # the quick profile's seed
    np.testing.assert_array_equal(after_setup, keras.random.uniform((3,), seed=None).numpy())
    assert tf_config.is_op_determinism_enabled()


def test_setup_seeds_once_after_loading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setenv(ENV_OUTPUT_ROOT, str(tmp_path))
    monkeypatch.setattr(notebook, "seed_everything", lambda seed, **kw: calls.append((seed, kw)))
    notebook.setup("quick", {"seed": 3})
    notebook.setup("quick", {"seed": 4}, tensorflow=True)
    assert calls == [(3, {"tensorflow": False}), (4, {"tensorflow": True})]
