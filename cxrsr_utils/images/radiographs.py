"""Reading and writing radiographs.

:func:`read_radiograph` is the one reader of the study and of the ``cxrsr`` command:
PNG (8- and 16-bit), JPEG, TIFF and DICOM in, one gray 2-D array out, with the value range
kept (8-bit stays ``uint8``, 12/16-bit stays ``uint16`` with its real maximum). Anything it
cannot turn into a radiograph raises :class:`ImageReadError` naming the file and what to do.

:func:`write_png` writes through :func:`cxrsr_utils.core.atomic.atomic_path`, so a crash never
leaves a half-written image behind.
"""

from __future__ import annotations

import os
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from cxrsr_utils.core.atomic import atomic_path
from cxrsr_utils.images.radiograph import (
    LUMA_WEIGHTS,
    MAX_PIXELS,
    TWELVE_BIT_MAX,
    ImageReadError,
    Radiograph,
    is_dicom,
    require_regular_file,
)


def _read_dicom(path: Path) -> Radiograph:
    from cxrsr_utils.images import dicom

    return dicom.read(path)


def png_significant_bits(path: Path) -> int | None:
    """The gray sample's significant bits from a PNG's ``sBIT`` chunk (None without one)."""
    with open(path, "rb") as f:
        if f.read(8) != b"\x89PNG\r\n\x1a\n":
            return None
        while header := f.read(8):
            if len(header) < 8:
                return None
            length, kind = struct.unpack(">I4s", header)
            if kind == b"sBIT":
                data = f.read(length)
                return data[0] if data else None
            if kind in (b"IDAT", b"IEND"):  # sBIT must come before the image data
                return None
            f.seek(length + 4, os.SEEK_CUR)
    return None


def sixteen_bit_range(array: np.ndarray, sbit: int | None = None) -> tuple[int, str]:
    """``max_value`` of 16-bit gray data and the note that says how it was chosen.

    ``sbit`` (a PNG's significant bits) wins when the values fit in it; without it, data whose
    values all fit in 12 bits is taken as 12-bit (:data:`TWELVE_BIT_MAX`), else as 16-bit.
    """
    top = int(array.max()) if array.size else 0
    if sbit is not None and 1 <= sbit < 16 and top <= (1 << sbit) - 1:
        return (1 << sbit) - 1, f"{sbit}-bit (PNG sBIT)"
    if sbit is not None and 1 <= sbit < 16:
        # sBIT with values beyond it: samples scaled up to 16 bits as the PNG spec says.
        return 65535, f"16-bit (sBIT {sbit}, samples scaled to 16 bits)"
    if sbit is None and top <= TWELVE_BIT_MAX:
        return TWELVE_BIT_MAX, "12-bit (no sBIT; all values <= 4095, taken as 12-bit)"
    return 65535, "16-bit"


def _open_image(path: Path, max_pixels: int) -> tuple[str, np.ndarray, str]:
    """Decode with PIL: (mode, array, note), palettes with transparency as RGBA, EXIF
    orientation applied; refuses oversized headers before decoding and multi-frame files."""
    try:
        with warnings.catch_warnings():
            # Our own limit below replaces PIL's warning/error pair with one clear rule.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            old_limit = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None
            try:
                with Image.open(path) as img:
                    w, h = img.size
                    if w * h > max_pixels:
                        raise ImageReadError(
                            f"{path}: declares {w} x {h} pixels ({w * h / 1e6:.0f} Mpx), more than "
                            f"the {max_pixels / 1e6:.0f} Mpx this reader decodes (it would need "
                            f"{w * h * 2 / 1e6:.0f} MB or more); crop or downsample it, or raise "
                            "max_pixels if it is genuine."
                        )
                    frames = int(getattr(img, "n_frames", 1))
                    if frames > 1:
                        raise ImageReadError(
                            f"{path}: holds {frames} frames ({img.format} animation or pages); "
                            "only single-frame radiographs are supported. Save the frame you "
                            "want as its own file."
                        )
                    img.load()
                    decoded, note = _upright(img)
                    if decoded.mode == "P" and "transparency" in decoded.info:
                        decoded = decoded.convert("RGBA")  # so the alpha check below sees it
                    if decoded.mode == "CMYK":  # print-style JPEGs: ink to light, then luma
                        decoded = decoded.convert("RGB")
                        note = ", ".join(filter(None, [note, "CMYK converted to RGB"]))
                    return decoded.mode, np.asarray(decoded), note
            finally:
                Image.MAX_IMAGE_PIXELS = old_limit
    except ImageReadError:
        raise
    except UnidentifiedImageError as exc:
        kind = _signature(path)
        if kind:  # starts like an image this reader knows: damaged, not foreign
            raise ImageReadError(
                f"{path}: starts like a {kind} file but cannot be decoded. The file is corrupt or "
                "truncated: download it again or remove it from the data set."
            ) from exc
        raise ImageReadError(
            f"{path}: not an image format this reader knows (PNG, JPEG, TIFF, DICOM), or corrupt "
            f"({exc})."
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(
            f"{path}: cannot be decoded ({exc}). The file is corrupt or truncated: download it "
            "again or remove it from the data set."
        ) from exc


_SIGNATURES = {b"\x89PNG": "PNG", b"\xff\xd8\xff": "JPEG", b"II*\x00": "TIFF", b"MM\x00*": "TIFF"}


def _signature(path: Path) -> str:
    """The format whose magic bytes ``path`` starts with, or ``""``."""
    with open(path, "rb") as f:
        head = f.read(4)
    return next((kind for magic, kind in _SIGNATURES.items() if head.startswith(magic)), "")


# EXIF orientation (tag 274) -> what PIL's exif_transpose does to make the image upright.
EXIF_ORIENTATION = 0x0112
_ORIENTATIONS = {
    2: "mirrored left-right",
    3: "rotated 180 degrees",
    4: "mirrored top-bottom",
    5: "transposed",
    6: "rotated 90 degrees clockwise",
    7: "transversed",
    8: "rotated 90 degrees counter-clockwise",
}


def _upright(img: Image.Image) -> tuple[Image.Image, str]:
    """``img`` with its EXIF orientation applied (a viewer shows it so; a mirrored chest X-ray
    would be a clinical error) and the note that says what was done."""
    orientation = int(img.getexif().get(EXIF_ORIENTATION, 1) or 1)
    if orientation not in _ORIENTATIONS:
        return img, ""
    upright = ImageOps.exif_transpose(img)
    return upright, f"EXIF orientation {orientation} applied ({_ORIENTATIONS[orientation]})"


def _gray(path: Path, mode: str, array: np.ndarray, note: str = "") -> tuple[np.ndarray, str]:
    """Reduce a decoded image to one gray channel; the note (after ``note``) says how."""
    if mode in {"RGBA", "LA", "PA"}:
        if array[..., -1].min() < 255:
            raise ImageReadError(
                f"{path}: has a transparent alpha channel; a radiograph should not. Flatten it "
                "(e.g. save as gray PNG without alpha) and try again."
            )
        array = array[..., :-1]
        note = ", ".join(filter(None, [note, "opaque alpha dropped"]))
        mode = mode[:-1] or "L"
    if mode == "P":
        with Image.open(path) as img:
            array = np.asarray(_upright(img)[0].convert("RGB"))
        mode = "RGB"
        note = ", ".join(filter(None, [note, "palette expanded"]))
    if mode in {"RGB", "L"} and array.ndim == 3:
        if (
            mode == "RGB"
            and (array[..., 0] == array[..., 1]).all()
            and (array[..., 1] == array[..., 2]).all()
        ):
            array = array[..., 0]
            note = ", ".join(filter(None, [note, "RGB-stored gray"]))
        elif mode == "RGB":
            weights = np.array(LUMA_WEIGHTS, dtype=np.float64)
            array = np.clip(np.rint(array @ weights), 0, 255).astype(np.uint8)
            note = ", ".join(filter(None, [note, "RGB converted to gray (ITU-R 601 luma)"]))
        else:
            array = array[..., 0]
    if mode == "1":
        array = array.astype(np.uint8) * 255
    return array, note


def read_radiograph(path: str | os.PathLike[str], *, max_pixels: int = MAX_PIXELS) -> Radiograph:
    """Read one radiograph as gray pixels with its real value range.

    RGB files whose three channels are equal (common in the Kermany set) are taken as gray
    exactly; other RGB and palette files are converted with ITU-R 601 luma and say so in
    ``note``. An alpha channel is dropped only if fully opaque. A 16-bit PNG's range comes from
    its ``sBIT`` chunk, else 12-bit when every value fits in 12 bits, else 16-bit (the note says
    which). EXIF orientation is applied (and said); CMYK is converted. DICOM goes through
    :mod:`cxrsr_utils.images.dicom`. Folders, FIFOs and devices, empty, truncated, corrupt,
    multi-frame
    or oversized (> ``max_pixels``) files raise :class:`ImageReadError`.
    """
    path = Path(path)
    if require_regular_file(path).st_size == 0:
        raise ImageReadError(f"{path}: the file is empty (0 bytes).")
    if is_dicom(path):
        return _read_dicom(path)
    mode, array, note = _open_image(path, max_pixels)
    array, note = _gray(path, mode, array, note)
    fmt = path.suffix.lower().lstrip(".")
    if array.dtype == np.uint8:
        return Radiograph(np.ascontiguousarray(array), 255, path, note, {"format": fmt})
    if array.dtype.kind in "iu" and array.ndim == 2:
        if array.min() < 0 or array.max() > 65535:
            raise ImageReadError(
                f"{path}: integer pixels outside 0..65535; save it as a 16-bit PNG or DICOM."
            )
        sbit = png_significant_bits(path) if path.suffix.lower() == ".png" else None
        max_value, bits_note = sixteen_bit_range(array, sbit)
        note = ", ".join(filter(None, [note, bits_note]))
        meta = {"format": fmt, "significant_bits": max_value.bit_length()}
        return Radiograph(array.astype(np.uint16), max_value, path, note, meta)
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


def write_png(
    target: str | os.PathLike[str],
    pixels: np.ndarray,
    *,
    text: dict[str, str] | None = None,
    significant_bits: int | None = None,
) -> Path:
    """Write a gray ``uint8`` or ``uint16`` array as PNG, atomically (16-bit stays 16-bit).

    ``text`` becomes tEXt chunks (provenance); ``significant_bits`` (< 16, for 16-bit data)
    an ``sBIT`` chunk, so a 12-bit result reads back as 12-bit.
    """
    if pixels.ndim != 2 or pixels.dtype not in (np.uint8, np.uint16):
        raise ValueError(
            f"write_png needs a 2-D uint8/uint16 array, got {pixels.dtype} {pixels.shape}"
        )
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, str(value))
    if significant_bits and pixels.dtype == np.uint16 and significant_bits < 16:
        info.add(b"sBIT", bytes([significant_bits]))
    with atomic_path(target) as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG", pnginfo=info)
    return Path(target)
