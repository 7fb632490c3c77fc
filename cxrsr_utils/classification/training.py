"""Training the reference CNN (:mod:`cxrsr_utils.classification.network`): seeded epochs of
augmented batches, and early stopping on the validation loss.

Each epoch's order and augmentations are drawn up front from (seed, epoch), and each epoch is
its own ``fit()`` call, so training does not depend on how Keras iterates or prefetches.

Early stopping, with ``patience`` and validation data: Keras'
``EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)`` watches the
validation loss; training stops once it has not improved for ``patience`` epochs (or after
``epochs``), and the returned model holds the weights of the epoch with the lowest validation
loss. The first ``min_epochs`` epochs are a warm-up it ignores (``start_from_epoch``: the CNN
sits at chance loss for its first epochs, and a plateau there is not convergence), so the chosen
epoch is after them.

Keras/TensorFlow are imported inside the functions that need them: importing them costs
seconds.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cxrsr_utils.classification.images import (
    IMAGE_SIZE,
    ImagesLike,
    augment_image,
    check_labels,
    draw_augmentations,
    to_batch,
    to_rgb,
)
from cxrsr_utils.classification.network import build_classifier
from cxrsr_utils.core import repro

if TYPE_CHECKING:
    import keras

__all__: list[str] = ["train_classifier"]


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

    Images: gray float (N, S, S) in [0, 1] (or anything :func:`classifier_images.prepare_images`
    takes, or file paths); they are brought to ``image_size``. Each epoch visits every training
    image once in a fresh seeded order, in batches of ``batch_size`` (the last one partial, as
    the reference's generator did), augmented by :func:`classifier_images.augment_images`'
    transform; validation images are never augmented. Seeds (:func:`repro.seed_everything` with
    TensorFlow op determinism) make two runs with the same arguments give identical weights and
    history on the same machine.

    With ``patience`` and validation data training stops early (see the module doc) after the
    ``min_epochs`` warm-up; without ``patience`` every epoch runs and the last weights are kept.

    History columns: epoch (1-based), loss, accuracy, val_loss, val_accuracy (NaN without
    validation data), chosen (True on the epoch whose weights are returned).
    """
    _check_schedule(epochs, batch_size, patience, min_epochs, val_images, val_labels)
    gray, labels, validation = _training_data(
        train_images, train_labels, val_images, val_labels, image_size, batch_size
    )
    repro.seed_everything(seed, tensorflow=True)
    model = build_classifier(image_size, learning_rate=learning_rate)
    augmentation = {
        "shear_degrees": shear_degrees,
        "zoom": zoom,
        "horizontal_flip": horizontal_flip,
    }
    stopper = _early_stopping(model, patience, min_epochs)
    table = _run_epochs(
        model,
        gray,
        labels,
        validation,
        stopper,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        augmentation=augmentation,
        verbose=verbose,
    )
    return model, table


def _training_data(
    train_images: ImagesLike,
    train_labels: Sequence[int] | np.ndarray,
    val_images: ImagesLike | None,
    val_labels: Sequence[int] | np.ndarray | None,
    image_size: int,
    batch_size: int,
) -> tuple[np.ndarray, np.ndarray, Any]:
    """The training images at ``image_size`` with their checked labels, and the validation
    batches (None without validation images)."""
    gray = to_batch(train_images, image_size)
    if len(gray) == 0:
        raise ValueError("train_classifier got no training images.")
    labels = check_labels(train_labels, len(gray), "train_labels")
    validation = None
    if val_images is not None:
        val_gray = to_batch(val_images, image_size)
        val_y = check_labels(val_labels, len(val_gray), "val_labels")
        validation = _batches_class()(val_gray, val_y, batch_size)
    return gray, labels, validation


def _run_epochs(
    model: keras.Model,
    gray: np.ndarray,
    labels: np.ndarray,
    validation: Any,
    stopper: Any,
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    augmentation: dict[str, Any],
    verbose: int,
) -> pd.DataFrame:
    """Train ``model`` epoch by epoch until ``epochs`` or the early ``stopper`` (None: none)
    stops it; the per-epoch history, its ``chosen`` column on the epoch whose weights the
    model holds at the end."""
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
    return table


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
