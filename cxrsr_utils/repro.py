"""Seeds and determinism: every random generator of the study is seeded from ``params.seed``."""

from __future__ import annotations

import os
import random

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


def rng(seed: int, *salt: str | int) -> np.random.Generator:
    """A NumPy generator derived from ``seed`` and a salt, so independent steps stay independent."""
    material = [seed] + [int.from_bytes(str(s).encode(), "little") % (2**32) for s in salt]
    return np.random.default_rng(np.random.SeedSequence(material))


def torch_device(requested: str = "auto") -> str:
    """``cuda`` when asked for (or ``auto`` and available), else ``cpu``."""
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "The profile asks for device 'cuda' but torch sees no GPU. Use the quick profile "
            "or set device: cpu (or auto) in the profile's overrides."
        )
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested
