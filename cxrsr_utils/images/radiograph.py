"""The one radiograph type of the study, its read error, and the file checks every reader shares.

:class:`Radiograph` is what every reader returns (:mod:`cxrsr_utils.images.radiographs` for
PNG, JPEG and TIFF, :mod:`cxrsr_utils.images.dicom` for DICOM) and every writer takes. It lives
apart from the readers so that each format's reader depends on it and not on another reader.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cxrsr_utils.core.errors import CxrsrError

DICOM_SUFFIXES = {".dcm", ".dicom"}
# Largest image the reader decodes (64 Mpx, e.g. 8000 x 8000): a 3000 x 3000 radiograph is 9 Mpx,
# and the header of a "decompression bomb" is refused before any pixel is decoded.
MAX_PIXELS = 64_000_000
# A 16-bit PNG without an sBIT chunk whose values all fit in 12 bits is taken as 12-bit data
# (what CR/DR exports hold); otherwise as full 16-bit. The note says which rule applied.
TWELVE_BIT_MAX = 4095
# ITU-R BT.601 luma (R, G, B), what PIL's convert("L") and cv2's BGR2GRAY apply: the one gray
# conversion of colour pixels in the study (this reader, the classifier's inputs, and
# cxrsr_utils.sr.infer's gray="luma" reduction of network outputs).
LUMA_WEIGHTS: tuple[float, float, float] = (0.299, 0.587, 0.114)


class ImageReadError(CxrsrError, ValueError):
    """A file could not be read as a radiograph; the message names the file and the fix."""


@dataclass(frozen=True)
class Radiograph:
    """A gray radiograph: ``pixels`` is 2-D ``uint8`` or ``uint16`` in ``[0, max_value]``.

    ``meta`` carries what a writer needs to give the output the input's form back: the file
    format, significant bits and, for DICOM, the mapping from stored values to ``pixels``.
    """

    pixels: np.ndarray
    max_value: int
    path: Path
    note: str = ""
    meta: dict = field(default_factory=dict, compare=False)

    @property
    def bit_depth(self) -> int:
        return int(self.max_value).bit_length()

    def as_float(self) -> np.ndarray:
        """Pixels as float32 in [0, 1] (divided by the real maximum, not the dtype's)."""
        return self.pixels.astype(np.float32) / float(self.max_value)


_NOT_REGULAR = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def require_regular_file(path: Path) -> os.stat_result:
    """``path``'s status when it is a regular file (links followed); else :class:`ImageReadError`.

    Checked before any ``open``: opening a FIFO waits for a writer forever, and a device
    never ends.
    """
    try:
        status = path.stat()
    except FileNotFoundError as exc:
        raise ImageReadError(
            f"{path}: no such file. Check the path (and the data set layout)."
        ) from exc
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot be read ({exc.strerror or exc}).") from exc
    if stat.S_ISDIR(status.st_mode):
        raise ImageReadError(f"{path}: is a folder, not an image file.")
    for test, kind in _NOT_REGULAR:
        if test(status.st_mode):
            raise ImageReadError(
                f"{path}: is {kind}, not a regular file; only regular files are read. Copy the "
                "image into a file first."
            )
    return status


def has_dicom_magic(path: Path) -> bool:
    """True for a regular file with the DICM magic at byte 128 (a DICOM file with preamble)."""
    if not path.is_file() or not stat.S_ISREG(path.stat().st_mode):
        return False
    with open(path, "rb") as f:
        head = f.read(132)
    return len(head) == 132 and head[128:132] == b"DICM"


def is_dicom(path: Path) -> bool:
    """True for a ``.dcm``/``.dicom`` name or a regular file with the DICM magic at byte 128."""
    return path.suffix.lower() in DICOM_SUFFIXES or has_dicom_magic(path)
