"""DICOM in and out: stored values to the network's range and back, and a derived series.

Reading (:func:`read`): the modality LUT (RescaleSlope/Intercept or a Modality LUT Sequence,
via pydicom's ``apply_modality_lut``) turns stored values into modality values; the range the
stored bits can hold (``BitsStored``, signed when ``PixelRepresentation`` is 1) is mapped
linearly onto ``[0, 2**BitsStored - 1]`` for the network, so signed data keeps its negative
values and 12-bit data the network's whole input range. Stored values that all fit in 12 bits
are taken as 12-bit whatever BitsStored says, as 16-bit PNGs without sBIT are (a 12-bit image
stored as signed 16-bit otherwise reached the network as a narrow grey band:
``bench/dicom_storage.py``). MONOCHROME1 is inverted so bone is bright, as in every other
image. The mapping is kept in ``Radiograph.meta`` and written into the note. Stored values
outside ``BitsStored`` (pydicom would mask them silently) are refused, as is a header whose
transfer syntax does not match its data; a file without the 128-byte preamble is read when its
data set is valid.

Writing (:func:`write`): the mapping is undone (MONOCHROME1 inverted back, modality values back
to stored values of the input's signedness and BitsStored), and the input's header is copied
with what a derived image must change: Rows/Columns, PixelSpacing and ImagerPixelSpacing
divided by the scale, new SOPInstanceUID and SeriesInstanceUID (StudyInstanceUID kept),
ImageType DERIVED\\SECONDARY, a DerivationDescription naming the model, its SHA-256 and the input
file's SHA-256 (how a re-run recognises its own outputs), and an uncompressed (Explicit VR
Little Endian) transfer syntax. The derived series UID is derived from the source series and the
model, so every image of one source series lands in one derived series (also across re-runs).
With a :class:`cxrsr_utils.images.deidentify.Deidentifier` the output is de-identified by PS3.15's
basic profile instead, its UIDs mapped once per run.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cxrsr_utils.core.atomic import atomic_path
from cxrsr_utils.images import radiograph
from cxrsr_utils.images.radiograph import ImageReadError, Radiograph

if TYPE_CHECKING:  # pydicom itself is imported where a DICOM is read or written
    from pydicom import Dataset

    from cxrsr_utils.images.deidentify import Deidentifier

# Decoders pydicom can use for each compressed family, for the error message.
_DECODERS = {
    "JPEG 2000": "pylibjpeg-openjpeg (or gdcm)",
    "JPEG-LS": "pylibjpeg-libjpeg (or gdcm)",
    "JPEG Lossless": "pylibjpeg-libjpeg (or gdcm)",
    "JPEG": "pylibjpeg-libjpeg (or gdcm, pillow for 8-bit baseline)",
    "RLE": "pylibjpeg-rle (or gdcm)",
    "Deflate": "pydicom itself (the file is damaged)",
}
COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "PALETTE COLOR")


def _decoder_for(syntax_name: str) -> str:
    for family, package in _DECODERS.items():
        if family.lower() in syntax_name.lower():
            return package
    return "pylibjpeg with its plugins, or gdcm"


def _pixels(path: Path, ds: Dataset) -> np.ndarray:
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if "PixelData" not in ds and "FloatPixelData" not in ds:
        actual = _actual_encoding(path, ds) if syntax is not None else ""
        if syntax is not None and actual:
            raise ImageReadError(
                f"{path}: its transfer syntax says {syntax.name} ({syntax}), but the data set is "
                f"encoded {actual}: the header is wrong. Re-export it (or correct "
                "TransferSyntaxUID in the file meta)."
            )
        raise ImageReadError(f"{path}: DICOM without pixel data (a report or a header only).")
    try:
        return ds.pixel_array
    except Exception as exc:  # pydicom raises several types for undecodable data
        if syntax is not None and syntax.is_compressed:
            raise ImageReadError(
                f"{path}: DICOM transfer syntax {syntax.name} ({syntax}) cannot be decoded with "
                f"the installed handlers; install {_decoder_for(syntax.name)}."
            ) from exc
        raise ImageReadError(
            f"{path}: DICOM pixel data cannot be read ({exc}); the file is damaged or truncated."
        ) from exc


_ENCODINGS = ((True, True), (False, True), (False, False))  # (implicit VR, little endian)


def _actual_encoding(path: Path, ds: Dataset) -> str:
    """The encoding under which the data set after the file meta holds pixel data, when it is
    not the one its transfer syntax declares; ``""`` when none does."""
    from pydicom.filereader import read_dataset

    length = ds.file_meta.get("FileMetaInformationGroupLength")
    syntax = ds.file_meta.get("TransferSyntaxUID")
    if length is None or syntax is None:
        return ""
    declared = (syntax.is_implicit_VR, syntax.is_little_endian)
    for encoding in _ENCODINGS:
        if encoding == declared:
            continue
        # pydicom tells implicit from explicit VR by itself: name what contradicts the header.
        if encoding[1] != declared[1]:
            name = "little endian" if encoding[1] else "big endian"
        else:
            name = "implicit VR" if encoding[0] else "explicit VR"
        with open(path, "rb") as f:
            f.seek(132 + 12 + int(length))  # preamble, 'DICM', the group length, the group
            try:
                if "PixelData" in read_dataset(f, *encoding):
                    return name
            except Exception:  # garbage under this encoding
                continue
    return ""


def _dataset(path: Path) -> tuple[Dataset, str]:
    """The file's data set and a note; a file without the preamble and file meta is read when
    its data set is valid (as pydicom's ``force=True``), which the note says."""
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

    try:
        return pydicom.dcmread(path), ""
    except InvalidDicomError:
        pass  # no preamble: tried below
    except Exception as exc:  # pydicom raises many types for broken files
        raise ImageReadError(f"{path}: not a readable DICOM file ({exc}).") from exc
    try:
        ds = pydicom.dcmread(path, force=True)
        if "PixelData" not in ds or "Rows" not in ds or "Columns" not in ds:
            raise ValueError("no image data set found")
    except Exception as exc:
        raise ImageReadError(
            f"{path}: not a DICOM file (no 'DICM' preamble, and no valid image data set without "
            f"one: {exc})."
        ) from exc
    if "TransferSyntaxUID" not in ds.file_meta:  # what pydicom found the data set to be
        implicit = ds.original_encoding[0]
        ds.file_meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
        )
    return ds, "read without the DICOM preamble"


