"""The pneumonia classifier of the study: the reference Keras CNN, and saving and loading it.

The network is the reference one exactly (five 3x3 'valid' ReLU convolutions of 16, 32, 64,
128 and 128 filters, each followed by 2x2 max pooling; Flatten; Dense 256 and 512 ReLU; one
sigmoid output; 1,983,009 trainable parameters at 300x300x3), trained with Adam (lr 1e-3) on
binary cross-entropy, on gray images brought in by :mod:`cxrsr_utils.classification.images` and
augmented there in the training batches only. Saved files are Keras v3 ``.keras`` files, loaded
with ``safe_mode`` on.

Its training is :mod:`cxrsr_utils.classification.training`'s; what the trained network is used
for, classifying the forms of the held-out images, is in :mod:`cxrsr_utils.classification.forms`.

Keras/TensorFlow are imported inside the functions that need them: importing them costs
seconds.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cxrsr_utils.classification.images import (
    IMAGE_SIZE,
    PathLike,
)
from cxrsr_utils.core import atomic
from cxrsr_utils.core.errors import CxrsrError

if TYPE_CHECKING:
    import keras

__all__: list[str] = [
    "ClassifierLoadError",
    "build_classifier",
    "count_trainable_parameters",
    "load_classifier",
    "min_image_size",
    "model_image_size",
    "save_classifier",
]

CONV_FILTERS: tuple[int, ...] = (16, 32, 64, 128, 128)
DENSE_UNITS: tuple[int, ...] = (256, 512)


class ClassifierLoadError(CxrsrError, ValueError):
    """A model file could not be loaded as the classifier; the message names the file."""


# --------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------


def min_image_size() -> int:
    """Smallest square input side the five conv+pool stages leave at least 1x1 (94)."""
    size = 1
    for _ in CONV_FILTERS:
        size = 2 * size + 2  # undo a 2x2 pool (floor) and a 3x3 'valid' conv
    return size


def build_classifier(image_size: int = IMAGE_SIZE, *, learning_rate: float = 1e-3) -> keras.Model:
    """The reference CNN for ``image_size`` x ``image_size`` x 3 inputs, compiled.

    Adam(``learning_rate``), binary cross-entropy, accuracy. At the default 300 it has exactly
    1,983,009 trainable parameters and a 6,272-wide Flatten; smaller sizes (>= 94) are for
    fast tests. Weights depend on the global Keras seed (see :func:`repro.seed_everything`).
    """
    import keras
    from keras import layers

    if image_size < min_image_size():
        raise ValueError(
            f"image_size={image_size} is too small for five 3x3 'valid' conv + 2x2 pool stages; "
            f"use at least {min_image_size()} (the paper uses {IMAGE_SIZE})."
        )
    stack: list[Any] = [keras.Input((image_size, image_size, 3), name="image")]
    for i, filters in enumerate(CONV_FILTERS, start=1):
        stack.append(layers.Conv2D(filters, 3, padding="valid", activation="relu", name=f"conv{i}"))
        stack.append(layers.MaxPooling2D(2, name=f"pool{i}"))
    stack.append(layers.Flatten(name="flatten"))
    for i, units in enumerate(DENSE_UNITS, start=1):
        stack.append(layers.Dense(units, activation="relu", name=f"dense{i}"))
    stack.append(layers.Dense(1, activation="sigmoid", name="pneumonia"))
    model = keras.Sequential(stack, name="pneumonia_cnn")
    _compile(model, learning_rate)
    return model


def _compile(model: keras.Model, learning_rate: float) -> None:
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )


def count_trainable_parameters(model: keras.Model) -> int:
    """Number of trainable scalars of ``model``."""
    return int(sum(math.prod(w.shape) for w in model.trainable_weights))


def model_image_size(model: keras.Model) -> int:
    """Square input side of a classifier; raises if the input is not (None, S, S, 3)."""
    shape = tuple(model.input_shape)
    if len(shape) != 4 or shape[1] != shape[2] or shape[3] != 3 or shape[1] is None:
        raise ValueError(f"Expected a classifier input of shape (None, S, S, 3), got {shape}.")
    return int(shape[1])


# --------------------------------------------------------------------------------------------
# Saving and loading
# --------------------------------------------------------------------------------------------


def save_classifier(model: keras.Model, path: PathLike) -> Path:
    """Save ``model`` in the Keras v3 format, atomically (temp file beside it, then rename).

    ``path`` must end in ``.keras``: Keras picks the format from the suffix, so the temporary
    file carries it too.
    """
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"{path}: save the classifier with a .keras suffix (Keras v3 format).")
    with atomic.atomic_path(path, keep_suffix=True) as tmp:
        model.save(tmp, overwrite=True)
    return path


def load_classifier(path: PathLike, *, compile: bool = False) -> keras.Model:
    """Load a classifier from a ``.keras`` (v3) or legacy ``.h5``/``.hdf5`` file, safe mode on.

    ``safe_mode=True`` refuses to deserialize Lambda-layer bytecode, so a model file cannot
    run code on load (Keras 3 applies it to legacy H5 files too). Without ``compile`` the
    optimizer state is not restored; evaluation does not need it and old H5 files often carry
    optimizer configs Keras 3 rejects. Raises :class:`ClassifierLoadError` naming the file if
    it is missing, unreadable, or not an (N, S, S, 3) -> (N, 1) classifier.
    """
    import keras

    path = Path(path)
    if not path.is_file():
        raise ClassifierLoadError(f"{path}: no such model file. Check the path.")
    if path.suffix.lower() not in {".keras", ".h5", ".hdf5"}:
        raise ClassifierLoadError(
            f"{path}: unknown model format {path.suffix!r}; give a .keras (Keras 3) or .h5 file."
        )
    try:
        model = keras.models.load_model(path, compile=compile, safe_mode=True)
    except Exception as exc:  # Keras/h5py/zipfile raise many types for bad files
        raise ClassifierLoadError(
            f"{path}: cannot be loaded as a Keras model ({type(exc).__name__}: {exc}). The file "
            "may be truncated, from an incompatible Keras version, or need unsafe code; "
            "re-save it with keras 3 as .keras."
        ) from exc
    try:
        model_image_size(model)
        out_shape = tuple(model.output_shape)
    except (ValueError, AttributeError) as exc:
        raise ClassifierLoadError(f"{path}: not a classifier of this study ({exc}).") from exc
    if out_shape[1:] != (1,):
        raise ClassifierLoadError(
            f"{path}: model output shape {out_shape}; expected one sigmoid probability (None, 1)."
        )
    return model
