"""The pneumonia classifier of the study: the reference Keras CNN, its training, and saving
and loading it.

The network is the reference one exactly (five 3x3 'valid' ReLU convolutions of 16, 32, 64,
128 and 128 filters, each followed by 2x2 max pooling; Flatten; Dense 256 and 512 ReLU; one
sigmoid output; 1,983,009 trainable parameters at 300x300x3), trained with Adam (lr 1e-3) on
binary cross-entropy, on gray images brought in by :mod:`cxrsr_utils.classification.images` and
augmented there in the training batches only. Saved files are Keras v3 ``.keras`` files, loaded
with ``safe_mode`` on.

What the trained network is used for, classifying the forms of the held-out images, is in
:mod:`cxrsr_utils.classification.forms`.

Keras/TensorFlow are imported inside the functions that need them: importing them costs
seconds.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cxrsr_utils.classification.images import (
    IMAGE_SIZE,
    ImagesLike,
    PathLike,
    augment_image,
    check_labels,
    draw_augmentations,
    to_batch,
    to_rgb,
)
from cxrsr_utils.core import atomic, repro

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
    "train_classifier",
]

CONV_FILTERS: tuple[int, ...] = (16, 32, 64, 128, 128)
DENSE_UNITS: tuple[int, ...] = (256, 512)


class ClassifierLoadError(ValueError):
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
# Training
# --------------------------------------------------------------------------------------------


@functools.cache
def _batches_class() -> type:
    import keras

    class _Batches(keras.utils.PyDataset):
        """Batches of (N, S, S, 3) float32 images in a fixed order, optionally augmented."""

        def __init__(
            self,
            gray: np.ndarray,
            labels: np.ndarray,
            batch_size: int,
            order: np.ndarray | None = None,
            augment: np.ndarray | None = None,
        ) -> None:
            # workers=1, no multiprocessing: batches are made in order in this process, which
            # together with the precomputed order/augmentations keeps training reproducible.
            super().__init__(workers=1, use_multiprocessing=False)
            self.gray = gray
            self.labels = labels.astype(np.float32)
            self.batch_size = batch_size
            self.order = np.arange(len(gray)) if order is None else order
            self.augment = augment

        def __len__(self) -> int:
            return math.ceil(len(self.order) / self.batch_size)

        def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
            positions = np.arange(
                index * self.batch_size, min((index + 1) * self.batch_size, len(self.order))
            )
            idx = self.order[positions]
            gray = self.gray[idx]
            if self.augment is not None:
                gray = np.stack(
                    [
                        augment_image(g, self.augment[p])
                        for g, p in zip(gray, positions, strict=True)
                    ]
                )
            return to_rgb(gray), self.labels[idx]

    return _Batches


def _epoch_batches(
    gray: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    seed: int,
    epoch: int,
    augmentation: dict[str, Any],
) -> Any:
    # Order and augmentations are drawn up front for each epoch from (seed, epoch), so they
    # do not depend on how Keras iterates or prefetches.
    generator = repro.rng(seed, "classifier-epoch", epoch)
    order = generator.permutation(len(gray))
    augment = draw_augmentations(len(gray), generator, **augmentation)
    return _batches_class()(gray, labels, batch_size, order, augment)


def train_classifier(
    train_images: ImagesLike,
    train_labels: Sequence[int] | np.ndarray,
    *,
    val_images: ImagesLike | None = None,
    val_labels: Sequence[int] | np.ndarray | None = None,
    image_size: int = IMAGE_SIZE,
    epochs: int = 50,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    shear_degrees: float = 0.2,
    zoom: float = 0.2,
    horizontal_flip: bool = True,
    patience: int | None = None,
    min_epochs: int = 0,
    seed: int = 0,
    verbose: int = 0,
) -> tuple[keras.Model, pd.DataFrame]:
    """Train the reference CNN from scratch; return the model and its per-epoch history.

    Images: gray float (N, S, S) in [0, 1] (or anything
    :func:`classifier_images.prepare_images` takes, or file paths); they are brought to
    ``image_size``. Each epoch visits every training image once in a fresh seeded order, in
    batches of ``batch_size`` (the last one partial, as the reference's generator did),
    augmented by :func:`classifier_images.augment_images`' transform; validation
    images are never augmented. Seeds (:func:`repro.seed_everything` with TensorFlow op
    determinism) make two runs with the same arguments give identical weights and history on
    the same machine.

    Early stopping, with ``patience`` and validation data: Keras'
    ``EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)``
    watches the validation loss; training stops once it has not improved for ``patience``
    epochs (or after ``epochs``), and the returned model holds the weights of the epoch with
    the lowest validation loss. The first ``min_epochs`` epochs are a warm-up it ignores
    (``start_from_epoch``: the CNN sits at chance loss for its first epochs, and a plateau
    there is not convergence), so the chosen epoch is after them. Without ``patience`` every
    epoch runs and the last weights are kept.

    History columns: epoch (1-based), loss, accuracy, val_loss, val_accuracy (NaN without
    validation data), chosen (True on the epoch whose weights are returned).
    """
    _check_schedule(epochs, batch_size, patience, min_epochs, val_images, val_labels)
    gray = to_batch(train_images, image_size)
    if len(gray) == 0:
        raise ValueError("train_classifier got no training images.")
    labels = check_labels(train_labels, len(gray), "train_labels")
    validation = None
    if val_images is not None:
        val_gray = to_batch(val_images, image_size)
        val_y = check_labels(val_labels, len(val_gray), "val_labels")
        validation = _batches_class()(val_gray, val_y, batch_size)

    repro.seed_everything(seed, tensorflow=True)
    model = build_classifier(image_size, learning_rate=learning_rate)
    augmentation = {
        "shear_degrees": shear_degrees,
        "zoom": zoom,
        "horizontal_flip": horizontal_flip,
    }
    stopper = _early_stopping(model, patience, min_epochs)
    rows = []
    for epoch in range(epochs):
        batches = _epoch_batches(gray, labels, batch_size, seed, epoch, augmentation)
        logs = _fit_one_epoch(model, batches, validation, epoch, verbose)
        rows.append(
            {
                "epoch": epoch + 1,
                "loss": logs["loss"],
                "accuracy": logs["accuracy"],
                "val_loss": logs.get("val_loss", np.nan),
                "val_accuracy": logs.get("val_accuracy", np.nan),
            }
        )
        if stopper is not None:
            stopper.on_epoch_end(epoch, logs)
            if model.stop_training:
                break
    table = pd.DataFrame(rows)
    chosen = len(rows) - 1
    if stopper is not None:
        stopper.on_train_end()  # puts back the best epoch's weights
        chosen = stopper.best_epoch
    table["chosen"] = table.index == chosen
    return model, table


def _check_schedule(
    epochs: int,
    batch_size: int,
    patience: int | None,
    min_epochs: int,
    val_images: ImagesLike | None,
    val_labels: Sequence[int] | np.ndarray | None,
) -> None:
    # train_classifier's argument checks, before any image is read.
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs ({epochs}) and batch_size ({batch_size}) must be >= 1.")
    if (val_images is None) != (val_labels is None):
        raise ValueError("Give both val_images and val_labels, or neither.")
    if patience is not None and (val_images is None or patience < 1):
        raise ValueError("Early stopping needs validation images and a patience >= 1.")
    if patience is not None and not 0 <= min_epochs < epochs:
        raise ValueError(f"min_epochs ({min_epochs}) must be in [0, epochs = {epochs}).")


def _fit_one_epoch(
    model: keras.Model, batches: Any, validation: Any, epoch: int, verbose: int
) -> dict[str, float]:
    # One fit() call per epoch, so each epoch's batches come from (seed, epoch); returns the
    # epoch's logs (loss, accuracy and, with validation data, val_loss and val_accuracy).
    history = model.fit(
        batches,
        validation_data=validation,
        epochs=epoch + 1,
        initial_epoch=epoch,
        shuffle=False,
        verbose=verbose,
    )
    return {k: float(v[-1]) for k, v in history.history.items()}


def _early_stopping(model: keras.Model, patience: int | None, min_epochs: int) -> Any:
    # Keras' own callback, driven by hand: each epoch is its own fit() call (so that its
    # batches are drawn from (seed, epoch)), and fit() would reset a callback passed to it.
    if patience is None:
        return None
    import keras

    stopper = keras.callbacks.EarlyStopping(
        monitor="val_loss",
        patience=patience,
        restore_best_weights=True,
        start_from_epoch=min_epochs,
    )
    stopper.set_model(model)
    stopper.on_train_begin()
    return stopper


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