def _check_stored_bits(
    path: Path, ds: Dataset, stored: np.ndarray, bits: int, signed: bool
) -> None:
    """Refuse native pixel data whose bits above BitsStored are set (pydicom masks them, so the
    image would be silently garbled; only a sign extension is allowed for signed data)."""
    allocated = int(ds.get("BitsAllocated", 8 * stored.dtype.itemsize))
    syntax = ds.file_meta.get("TransferSyntaxUID")
    if (syntax is not None and syntax.is_compressed) or bits >= allocated or allocated > 32:
        return
    dtype = np.dtype({8: "u1", 16: "u2", 32: "u4"}[allocated])
    dtype = dtype.newbyteorder("<" if syntax is None or syntax.is_little_endian else ">")
    raw = np.frombuffer(ds.PixelData, dtype=dtype, count=stored.size).astype(np.int64)
    high = raw >> bits
    sign_extension = ((raw >> (bits - 1)) & 1) * ((1 << (allocated - bits)) - 1)
    bad = high != (sign_extension if signed else 0)
    if bad.any():
        raise ImageReadError(
            f"{path}: {int(bad.sum())} stored values (up to {int(raw.max())}) use bits above "
            f"BitsStored {bits} of BitsAllocated {allocated}; the header contradicts the pixels "
            "(or the high bits hold old overlay data). Correct BitsStored/HighBit, or re-export."
        )


