"""The pneumonia classifier of the study: the reference Keras CNN, its training, and the check
that super-resolved images keep its accuracy.

The network is the reference one exactly (five 3x3 'valid' ReLU convolutions of 16, 32, 64,
128 and 128 filters, each followed by 2x2 max pooling; Flatten; Dense 256 and 512 ReLU; one
sigmoid output; 1,983,009 trainable parameters at 300x300x3), trained with Adam (lr 1e-3) on
binary cross-entropy. Labels: NORMAL = 0, PNEUMONIA = 1, the order of
:data:`cxrsr_utils.data.KERMANY_CLASSES` (the alphabetical order Keras'
``flow_from_directory`` gave the reference).

Images are handled as gray float32 arrays in [0, 1] of shape (N, S, S); the three identical
RGB channels the network expects are made per batch. Float in [0, 1] is what the reference's
``rescale=1/255`` produced from 8-bit pixels; skipping the 8-bit round trip keeps 16-bit
sources and super-resolved float outputs at full precision.

Augmentation (shear, zoom, horizontal flip) reproduces ``ImageDataGenerator`` (removed from
Keras 3) in NumPy/SciPy, in the training batches only, so the saved model never augments; see
:func:`augment_images` for why ``keras.layers.RandomShear`` is not used.

Evaluation predicts the same held-out images in several forms (original, bicubic, SR...) and
reports per form: loss, accuracy, ROC AUC, sensitivity, specificity, the confusion matrix,
percentile-bootstrap confidence intervals, and McNemar's exact test against the reference form
(the statistics are :mod:`cxrsr_utils.stats`').

Keras/TensorFlow are imported inside the functions that need them: importing them costs
seconds.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import ndimage

from cxrsr_utils import io, repro, stats
from cxrsr_utils.data import KERMANY_CLASSES

if TYPE_CHECKING:
    import keras

__all__: list[str] = [
    "IMAGE_SIZE",
    "ClassifierLoadError",
    "augment_image",
    "augment_images",
    "build_classifier",
    "count_trainable_parameters",
    "draw_augmentations",
    "evaluate_forms",
    "label_from_path",
    "load_classifier",
    "load_images",
    "min_image_size",
    "model_image_size",
    "predict_forms",
    "predict_probabilities",
    "prepare_images",
    "save_classifier",
    "summarize_forms",
    "train_classifier",
    "train_or_load",
]

IMAGE_SIZE = 300
CONV_FILTERS: tuple[int, ...] = (16, 32, 64, 128, 128)
DENSE_UNITS: tuple[int, ...] = (256, 512)
_LUMA = np.array(io.LUMA_WEIGHTS, dtype=np.float32)

PathLike = str | os.PathLike[str]
ImagesLike = np.ndarray | Sequence[np.ndarray] | Sequence[PathLike]


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
# Images in
# --------------------------------------------------------------------------------------------


def label_from_path(path: PathLike) -> int:
    """0 for a file under a ``NORMAL`` folder, 1 under ``PNEUMONIA`` (the Kermany layout)."""
    parent = Path(path).parent.name.upper()
    if parent not in KERMANY_CLASSES:
        raise ValueError(
            f"{path}: cannot tell the class; the file must sit in a folder named "
            f"{' or '.join(KERMANY_CLASSES)}."
        )
    return KERMANY_CLASSES.index(parent)


def _to_square(image: np.ndarray, image_size: int, method: str) -> np.ndarray:
    if image.shape != (image_size, image_size):
        image = io.resize(image, (image_size, image_size), method=method)
    # Bicubic overshoots; an 8-bit pipeline would have clipped too.
    return np.clip(image, 0.0, 1.0).astype(np.float32, copy=False)


def _as_gray_float(image: np.ndarray, index: int) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype.kind != "f":
        raise TypeError(
            f"image {index}: expected floats in [0, 1], got {image.dtype}; convert integer "
            "pixels first (e.g. io.read_radiograph(path).as_float())."
        )
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    elif image.ndim == 3 and image.shape[-1] == 3:
        image = image.astype(np.float32) @ _LUMA
    if image.ndim != 2:
        raise ValueError(
            f"image {index}: expected a 2-D gray image (or H x W x 1/3), got shape {image.shape}."
        )
    lo, hi = float(np.nanmin(image)), float(np.nanmax(image))
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo < -1e-3 or hi > 1 + 1e-3:
        raise ValueError(
            f"image {index}: values span [{lo:.4g}, {hi:.4g}]; expected floats in [0, 1] "
            "(divide 8-bit data by 255)."
        )
    return image.astype(np.float32, copy=False)


def prepare_images(
    images: np.ndarray | Sequence[np.ndarray],
    *,
    image_size: int = IMAGE_SIZE,
    resize_method: str = "bicubic",
) -> np.ndarray:
    """In-memory float images in [0, 1] (any size) -> gray float32 (N, S, S) for the classifier.

    Accepts an (N, H, W) array or a sequence of 2-D (or H x W x 1/3) arrays; 3 channels are
    turned gray with ITU-R 601 luma, as :func:`io.read_radiograph` does. Images not already
    S x S are resized with :func:`io.resize` (the study's bicubic) and clipped to [0, 1].
    """
    if isinstance(images, np.ndarray) and images.ndim == 2:
        raise ValueError("prepare_images needs a batch of images; wrap a single image in a list.")
    out = np.empty((len(images), image_size, image_size), dtype=np.float32)
    for i, image in enumerate(images):
        out[i] = _to_square(_as_gray_float(image, i), image_size, resize_method)
    return out


def load_images(
    paths: Sequence[PathLike],
    *,
    image_size: int = IMAGE_SIZE,
    resize_method: str = "bicubic",
) -> np.ndarray:
    """Read radiographs with :func:`io.read_radiograph` -> gray float32 (N, S, S) in [0, 1].

    The reference's ``flow_from_directory`` resized 8-bit JPEGs with PIL 'nearest'; here every
    form of every image goes through the same float bicubic resize, so forms differ only in
    what they are, not in how they were loaded.
    """
    out = np.empty((len(paths), image_size, image_size), dtype=np.float32)
    for i, path in enumerate(paths):
        out[i] = _to_square(io.read_radiograph(path).as_float(), image_size, resize_method)
    return out


def _as_batch(images: ImagesLike, image_size: int) -> np.ndarray:
    if len(images) and isinstance(images[0], str | os.PathLike):
        return load_images(images, image_size=image_size)  # type: ignore[arg-type]
    if isinstance(images, np.ndarray) and images.shape[1:] == (image_size, image_size):
        if images.dtype == np.float32:
            return images
    return prepare_images(images, image_size=image_size)  # type: ignore[arg-type]


def _rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[..., None], 3, axis=-1)


# --------------------------------------------------------------------------------------------
# Augmentation
# --------------------------------------------------------------------------------------------


def draw_augmentations(
    n: int,
    generator: np.random.Generator,
    *,
    shear_degrees: float = 0.2,
    zoom: float = 0.2,
    horizontal_flip: bool = True,
) -> np.ndarray:
    """Random augmentation parameters for ``n`` images: columns shear (deg), zx, zy, flip.

    Distributions of ``ImageDataGenerator(shear_range, zoom_range, horizontal_flip)``: shear
    angle uniform in +-``shear_degrees`` degrees, zx and zy independently uniform in
    [1 - ``zoom``, 1 + ``zoom``], flip with probability 1/2.
    """
    shear = generator.uniform(-shear_degrees, shear_degrees, n) if shear_degrees else np.zeros(n)
    zooms = generator.uniform(1 - zoom, 1 + zoom, (n, 2)) if zoom else np.ones((n, 2))
    flip = (generator.random(n) < 0.5) if horizontal_flip else np.zeros(n, dtype=bool)
    return np.column_stack([shear, zooms, flip.astype(np.float64)])


def _affine(shear_degrees: float, zx: float, zy: float, h: int, w: int) -> np.ndarray:
    # Built as keras' legacy apply_affine_transform does: shear then zoom in its (x, y) frame,
    # centred with transform_matrix_offset_center(h, w), then axes swapped to the (row, col)
    # order scipy indexes in. The matrix maps output coordinates to input coordinates.
    s = np.deg2rad(shear_degrees)
    m = np.array([[1, -np.sin(s), 0], [0, np.cos(s), 0], [0, 0, 1]]) @ np.diag([zx, zy, 1.0])
    ox, oy = h / 2 - 0.5, w / 2 - 0.5
    m = (
        np.array([[1, 0, ox], [0, 1, oy], [0, 0, 1]])
        @ m
        @ np.array([[1, 0, -ox], [0, 1, -oy], [0, 0, 1]])
    )
    m[:, [0, 1]] = m[:, [1, 0]]
    m[[0, 1]] = m[[1, 0]]
    return m


def augment_image(image: np.ndarray, params: np.ndarray) -> np.ndarray:
    """Apply one row of :func:`draw_augmentations` to a gray 2-D float image.

    Bilinear sampling with 'nearest' fill, as ``ImageDataGenerator``'s defaults
    (``interpolation_order=1``, ``fill_mode='nearest'``), then the horizontal flip.
    """
    shear, zx, zy, flip = (float(v) for v in params)
    out = image
    if shear != 0 or zx != 1 or zy != 1:
        m = _affine(shear, zx, zy, *image.shape)
        out = ndimage.affine_transform(image, m[:2, :2], m[:2, 2], order=1, mode="nearest")
    if flip:
        out = out[:, ::-1]
    return np.ascontiguousarray(out, dtype=np.float32)


def augment_images(
    images: np.ndarray,
    *,
    seed: int = 0,
    shear_degrees: float = 0.2,
    zoom: float = 0.2,
    horizontal_flip: bool = True,
) -> np.ndarray:
    """Randomly augment gray (N, S, S) float images the way the reference training did.

    "shear 0.2" is ``ImageDataGenerator(shear_range=0.2)``, whose docs and code take the value
    as a shear *angle in degrees* (``np.deg2rad``, matrix [[1, -sin, 0], [0, cos, 0]], centred):
    at most tan(0.2 deg) = 0.0035, i.e. <= 0.5 px at the edge of a 300 px image. Keras 3's
    ``RandomShear(x_factor=0.2)`` instead draws a shear *coefficient* up to 0.2 about the top-
    left corner (measured: 60 px at the bottom of a 300 px image, about 57x stronger and not
    centred), so it would not be the reference's augmentation; we reproduce the legacy
    transform here instead (tests check it against Keras' legacy code when present).
    """
    params = draw_augmentations(
        len(images),
        repro.rng(seed, "classifier-augment"),
        shear_degrees=shear_degrees,
        zoom=zoom,
        horizontal_flip=horizontal_flip,
    )
    return np.stack([augment_image(img, p) for img, p in zip(images, params, strict=True)])


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
            return _rgb(gray), self.labels[idx]

    return _Batches


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def _check_labels(labels: Any, n: int, what: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise ValueError(f"{what}: {labels.shape} labels for {n} images; need one label each.")
    if not np.isin(labels, (0, 1)).all():
        names = " or ".join(f"{i} ({name})" for i, name in enumerate(KERMANY_CLASSES))
        raise ValueError(f"{what}: labels must be {names}, got {set(labels)}.")
    return labels.astype(np.int64)


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
    seed: int = 0,
    verbose: int = 0,
) -> tuple[keras.Model, pd.DataFrame]:
    """Train the reference CNN from scratch; return the model and its per-epoch history.

    Images: gray float (N, S, S) in [0, 1] (or anything :func:`prepare_images` takes, or file
    paths); they are brought to ``image_size``. Each epoch visits every training image once in
    a fresh seeded order, in batches of ``batch_size`` (the last one partial, as the
    reference's generator did), augmented by :func:`augment_images`' transform; validation
    images are never augmented. Seeds (:func:`repro.seed_everything` with TensorFlow op
    determinism) make two runs with the same arguments give identical weights and history on
    the same machine.

    History columns: epoch (1-based), loss, accuracy, val_loss, val_accuracy (NaN without
    validation data).
    """
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs ({epochs}) and batch_size ({batch_size}) must be >= 1.")
    if (val_images is None) != (val_labels is None):
        raise ValueError("Give both val_images and val_labels, or neither.")
    gray = _as_batch(train_images, image_size)
    if len(gray) == 0:
        raise ValueError("train_classifier got no training images.")
    labels = _check_labels(train_labels, len(gray), "train_labels")
    validation = None
    if val_images is not None:
        val_gray = _as_batch(val_images, image_size)
        val_y = _check_labels(val_labels, len(val_gray), "val_labels")
        validation = _batches_class()(val_gray, val_y, batch_size)

    repro.seed_everything(seed, tensorflow=True)
    model = build_classifier(image_size, learning_rate=learning_rate)
    rows = []
    for epoch in range(epochs):
        # Order and augmentations are drawn up front for each epoch from (seed, epoch), so they
        # do not depend on how Keras iterates or prefetches.
        generator = repro.rng(seed, "classifier-epoch", epoch)
        order = generator.permutation(len(gray))
        augment = draw_augmentations(
            len(gray),
            generator,
            shear_degrees=shear_degrees,
            zoom=zoom,
            horizontal_flip=horizontal_flip,
        )
        batches = _batches_class()(gray, labels, batch_size, order, augment)
        history = model.fit(
            batches,
            validation_data=validation,
            epochs=epoch + 1,
            initial_epoch=epoch,
            shuffle=False,
            verbose=verbose,
        )
        logs = {k: float(v[-1]) for k, v in history.history.items()}
        rows.append(
            {
                "epoch": epoch + 1,
                "loss": logs["loss"],
                "accuracy": logs["accuracy"],
                "val_loss": logs.get("val_loss", np.nan),
                "val_accuracy": logs.get("val_accuracy", np.nan),
            }
        )
    return model, pd.DataFrame(rows)


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
    with io.atomic_path(path, keep_suffix=True) as tmp:
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


# --------------------------------------------------------------------------------------------
# Evaluation of several forms of the same images
# --------------------------------------------------------------------------------------------


def predict_probabilities(
    model: keras.Model, images: ImagesLike, *, batch_size: int = 32
) -> np.ndarray:
    """P(PNEUMONIA) for each image (float64, shape (N,)); images are brought to the model size."""
    gray = _as_batch(images, model_image_size(model))
    out = np.empty(len(gray), dtype=np.float64)
    for start in range(0, len(gray), batch_size):
        chunk = _rgb(gray[start : start + batch_size])
        out[start : start + len(chunk)] = np.asarray(model.predict_on_batch(chunk)).reshape(-1)
    return out


def predict_forms(
    model: keras.Model,
    forms: Mapping[str, ImagesLike],
    labels: Sequence[int] | np.ndarray,
    files: Sequence[PathLike],
    *,
    threshold: float = 0.5,
    batch_size: int = 32,
) -> pd.DataFrame:
    """Per-image predictions of every form of the same images, one row per (form, image).

    ``forms`` maps a form name (e.g. 'original', 'bicubic', 'realesrgan') to that form's images
    in the order of ``files``/``labels``; in-memory arrays of other sizes (e.g. 256 x 256 SR
    outputs) are resized to the model's input with :func:`prepare_images`. Columns: file,
    label, form, probability, prediction (probability >= threshold), correct.
    """
    files = [str(f) for f in files]
    y = _check_labels(labels, len(files), "labels")
    frames = []
    for form, images in forms.items():
        if len(images) != len(files):
            raise ValueError(f"form {form!r} has {len(images)} images for {len(files)} files.")
        prob = predict_probabilities(model, images, batch_size=batch_size)
        pred = (prob >= threshold).astype(np.int64)
        frames.append(
            pd.DataFrame(
                {
                    "file": files,
                    "label": y,
                    "form": form,
                    "probability": prob,
                    "prediction": pred,
                    "correct": pred == y,
                }
            )
        )
    if not frames:
        raise ValueError("predict_forms got no forms.")
    return pd.concat(frames, ignore_index=True)


def _paired(predictions: pd.DataFrame, form: str, reference: pd.DataFrame) -> pd.DataFrame:
    rows = predictions[predictions["form"] == form].set_index("file")
    if rows.index.has_duplicates or set(rows.index) != set(reference.index):
        raise ValueError(
            f"form {form!r} does not hold exactly the reference form's images (one row each); "
            "forms must be the same held-out images."
        )
    rows = rows.loc[reference.index]
    if not (rows["label"].to_numpy() == reference["label"].to_numpy()).all():
        raise ValueError(f"form {form!r} labels disagree with the reference form's labels.")
    return rows


def _form_row(
    form: str, data: pd.DataFrame, reference_correct: np.ndarray | None, resampling: dict
) -> dict[str, Any]:
    # One row of summarize_forms; reference_correct is None on the reference form itself.
    y = data["label"].to_numpy()
    prob = data["probability"].to_numpy()
    pred = data["prediction"].to_numpy()
    (tn, fp), (fn, tp) = stats.confusion_matrix(y, pred)
    sens, spec = stats.sensitivity_specificity(y, pred)
    # Accuracy from the stored predictions (whatever threshold made them): 0/1 >= 0.5.
    acc_low, acc_high = stats.bootstrap_classification_ci(
        y, pred.astype(np.float64), metric="accuracy", **resampling
    )
    auc_low, auc_high = stats.bootstrap_classification_ci(y, prob, metric="auc", **resampling)
    if reference_correct is None:
        b, c, p = 0, 0, float("nan")
    else:
        b, c, p = stats.mcnemar_exact(reference_correct, data["correct"].to_numpy())
    return {
        "form": form,
        "n": len(y),
        "loss": stats.binary_cross_entropy(y, prob),
        "accuracy": float((pred == y).mean()),
        "accuracy_low": acc_low,
        "accuracy_high": acc_high,
        "auc": stats.roc_auc(y, prob),
        "auc_low": auc_low,
        "auc_high": auc_high,
        "sensitivity": sens,
        "specificity": spec,
        "tn": int(tn),
        "fp": int(fp),
        "fn": int(fn),
        "tp": int(tp),
        "only_reference_correct": b,
        "only_form_correct": c,
        "mcnemar_p": p,
    }


def summarize_forms(
    predictions: pd.DataFrame,
    *,
    reference_form: str = "original",
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per form: loss, accuracy, AUC (with bootstrap CIs), sensitivity, specificity,
    confusion counts, and McNemar's exact test against ``reference_form``.

    ``predictions`` is :func:`predict_forms`' table. Columns: form, n, loss, accuracy,
    accuracy_low, accuracy_high, auc, auc_low, auc_high, sensitivity, specificity, tn, fp, fn,
    tp, only_reference_correct (b), only_form_correct (c), mcnemar_p (NaN on the reference
    row). Bootstrap resamples (``n_resamples``) are the same images for every form, drawn from
    ``seed`` (:func:`stats.bootstrap_classification_ci`).
    """
    forms = list(dict.fromkeys(predictions["form"]))
    if reference_form not in forms:
        raise ValueError(f"reference form {reference_form!r} not among the forms {forms}.")
    reference = predictions[predictions["form"] == reference_form].set_index("file")
    resampling = {"n_resamples": n_resamples, "confidence": confidence, "seed": seed}
    rows = []
    for form in forms:
        data = _paired(predictions, form, reference)
        reference_correct = None if form == reference_form else reference["correct"].to_numpy()
        rows.append(_form_row(form, data, reference_correct, resampling))
    return pd.DataFrame(rows)


def evaluate_forms(
    model: keras.Model,
    forms: Mapping[str, ImagesLike],
    labels: Sequence[int] | np.ndarray,
    files: Sequence[PathLike],
    *,
    reference_form: str = "original",
    threshold: float = 0.5,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    batch_size: int = 32,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`predict_forms` then :func:`summarize_forms`: returns (summary, predictions)."""
    predictions = predict_forms(
        model, forms, labels, files, threshold=threshold, batch_size=batch_size
    )
    summary = summarize_forms(
        predictions,
        reference_form=reference_form,
        n_resamples=n_resamples,
        confidence=confidence,
        seed=seed,
    )
    return summary, predictions


def train_or_load(
    folder: PathLike,
    settings: Mapping[str, Any],
    train_images: ImagesLike,
    train_labels: Sequence[int] | np.ndarray,
    **train_kwargs: Any,
) -> tuple[keras.Model, pd.DataFrame, bool]:
    """Train the classifier into ``folder``, or load the one a previous run trained there.

    ``settings`` (JSON-able: the parameters and a digest of the training data) is stored beside
    ``model.keras`` and ``history.csv``; a later call with the same settings loads instead of
    retraining (an interrupted notebook resumes), different settings retrain. Returns
    ``(model, history, loaded)``.
    """
    import json

    folder = Path(folder)
    model_path, history_path = folder / "model.keras", folder / "history.csv"
    stamp = folder / "settings.json"
    wanted = json.dumps(dict(settings), sort_keys=True, default=str)
    if model_path.is_file() and history_path.is_file() and stamp.is_file():
        if stamp.read_text() == wanted:
            return load_classifier(model_path, compile=True), pd.read_csv(history_path), True
    model, history = train_classifier(train_images, train_labels, **train_kwargs)
    folder.mkdir(parents=True, exist_ok=True)
    save_classifier(model, model_path)
    with io.atomic_path(history_path) as tmp:
        history.to_csv(tmp, index=False)
    io.write_text(stamp, wanted)
    return model, history, False
