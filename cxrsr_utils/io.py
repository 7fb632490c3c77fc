"""Reading radiographs and writing results safely.

:func:`read_radiograph` is the one reader of the study (and of the command line tool to come):
PNG (8- and 16-bit), JPEG, TIFF and DICOM in, one gray 2-D array out, with the value range
kept (8-bit stays ``uint8``, 12/16-bit stays ``uint16`` with its real maximum). Anything it
cannot turn into a radiograph raises :class:`ImageReadError` naming the file and what to do.

Every writer here writes to a temporary file in the target folder and renames it into place,
so a crash never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

DICOM_SUFFIXES = {".dcm", ".dicom"}


class ImageReadError(ValueError):
    """A file could not be read as a radiograph; the message names the file and the fix."""


@dataclass(frozen=True)
class Radiograph:
    """A gray radiograph: ``pixels`` is 2-D ``uint8`` or ``uint16`` in ``[0, max_value]``."""

    pixels: np.ndarray
    max_value: int
    path: Path
    note: str = ""

    @property
    def bit_depth(self) -> int:
        return int(self.max_value).bit_length()

    def as_float(self) -> np.ndarray:
        """Pixels as float32 in [0, 1] (divided by the real maximum, not the dtype's)."""
        return self.pixels.astype(np.float32) / float(self.max_value)


def _is_dicom(path: Path) -> bool:
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    with open(path, "rb") as f:
        head = f.read(132)
    return len(head) == 132 and head[128:132] == b"DICM"


def _read_dicom(path: Path) -> Radiograph:
    import pydicom

    try:
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array
    except Exception as exc:  # pydicom raises many types for broken files
        raise ImageReadError(
            f"{path}: not a readable DICOM image ({exc}). Check the file is complete; compressed "
            "transfer syntaxes need pylibjpeg or gdcm installed."
        ) from exc
    if pixels.ndim != 2:
        raise ImageReadError(
            f"{path}: DICOM has pixel array shape {pixels.shape}; only single-frame gray "
            "radiographs are supported. Export one frame as its own file."
        )
    bits = int(getattr(ds, "BitsStored", 8 * pixels.dtype.itemsize))
    max_value = (1 << bits) - 1
    pixels = np.clip(pixels.astype(np.int64), 0, max_value)
    note = f"DICOM {bits}-bit"
    if getattr(ds, "PhotometricInterpretation", "MONOCHROME2") == "MONOCHROME1":
        # MONOCHROME1 shows low values as white; invert so bone is bright like everywhere else.
        pixels = max_value - pixels
        note += ", MONOCHROME1 inverted"
    elif ds.get("PhotometricInterpretation", "MONOCHROME2") != "MONOCHROME2":
        raise ImageReadError(
            f"{path}: photometric interpretation {ds.PhotometricInterpretation} is not a gray "
            "radiograph (MONOCHROME1/2)."
        )
    dtype = np.uint8 if bits <= 8 else np.uint16
    return Radiograph(pixels.astype(dtype), max_value, path, note)


def read_radiograph(path: str | os.PathLike[str]) -> Radiograph:
    """Read one radiograph as gray pixels with its real value range.

    RGB files whose three channels are equal (common in the Kermany set) are taken as gray
    exactly; other RGB files are converted with ITU-R 601 luma and say so in ``note``. An
    alpha channel is dropped only if fully opaque. Truncated or corrupt files raise
    :class:`ImageReadError`.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file. Check the path (and the data set layout).")
    if _is_dicom(path):
        return _read_dicom(path)
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            array = np.asarray(img)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageReadError(
            f"{path}: cannot be decoded ({exc}). The file is corrupt or truncated: download it "
            "again or remove it from the data set."
        ) from exc
    note = ""
    if mode in {"RGBA", "LA", "PA"}:
        if array[..., -1].min() < 255:
            raise ImageReadError(
                f"{path}: has a transparent alpha channel; a radiograph should not. Flatten it "
                "(e.g. save as gray PNG without alpha) and try again."
            )
        array = array[..., :-1]
        note = "opaque alpha dropped"
        mode = mode[:-1] or "L"
    if mode == "P":
        with Image.open(path) as img:
            array = np.asarray(img.convert("RGB"))
        mode = "RGB"
    if mode in {"RGB", "L"} and array.ndim == 3:
        if (
            mode == "RGB"
            and (array[..., 0] == array[..., 1]).all()
            and (array[..., 1] == array[..., 2]).all()
        ):
            array = array[..., 0]
            note = ", ".join(filter(None, [note, "RGB-stored gray"]))
        elif mode == "RGB":
            weights = np.array([0.299, 0.587, 0.114], dtype=np.float64)
            array = np.clip(np.rint(array @ weights), 0, 255).astype(np.uint8)
            note = ", ".join(filter(None, [note, "RGB converted to gray (ITU-R 601 luma)"]))
        else:
            array = array[..., 0]
    if mode == "1":
        array = array.astype(np.uint8) * 255
    if array.dtype == np.uint8:
        return Radiograph(np.ascontiguousarray(array), 255, path, note)
    if array.dtype.kind in "iu" and array.ndim == 2:
        if array.min() < 0 or array.max() > 65535:
            raise ImageReadError(
                f"{path}: integer pixels outside 0..65535; save it as a 16-bit PNG or DICOM."
            )
        return Radiograph(array.astype(np.uint16), 65535, path, note or "16-bit")
    raise ImageReadError(
        f"{path}: unsupported pixel format (PIL mode {mode}, dtype {array.dtype}); convert it to "
        "an 8- or 16-bit gray PNG."
    )


def to_pixels(image: np.ndarray, max_value: int) -> np.ndarray:
    """Float image in [0, 1] back to integer pixels of a ``max_value`` range (rounded, clipped)."""
    dtype = np.uint8 if max_value <= 255 else np.uint16
    return np.clip(np.rint(image * max_value), 0, max_value).astype(dtype)


def resize(image: np.ndarray, size: tuple[int, int], method: str = "bicubic") -> np.ndarray:
    """Resize a float 2-D image to ``size`` = (width, height) with PIL on float32 data.

    PIL's bicubic (a = -0.5, as MATLAB's ``imresize``) widens its kernel when shrinking, i.e.
    it antialiases; this is the study's bicubic for making LR images and for the bicubic
    baseline. ``method`` is ``bicubic``, ``lanczos`` or ``bilinear``.
    """
    filters = {
        "bicubic": Image.Resampling.BICUBIC,
        "lanczos": Image.Resampling.LANCZOS,
        "bilinear": Image.Resampling.BILINEAR,
    }
    if method not in filters:
        raise ValueError(f"Unknown resize method {method!r}; use one of {sorted(filters)}.")
    out = Image.fromarray(np.asarray(image, dtype=np.float32), mode="F").resize(
        size, filters[method]
    )
    return np.array(out, dtype=np.float32)  # a writable copy (PIL buffers are read-only)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=target.suffix, dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_text(target: str | os.PathLike[str], text: str) -> Path:
    """Write text atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text)
    return Path(target)


def write_png(target: str | os.PathLike[str], pixels: np.ndarray) -> Path:
    """Write a gray ``uint8`` or ``uint16`` array as PNG, atomically (16-bit stays 16-bit)."""
    if pixels.ndim != 2 or pixels.dtype not in (np.uint8, np.uint16):
        raise ValueError(
            f"write_png needs a 2-D uint8/uint16 array, got {pixels.dtype} {pixels.shape}"
        )
    with atomic_path(target) as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG")
    return Path(target)