def _bits_used(stored: np.ndarray, bits: int, signed: bool) -> tuple[int, str]:
    """The bits the network's range is taken from, and a note when it is not BitsStored.

    The reader's rule for 16-bit PNGs without sBIT (:func:`cxrsr_utils.images.radiographs.
    sixteen_bit_range`), applied to DICOM: stored values that all fit in 12 bits (of the same
    signedness) are 12-bit data, whatever BitsStored says. Mapping the range 16 bits *could*
    hold squeezed such an image (a 12-bit image stored as signed 16-bit, say) into a narrow
    grey band the network was never trained on (``bench/dicom_storage.py``).
    """
    twelve = radiograph.TWELVE_BIT_MAX.bit_length()
    if bits <= twelve or not stored.size:
        return bits, ""
    low, high = (
        (-(1 << (twelve - 1)), (1 << (twelve - 1)) - 1) if signed else (0, (1 << twelve) - 1)
    )
    if low <= int(stored.min()) and int(stored.max()) <= high:
        return twelve, f" (all stored values fit in {twelve} bits: taken as {twelve}-bit)"
    return bits, ""


def read(path: str | os.PathLike[str]) -> Radiograph:
    """Read a single-frame gray DICOM (see module doc); refuses everything else with a reason."""
    path = Path(path)
    try:
        return _read(path)
    except ImageReadError:
        raise
    except Exception as exc:  # pydicom's many types for a header it cannot interpret
        raise ImageReadError(
            f"{path}: the DICOM header cannot be interpreted ({exc}); the file is damaged or "
            "was written wrongly. Re-export it."
        ) from exc


def _read(path: Path) -> Radiograph:
    from pydicom.pixels import apply_modality_lut

    ds, read_note = _dataset(path)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if photometric in COLOUR or int(ds.get("SamplesPerPixel", 1)) != 1:
        raise ImageReadError(
            f"{path}: DICOM photometric interpretation {photometric} is colour; only gray "
            "radiographs (MONOCHROME1/2) are supported."
        )
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise ImageReadError(f"{path}: unknown photometric interpretation {photometric!r}.")
    stored = _pixels(path, ds)
    if stored.ndim != 2:
        raise ImageReadError(
            f"{path}: DICOM holds {stored.shape[0]} frames; only single-frame radiographs are "
            "supported. Save the frame you want as its own file."
        )
    bits = int(ds.get("BitsStored", 8 * stored.dtype.itemsize))
    signed = int(ds.get("PixelRepresentation", 0)) == 1
    if not 1 <= bits <= 16:
        raise ImageReadError(f"{path}: BitsStored {bits}; 1 to 16 bits are supported.")
    _check_stored_bits(path, ds, stored, bits, signed)
    used, bits_note = _bits_used(stored, bits, signed)
    smin = -(1 << (used - 1)) if signed else 0
    ends = apply_modality_lut(np.array([smin, smin + (1 << used) - 1]), ds).astype(np.float64)
    lo, hi = float(ends.min()), float(ends.max())
    if hi == lo:
        raise ImageReadError(f"{path}: the modality LUT maps every stored value to {lo}.")
    max_value = (1 << used) - 1
    values = apply_modality_lut(stored, ds).astype(np.float64)
    pixels = np.clip(np.rint((values - lo) / (hi - lo) * max_value), 0, max_value)
    note = ", ".join(
        filter(
            None,
            [
                f"DICOM {bits}-bit {'signed' if signed else 'unsigned'}{bits_note}, modality "
                f"LUT applied, values {lo:g}..{hi:g} mapped to 0..{max_value}",
                read_note,
            ],
        )
    )
    if photometric == "MONOCHROME1":
        # MONOCHROME1 shows low values as white; invert so bone is bright like everywhere else.
        pixels = max_value - pixels
        note += ", MONOCHROME1 inverted"
    meta = {
        "format": "dicom",
        "bits_stored": bits,
        "signed": signed,
        "modality_range": (lo, hi),
        "monochrome1": photometric == "MONOCHROME1",
        "lut_sequence": "ModalityLUTSequence" in ds,
    }
    dtype = np.uint8 if max_value <= 255 else np.uint16
    return Radiograph(pixels.astype(dtype), max_value, path, note, meta)


