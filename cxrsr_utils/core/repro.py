"""Seeds and determinism: every random generator of the study is seeded from ``params.seed``."""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator, Mapping
from typing import Any, cast

import numpy as np


def seed_everything(seed: int, *, tensorflow: bool = False) -> None:
    """Seed Python, NumPy and torch (and TensorFlow/Keras when ``tensorflow``).

    TensorFlow is optional because importing it costs seconds; notebook 05 asks for it and
    also turns on TF op determinism so the classifier's table is stable.
    """
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    import torch

    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if tensorflow:
        import keras
        import tensorflow as tf

        keras.utils.set_random_seed(seed)
        tf.config.experimental.enable_op_determinism()


def rng_state(*, cuda: bool = True, cuda_device: int | None = None) -> dict[str, Any]:
    """Python's, NumPy's and torch's global RNG states, as tensors and ints (so a checkpoint
    loaded with ``weights_only=True`` can hold them).

    With ``cuda``, also the state of GPU ``cuda_device`` (default: the current one, and only
    when this process has initialised CUDA).
    """
    import torch

    legacy = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state(legacy=True))
    _, keys, pos, has_gauss, cached = legacy
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if cuda and cuda_device is not None:
        state["cuda"] = torch.cuda.get_rng_state(cuda_device)
    elif cuda and torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: Mapping[str, Any], *, cuda_device: int | None = None) -> None:
    """Put back states from :func:`rng_state` (the GPU's into ``cuda_device``, default the
    current one)."""
    import torch

    random.setstate(_tuplify(state["python"]))
    keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state(("MT19937", keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        if cuda_device is None:
            torch.cuda.set_rng_state(state["cuda"])
        else:
            torch.cuda.set_rng_state(state["cuda"], cuda_device)


def _tuplify(obj: Any) -> Any:
    # A stored Python state comes back with lists where random.setstate wants tuples.
    return tuple(_tuplify(v) for v in obj) if isinstance(obj, list | tuple) else obj


@contextlib.contextmanager
def seeded(seed: int, device: Any = "cpu") -> Iterator[None]:
    """Seed Python, NumPy and torch (on ``device``) inside the block; restore them after.

    For code that draws from these global streams (basicsr's noise functions take no
    generator, networks initialise from torch's), so that it is reproducible without
    disturbing the caller's random state.
    """
    import torch

    device = torch.device(device)
    index = None
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
    saved = rng_state(cuda=index is not None, cuda_device=index)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        set_rng_state(saved, cuda_device=index)


def rng(seed: int, *salt: str | int) -> np.random.Generator:
    """A NumPy generator derived from ``seed`` and a salt, so independent steps stay independent."""
    material = [seed] + [int.from_bytes(str(s).encode(), "little") % (2**32) for s in salt]
    return np.random.default_rng(np.random.SeedSequence(material))
