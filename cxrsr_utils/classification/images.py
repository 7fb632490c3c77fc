"""Images and labels in for the pneumonia classifier, and its training augmentation.

Images are handled as gray float32 arrays in [0, 1] of shape (N, S, S); the three identical
RGB channels the network expects are made per batch (:func:`to_rgb`). Float in [0, 1] is what
the reference's ``rescale=1/255`` produced from 8-bit pixels; skipping the 8-bit round trip
keeps 16-bit sources and super-resolved float outputs at full precision.

Labels: NORMAL = 0, PNEUMONIA = 1, the order of :data:`cxrsr_utils.core.vocabulary.KERMANY_CLASSES`
(the
alphabetical order Keras' ``flow_from_directory`` gave the reference).

Augmentation (shear, zoom, horizontal flip) reproduces ``ImageDataGenerator`` (removed from
Keras 3) in NumPy/SciPy; :mod:`cxrsr_utils.classification.network` applies it in the training
batches only,
so the saved model never augments. See :func:`augment_images` for why
``keras.layers.RandomShear`` is not used.

Nothing here imports Keras or TensorFlow (seconds to import).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from cxrsr_utils.core import repro
from cxrsr_utils.core.vocabulary import KERMANY_CLASSES
from cxrsr_utils.images import radiograph, radiographs

__all__: list[str] = [
    "IMAGE_SIZE",
    "augment_image",
    "augment_images",
    "check_labels",
    "draw_augmentations",
    "label_from_path",
    "load_images",
    "prepare_images",
    "take_images",
    "to_batch",
    "to_rgb",
]

# The reference network's input side (its 1,983,009 parameters assume it).
IMAGE_SIZE = 300
_LUMA = np.array(radiograph.LUMA_WEIGHTS, dtype=np.float32)

PathLike = str | os.PathLike[str]
ImagesLike = np.ndarray | Sequence[np.ndarray] | Sequence[PathLike]


# --------------------------------------------------------------------------------------------
# Labels
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


def check_labels(labels: Any, n: int, what: str) -> np.ndarray:
    """``labels`` as int64, after checking there is one 0/1 label for each of ``n`` images."""
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise ValueError(f"{what}: {labels.shape} labels for {n} images; need one label each.")
    if not np.isin(labels, (0, 1)).all():
        names = " or ".join(f"{i} ({name})" for i, name in enumerate(KERMANY_CLASSES))
        raise ValueError(f"{what}: labels must be {names}, got {set(labels)}.")
    return labels.astype(np.int64)


# --------------------------------------------------------------------------------------------
# Images in
# --------------------------------------------------------------------------------------------


def _to_square(image: np.ndarray, image_size: int, method: str) -> np.ndarray:
    if image.shape != (image_size, image_size):
        image = radiographs.resize(image, (image_size, image_size), method=method)
    # Bicubic overshoots; an 8-bit pipeline would have clipped too.
    return np.clip(image, 0.0, 1.0).astype(np.float32, copy=False)


def _as_gray_float(image: np.ndarray, index: int) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype.kind != "f":
        raise TypeError(
            f"image {index}: expected floats in [0, 1], got {image.dtype}; convert integer "
            "pixels first (e.g. radiographs.read_radiograph(path).as_float())."
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
    turned gray with ITU-R 601 luma, as :func:`radiographs.read_radiograph` does. Images not already
    S x S are resized with :func:`radiographs.resize` (the study's bicubic) and clipped to [0, 1].
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
    """Read radiographs with :func:`radiographs.read_radiograph` -> gray float32 (N, S, S) in
    [0, 1].

    The reference's ``flow_from_directory`` resized 8-bit JPEGs with PIL 'nearest'; here every
    form of every image goes through the same float bicubic resize, so forms differ only in
    what they are, not in how they were loaded.
    """
    out = np.empty((len(paths), image_size, image_size), dtype=np.float32)
    for i, path in enumerate(paths):
        out[i] = _to_square(radiographs.read_radiograph(path).as_float(), image_size, resize_method)
    return out


def to_batch(images: ImagesLike, image_size: int) -> np.ndarray:
    """File paths, or arrays of any size, -> gray float32 (N, S, S); a ready batch as it is."""
    if len(images) and isinstance(images[0], str | os.PathLike):
        return load_images(images, image_size=image_size)  # type: ignore[arg-type]
    if isinstance(images, np.ndarray) and images.shape[1:] == (image_size, image_size):
        if images.dtype == np.float32:
            return images
    return prepare_images(images, image_size=image_size)  # type: ignore[arg-type]


def take_images(images: ImagesLike, index: Sequence[int] | np.ndarray) -> ImagesLike:
    """The images at positions ``index`` (an array's rows, or a list's items), in that order."""
    if isinstance(images, np.ndarray):
        return images[np.asarray(index, dtype=np.int64)]
    return [images[int(i)] for i in index]  # type: ignore[return-value]


def to_rgb(gray: np.ndarray) -> np.ndarray:
    """Gray (N, S, S) -> (N, S, S, 3), the channels the network takes."""
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