def stored_values(rad: Radiograph) -> np.ndarray:
    """Undo :func:`read`'s mapping: network-range pixels back to the DICOM's stored values."""
    import pydicom

    meta = rad.meta
    if meta.get("lut_sequence"):
        raise ValueError(
            f"{rad.path}: a Modality LUT Sequence cannot be inverted exactly; write PNG instead."
        )
    ds = pydicom.dcmread(meta.get("source", rad.path), stop_before_pixels=True, force=True)
    slope = float(ds.get("RescaleSlope", 1.0))
    intercept = float(ds.get("RescaleIntercept", 0.0))
    pixels = rad.pixels.astype(np.float64)
    if meta["monochrome1"]:
        pixels = rad.max_value - pixels
    lo, hi = meta["modality_range"]
    values = lo + pixels / rad.max_value * (hi - lo)
    bits, signed = meta["bits_stored"], meta["signed"]
    smin = -(1 << (bits - 1)) if signed else 0
    stored = np.clip(np.rint((values - intercept) / slope), smin, smin + (1 << bits) - 1)
    return stored.astype(np.int16 if signed else np.uint16)


def derived_uid(kind: str, source_uid: str, model_key: str) -> str:
    """A UID for the derived ``kind`` ("series", "instance") of ``source_uid`` by the model
    ``model_key``: the same for the same source and model, so one source series gives one
    derived series, also across re-runs and parallel runs."""
    from pydicom.uid import generate_uid

    return generate_uid(entropy_srcs=["cxrsr derived", kind, str(source_uid), model_key])


def write(
    target: str | os.PathLike[str],
    rad: Radiograph,
    source: str | os.PathLike[str],
    *,
    scale: int,
    description: str,
    model_key: str,
    deidentifier: Deidentifier | None = None,
) -> Path:
    """Write ``rad`` (the upscaled image of the DICOM ``source``) as a derived DICOM, atomically;
    ``model_key`` names what made the pixels (model SHA-256, precision, tiling), for the derived
    UIDs; de-identified when a ``deidentifier`` is given (see module doc)."""
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds, _ = _dataset(Path(source))
    stored = stored_values(replace(rad, meta={**rad.meta, "source": source}))
    for tag in ("ModalityLUTSequence", "FloatPixelData", "DoubleFloatPixelData"):
        if tag in ds:
            delattr(ds, tag)
    ds.Rows, ds.Columns = stored.shape
    ds.BitsAllocated = 16
    ds.SamplesPerPixel = 1
    ds.PixelData = stored.tobytes()
    ds["PixelData"].VR = "OW"
    ds["PixelData"].is_undefined_length = False  # the source may have been encapsulated
    for name in ("PixelSpacing", "ImagerPixelSpacing"):
        if name in ds:
            ds[name].value = [f"{float(v) / scale:.6g}" for v in ds[name].value]
    if deidentifier is not None:
        deidentifier.apply(ds, source)  # UIDs mapped once per run: new study, new series
        ds.SOPInstanceUID = generate_uid()
    else:
        ds.SeriesInstanceUID = derived_uid("series", ds.get("SeriesInstanceUID", ""), model_key)
        ds.SOPInstanceUID = derived_uid("instance", ds.get("SOPInstanceUID", ""), model_key)
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.DerivationDescription = description[:1024]
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    with atomic_path(target) as tmp:
        ds.save_as(tmp, enforce_file_format=True)
    return Path(target)
